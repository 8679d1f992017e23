package cluster

import (
	"context"
	"net"
	"sync"
	"time"

	nodev1 "concord/gen/concord/node/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/stats"
)

// peers keeps one gRPC connection to each other node's port it has talked to. Connections are
// opened lazily and reconnect by themselves; addresses of nodes that left stay in the map, idle.
type peers struct {
	port *Port
	// trace, if set, traces the calls and sends their trace context to the other node.
	trace stats.Handler

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// peerBackoff is how often a node tries again to reach another node it lost.
var peerBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}

func newPeers(port *Port, trace stats.Handler) *peers {
	return &peers{port: port, trace: trace, conns: map[string]*grpc.ClientConn{}}
}

// client returns the NodeService client of the node whose raft port is addr.
func (p *peers) client(addr string) (nodev1.NodeServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return nodev1.NewNodeServiceClient(c), nil
	}
	conf := p.port.node.Client.Clone()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(conf)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return p.port.network.Dial(ctx, a) }),
		// A node that restarts (an upgrade, a repair) is asked again within a second of its
		// return, not after gRPC's default backoff, which grows to two minutes while it is down:
		// its status, the log checks and the quorum that confirms reads all wait on it.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: peerBackoff, MinConnectTimeout: 5 * time.Second}),
	}
	if p.trace != nil {
		opts = append(opts, grpc.WithStatsHandler(p.trace))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = conn
	return nodev1.NewNodeServiceClient(conn), nil
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}
