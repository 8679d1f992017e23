package transport

import (
	"context"
	"crypto/x509"
	"log/slog"
	"strings"
	"sync"
	"time"

	"concord/internal/identity"
	"concord/internal/rpcmethod"
	"concord/server/authz"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

// DefaultRefusalInterval is how often the log sums up the refused calls of one caller.
const DefaultRefusalInterval = 10 * time.Second

// maxRefusalKeys bounds the refusal counters kept between summaries: callers hold certificates
// the hub's CA issued, so the set is small; past the bound, refusals are counted together.
const maxRefusalKeys = 4096

// callLog writes one line per finished call, except for refusals, which it sums up: a partner
// over its limit, or a prober without one, would otherwise write a line per call and flood the
// log. The first refusal of a caller, method and code in an interval is logged at once, with
// the reason; the rest are counted and logged as one line with the count when the interval ends.
//
// A line names the protocol, the method, the caller (partner, node, or certificate) and its
// roles, the code, the duration, the ids the call's messages name (see touchedIDs) and, when the
// call is traced, its trace id. The audit stream, if any, receives the same line for every
// accepted write, every failure of the hub, and every refusal the log shows (the first of each
// caller, method and code per interval, then the count).
type callLog struct {
	logger   *slog.Logger
	audit    *slog.Logger // nil: no audit stream
	interval time.Duration
	// trustDomain names the partner of a refused caller whose certificate names one.
	trustDomain string

	mu      sync.Mutex
	counts  map[refusalKey]int
	pending bool // a summary is scheduled
}

type refusalKey struct {
	protocol, method, whoKey, whoID string
	code                            codes.Code
}

func newCallLog(logger, audit *slog.Logger, interval time.Duration, trustDomain string) *callLog {
	if interval <= 0 {
		interval = DefaultRefusalInterval
	}
	return &callLog{logger: logger, audit: audit, interval: interval, trustDomain: trustDomain, counts: map[refusalKey]int{}}
}

// who names the caller for the log: the partner or node id, else the certificate's URI or subject.
func who(ctx context.Context, chain []*x509.Certificate) (key, value string) {
	if id := callerID(ctx); id != "" {
		return "partner", id
	}
	if id := nodeID(ctx); id != "" {
		return "node", id
	}
	if len(chain) == 0 {
		return "certificate", "none"
	}
	// The URIs as the certificate writes them: crypto/x509's parsed cert.URIs may show a
	// refused, non-canonical URI in canonical form.
	if uris, err := identity.URISANs(chain[0]); err == nil && len(uris) > 0 {
		return "cert_uri", strings.Join(uris, " ")
	}
	return "certificate", chain[0].Subject.String()
}

// bug reports whether code says the hub failed, not the caller: those are logged every time.
func bug(code codes.Code) bool {
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return true
	}
	return false
}

