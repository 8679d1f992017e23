package metrics

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the metrics listener serves the exposition.
const Path = "/metrics"

// Loopback reports whether addr ("host:port") listens on loopback only: an IP in 127.0.0.0/8
// or ::1, or "localhost". An empty host listens on every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Listener serves a node's metrics on an address of their own: plain HTTP on loopback, HTTPS
// elsewhere (or when TLS is forced).
type Listener struct {
	ln  net.Listener
	srv *http.Server
	tls bool
}

// Listen serves m on addr. tlsConf is the node's server TLS configuration: it is used unless
// addr is a loopback address and forceTLS is false. Over TLS, a scraper must present a
// certificate issued by the node's CA (any partner or node certificate; the Prometheus
// scrape config names it in tls_config).
func Listen(m *Metrics, addr string, tlsConf *tls.Config, forceTLS bool, logger *slog.Logger) (*Listener, error) {
	useTLS := forceTLS || !Loopback(addr)
	if useTLS && tlsConf == nil {
		return nil, errors.New("metrics: a listener off loopback needs the node's TLS configuration")
	}
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on the metrics address %s: %w", addr, err)
	}
	l := &Listener{ln: ln, tls: useTLS, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}
	if useTLS {
		l.srv.TLSConfig = http11(tlsConf)
		l.ln = tls.NewListener(ln, l.srv.TLSConfig)
	}
	go func() {
		if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	return l, nil
}

// http11 is conf offering HTTP/1.1 only (a scrape is one request), also in the configuration
// a GetConfigForClient hands out (the node's certificates, reloaded when they change).
func http11(conf *tls.Config) *tls.Config {
	c := conf.Clone()
	c.NextProtos = []string{"http/1.1"}
	if get := c.GetConfigForClient; get != nil {
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := get(hello)
			if err != nil || cc == nil {
				return cc, err
			}
			cc = cc.Clone()
			cc.NextProtos = []string{"http/1.1"}
			return cc, nil
		}
	}
	return c
}

// Addr is the listener's address.
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// TLS reports whether the listener serves HTTPS.
func (l *Listener) TLS() bool { return l.tls }

// Close stops the listener.
func (l *Listener) Close() error { return l.srv.Close() }
