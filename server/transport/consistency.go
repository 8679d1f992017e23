package transport

import (
	"context"
	"sync"

	"connectrpc.com/connect/v2"
	"google.golang.org/grpc"

	"concord/internal/rpcmethod"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Consistency is a cluster node's barrier (see cluster.Node), which both ports run after the
// caller is authorized and before the handler.
type Consistency interface {
	// Linearize returns once the node's state holds every write acknowledged before the call.
	Linearize(ctx context.Context) error
	// CatchUp is Linearize before a write on a follower, whose service checks the write
	// against its own state before forwarding it; a no-op on the leader.
	CatchUp(ctx context.Context) error
	// Bound starts the call's bound on its waits inside the cluster: the barrier, the commit
	// and applying it share one leader wait, past which they end with Unavailable.
	Bound(ctx context.Context) context.Context
}

type barrier uint8

const (
	noBarrier barrier = iota
	// readBarrier: a read of notice state (a method declared NO_SIDE_EFFECTS). A stream needs
	// it once, before its first message.
	readBarrier
	// writeBarrier: any other Concord RPC.
	writeBarrier
)

// ownBarrier are the methods that decide for themselves: Match and MatchStream honour the
// caller's max_staleness; ClusterService must answer without a leader (ListMembers), changes
// membership through the leader, and linearizes its snapshots itself.
var ownBarrier = map[protoreflect.FullName]bool{
	"concord.v1.MatchService.Match":       true,
	"concord.v1.MatchService.MatchStream": true,
	"concord.v1.ClusterService":           true,
}

var barriers sync.Map // full method name → barrier

// barrierOf returns the barrier a call of fullMethod needs; md may be nil.
func barrierOf(fullMethod string, md protoreflect.MethodDescriptor) barrier {
	if v, ok := barriers.Load(fullMethod); ok {
		return v.(barrier)
	}
	if md == nil {
		md, _ = rpcmethod.Find(fullMethod)
	}
	b := noBarrier
	switch {
	case md == nil, md.ParentFile().Package() != "concord.v1", ownBarrier[md.FullName()], ownBarrier[md.Parent().FullName()]:
	default:
		b = writeBarrier
		if rpcmethod.Level(md) == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
			b = readBarrier
		}
	}
	barriers.Store(fullMethod, b)
	return b
}

// Integrity is a node's integrity guard (see integrity.Guard): while it reports an error the
// node answers no Concord RPC but ClusterService's, which shows operators why.
type Integrity interface {
	Serving() error
}

var guarded sync.Map // full method name → bool

// guardedMethod reports whether a call of fullMethod must be refused while the node's integrity
// is in doubt: every Concord RPC but ClusterService's. md may be nil.
func guardedMethod(fullMethod string, md protoreflect.MethodDescriptor) bool {
	if v, ok := guarded.Load(fullMethod); ok {
		return v.(bool)
	}
	if md == nil {
		md, _ = rpcmethod.Find(fullMethod)
	}
	g := md != nil && md.ParentFile().Package() == "concord.v1" && md.Parent().FullName() != "concord.v1.ClusterService"
	guarded.Store(fullMethod, g)
	return g
}

// consistent refuses the call while the node's integrity is in doubt, then runs the barrier
// fullMethod needs, if the node has one.
func (o *Options) consistent(ctx context.Context, fullMethod string, md protoreflect.MethodDescriptor) error {
	if o.Integrity != nil && guardedMethod(fullMethod, md) {
		if err := o.Integrity.Serving(); err != nil {
			return err
		}
	}
	if o.Consistency == nil {
		return nil
	}
	switch barrierOf(fullMethod, md) {
	case readBarrier:
		return o.Consistency.Linearize(ctx)
	case writeBarrier:
		return o.Consistency.CatchUp(ctx)
	}
	return nil
}

// guardedServerStream ends a gRPC stream (a feed, a match stream) at its next message once the
// node's integrity is in doubt: it was allowed when it started.
type guardedServerStream struct {
	grpc.ServerStream
	integrity Integrity
}

func (s guardedServerStream) SendMsg(m any) error {
	if err := s.integrity.Serving(); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

// guardedConnectStream is guardedServerStream for connect-go.
type guardedConnectStream struct {
	connect.ServerStream
	integrity Integrity
}

func (s guardedConnectStream) Send(m any) error {
	if err := s.integrity.Serving(); err != nil {
		return err
	}
	return s.ServerStream.Send(m)
}
