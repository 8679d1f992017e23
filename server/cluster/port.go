package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"concord/internal/mtls"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/credentials"
)

// The node port carries two protocols over one TLS listener, told apart by ALPN: raft's own
// (hashicorp/raft's network transport) and gRPC (the internal ClusterService).
const (
	alpnRaft = "concord-raft/1"
	alpnGRPC = "h2"
)

// handshakeTimeout bounds a TLS handshake on the node port, and then the wait for raft or the
// node service to take the connection, so that neither a silent peer nor a stopped raft (a node
// repairing itself, or stopping) holds a goroutine and a connection. A variable for tests.
var handshakeTimeout = 10 * time.Second

// Port is a node's raft port: TLS 1.3 with node certificates required on both sides. Anything
// that is not a node of the cluster's CA fails the handshake and never reaches raft.
type Port struct {
	ln        net.Listener
	advertise net.Addr
	network   Network
	node      *mtls.Node
	logger    *slog.Logger

	raftConns chan net.Conn
	grpcConns chan net.Conn

	closeOnce sync.Once
	closed    chan struct{}
}

// Listen opens the node port on addr, the address other nodes reach it at (host:port; port 0
// picks one, for tests).
func Listen(network Network, addr string, node *mtls.Node, logger *slog.Logger) (*Port, error) {
	if err := checkRaftAddress(addr); err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	if network == nil {
		network = TCP{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	ln, err := network.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("listen on the raft port %s: %w", addr, err)
	}
	// Advertise the host as given (a DNS name stays one) with the port actually bound.
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("raft port: %w", err)
	}
	p := &Port{ln: ln, advertise: &advertised{net.JoinHostPort(host, port)}, network: network, node: node, logger: logger,
		raftConns: make(chan net.Conn), grpcConns: make(chan net.Conn), closed: make(chan struct{})}
	go p.accept()
	return p, nil
}

// checkRaftAddress refuses an address other nodes cannot reach a node at.
func checkRaftAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("raft address %q: want host:port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("raft address %q: give the address the other nodes reach this node at, not a wildcard", addr)
	}
	return nil
}

// advertised is the address raft records for this node.
type advertised struct{ s string }

func (a *advertised) Network() string { return "tcp" }
func (a *advertised) String() string  { return a.s }

// Addr is the address other nodes reach this node's port at.
func (p *Port) Addr() string { return p.advertise.String() }

// Close stops the port and closes connections waiting to be accepted.
func (p *Port) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed)
		err = p.ln.Close()
	})
	return err
}

func (p *Port) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.logger.Warn("raft port: accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go p.handshake(c)
	}
}

// handshake authenticates a connection and hands it to raft or to the internal service.
func (p *Port) handshake(c net.Conn) {
	tc := tls.Server(c, p.node.ServerConfig(alpnRaft, alpnGRPC))
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		p.logger.Warn("raft port: refused a connection", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	var to chan net.Conn
	switch tc.ConnectionState().NegotiatedProtocol {
	case alpnRaft:
		to = p.raftConns
	case alpnGRPC:
		to = p.grpcConns
	default:
		p.logger.Warn("raft port: refused a connection that speaks neither raft nor gRPC", "remote", c.RemoteAddr().String())
		tc.Close()
		return
	}
	// Nobody takes it while raft (or the node service) is stopped and the port is not yet
	// closed, as while a node repairs itself: the caller dials again later.
	select {
	case to <- tc:
	case <-ctx.Done():
		p.logger.Debug("raft port: a connection was not taken in time", "remote", c.RemoteAddr().String(), "protocol", tc.ConnectionState().NegotiatedProtocol)
		tc.Close()
	case <-p.closed:
		tc.Close()
	}
}

// dialTLS opens an authenticated connection to another node's port speaking proto.
func (p *Port) dialTLS(ctx context.Context, addr, proto string) (*tls.Conn, error) {
	c, err := p.network.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	conf := p.node.Client.Clone()
	conf.NextProtos = []string{proto}
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake with node %s: %w", addr, err)
	}
	if tc.ConnectionState().NegotiatedProtocol != proto {
		tc.Close()
		return nil, fmt.Errorf("node %s does not speak %s", addr, proto)
	}
	return tc, nil
}

// Raft is the stream layer of raft's network transport over this port.
func (p *Port) Raft() raft.StreamLayer { return &raftLayer{port: p, closed: make(chan struct{})} }

type raftLayer struct {
	port      *Port
	closeOnce sync.Once
	closed    chan struct{}
}

func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.port.raftConns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.port.closed:
		return nil, net.ErrClosed
	}
}

// Close stops raft's side of the port; the port itself closes with Port.Close.
func (l *raftLayer) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *raftLayer) Addr() net.Addr { return l.port.advertise }

func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.port.dialTLS(ctx, string(address), alpnRaft)
}

// grpcListener hands the port's gRPC connections to a grpc.Server.
type grpcListener struct {
	port      *Port
	closeOnce sync.Once
	closed    chan struct{}
}

// GRPC is a listener of the port's gRPC connections, already authenticated: serve it with
// credentials from ServerCredentials. Closing it stops that server's side of the port only.
func (p *Port) GRPC() net.Listener { return &grpcListener{port: p, closed: make(chan struct{})} }

func (l *grpcListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.port.grpcConns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.port.closed:
		return nil, net.ErrClosed
	}
}

func (l *grpcListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *grpcListener) Addr() net.Addr { return l.port.advertise }

// ServerCredentials are the grpc.Server credentials of the port's gRPC connections: the TLS
// handshake is done, so they only report the peer's certificates to the server.
func ServerCredentials() credentials.TransportCredentials { return handshaken{} }

type handshaken struct{}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("cluster: server-side credentials only")
}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, errors.New("cluster: the raft port handed over a connection without TLS")
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3"}
}
func (h handshaken) Clone() credentials.TransportCredentials { return h }
func (handshaken) OverrideServerName(string) error           { return nil }