// finished logs a call that ended with code (msg: the status message). req and resp are the
// call's request and response messages, where known (nil otherwise): the ids they name are
// logged.
func (l *callLog) finished(ctx context.Context, protocol, method string, chain []*x509.Certificate, code codes.Code, msg string, took time.Duration, req, resp any) {
	whoKey, whoID := who(ctx, chain)
	switch {
	case code == codes.OK:
		level := slog.LevelInfo
		if rpcmethod.ReadOnly(method) {
			// Matching and feed reads come by the thousand a second: successful reads at debug.
			level = slog.LevelDebug
		}
		logged := l.logger.Enabled(ctx, level)
		audited := l.audit != nil && auditedWrite(method)
		if !logged && !audited {
			return
		}
		attrs := l.attrs(ctx, protocol, method, chain, whoKey, whoID, code, "", took, req, resp)
		if logged {
			l.logger.LogAttrs(ctx, level, "finished call", attrs...)
		}
		if audited {
			l.audit.LogAttrs(ctx, slog.LevelInfo, "accepted write", attrs...)
		}
		return
	case bug(code):
		attrs := l.attrs(ctx, protocol, method, chain, whoKey, whoID, code, msg, took, req, resp)
		l.logger.LogAttrs(ctx, slog.LevelError, "finished call", attrs...)
		if l.audit != nil {
			l.audit.LogAttrs(ctx, slog.LevelError, "failed call", attrs...)
		}
		return
	}
	key := refusalKey{protocol: protocol, method: method, whoKey: whoKey, whoID: whoID, code: code}
	l.mu.Lock()
	if _, ok := l.counts[key]; !ok && len(l.counts) >= maxRefusalKeys {
		key = refusalKey{protocol: protocol, method: "(any)", whoKey: "callers", whoID: "(too many to count apart)", code: code}
	}
	n := l.counts[key]
	l.counts[key] = n + 1
	if !l.pending {
		l.pending = true
		time.AfterFunc(l.interval, l.summarise)
	}
	l.mu.Unlock()
	if n == 0 {
		attrs := l.attrs(ctx, protocol, method, chain, whoKey, whoID, code, msg, took, req, resp)
		l.logger.LogAttrs(ctx, slog.LevelWarn, "refused call", attrs...)
		if l.audit != nil {
			l.audit.LogAttrs(ctx, slog.LevelWarn, "refused call", attrs...)
		}
	}
}

// attrs are the attributes of a call's line.
func (l *callLog) attrs(ctx context.Context, protocol, method string, chain []*x509.Certificate, whoKey, whoID string, code codes.Code, msg string, took time.Duration, req, resp any) []slog.Attr {
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("protocol", protocol), slog.String("method", method), slog.String(whoKey, whoID))
	if whoKey == "cert_uri" {
		// Refused before it was identified (no role for the method, say): the partner its
		// certificate names, if it names one in canonical form.
		if id, err := identity.PartnerID(chain[0], l.trustDomain); err == nil {
			attrs = append(attrs, slog.String("partner", id))
		}
	}
	if roles := callerRoles(ctx); roles != "" {
		attrs = append(attrs, slog.String("roles", roles))
	}
	attrs = append(attrs, slog.String("code", code.String()))
	if msg != "" {
		// Not "msg": JSON lines would carry that key twice, the record's message being one.
		attrs = append(attrs, slog.String("reason", msg))
	}
	attrs = append(attrs, slog.Duration("duration", took))
	if ids := touchedIDs(req, resp); ids.Key != "" {
		attrs = append(attrs, ids)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	return attrs
}

// callerRoles names the roles of the caller ctx carries: a partner's, or "node".
func callerRoles(ctx context.Context) string {
	if c, ok := authz.CallerFrom(ctx); ok {
		names := make([]string, 0, len(c.Partner.GetRoles()))
		for _, r := range c.Partner.GetRoles() {
			names = append(names, strings.ToLower(authz.RoleName(r)))
		}
		return strings.Join(names, ",")
	}
	if nodeID(ctx) != "" {
		return "node"
	}
	return ""
}

// auditedWrite reports whether a successful call of method goes to the audit stream: every
// Concord method that is not declared free of side effects.
func auditedWrite(method string) bool {
	return strings.HasPrefix(method, "/concord.v1.") && !rpcmethod.ReadOnly(method)
}

// summarise logs, for each caller, method and code refused more than once in the interval just
// ended, how many more times.
func (l *callLog) summarise() {
	l.mu.Lock()
	counts := l.counts
	l.counts, l.pending = map[refusalKey]int{}, false
	l.mu.Unlock()
	for k, n := range counts {
		if n > 1 {
			args := []any{"protocol", k.protocol, "method", k.method, k.whoKey, k.whoID, "code", k.code.String(), "more", n - 1, "interval", l.interval}
			l.logger.Warn("refused calls", args...)
			if l.audit != nil {
				l.audit.Warn("refused calls", args...)
			}
		}
	}
}
