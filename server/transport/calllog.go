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
type callLog struct {
	logger   *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	counts  map[refusalKey]int
	pending bool // a summary is scheduled
}

type refusalKey struct {
	protocol, method, whoKey, whoID string
	code                            codes.Code
}

func newCallLog(logger *slog.Logger, interval time.Duration) *callLog {
	if interval <= 0 {
		interval = DefaultRefusalInterval
	}
	return &callLog{logger: logger, interval: interval, counts: map[refusalKey]int{}}
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

// finished logs a call that ended with code (msg: the status message).
func (l *callLog) finished(ctx context.Context, protocol, method string, chain []*x509.Certificate, code codes.Code, msg string, took time.Duration) {
	whoKey, whoID := who(ctx, chain)
	switch {
	case code == codes.OK:
		level := slog.LevelInfo
		if rpcmethod.ReadOnly(method) {
			// Matching and feed reads come by the thousand a second: successful reads at debug.
			level = slog.LevelDebug
		}
		if l.logger.Enabled(ctx, level) {
			l.logger.Log(ctx, level, "finished call", "protocol", protocol, "method", method, whoKey, whoID, "code", code.String(), "duration", took)
		}
		return
	case bug(code):
		l.logger.ErrorContext(ctx, "finished call", "protocol", protocol, "method", method, whoKey, whoID, "code", code.String(), "msg", msg, "duration", took)
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
		l.logger.WarnContext(ctx, "refused call", "protocol", protocol, "method", method, whoKey, whoID, "code", code.String(), "msg", msg, "duration", took)
	}
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
			l.logger.Warn("refused calls", "protocol", k.protocol, "method", k.method, k.whoKey, k.whoID, "code", k.code.String(),
				"more", n-1, "interval", l.interval)
		}
	}
}
