package client

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// failover spreads nothing and hides nothing: every call goes to one node, the current one, and
// a node that answers Unavailable (down, cut off from its cluster, without a leader) or does not
// answer in time makes the next one current, so that a call sent again, and the next call, go
// there.
type failover struct {
	conns []*grpc.ClientConn
	cur   atomic.Int32
	// unary is the SDK's interceptor chain (timeout, logging, re-sends), run around every
	// attempt's choice of node.
	unary grpc.UnaryClientInterceptor
}

var _ grpc.ClientConnInterface = (*failover)(nil)

func (f *failover) current() *grpc.ClientConn { return f.conns[f.cur.Load()] }

// next makes the node after i current, unless another call moved on already.
func (f *failover) next(i int32, err error) {
	if len(f.conns) > 1 && failsOver(err) {
		f.cur.CompareAndSwap(i, (i+1)%int32(len(f.conns)))
	}
}

// failsOver: the node is unavailable or too slow, for a reason that another node may not share
// (a refused certificate would be refused by every node).
func failsOver(err error) bool {
	return err != nil && (retriable(err) || status.Code(err) == codes.DeadlineExceeded)
}

func (f *failover) Invoke(ctx context.Context, method string, req, reply any, opts ...grpc.CallOption) error {
	return f.unary(ctx, method, req, reply, f.current(), func(ctx context.Context, method string, req, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
		i := f.cur.Load()
		err := f.conns[i].Invoke(ctx, method, req, reply, opts...)
		f.next(i, err)
		return err
	}, opts...)
}

func (f *failover) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	i := f.cur.Load()
	s, err := f.conns[i].NewStream(ctx, desc, method, opts...)
	if err != nil {
		f.next(i, err)
		return nil, err
	}
	return &failoverStream{ClientStream: s, f: f, i: i}, nil
}

// failoverStream notices a stream that ends Unavailable, so that the caller's next stream (a
// feed resuming from its cursor) goes to another node.
type failoverStream struct {
	grpc.ClientStream
	f *failover
	i int32
}

func (s *failoverStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	s.f.next(s.i, err)
	return err
}

func (f *failover) close() error {
	var errs []error
	for _, c := range f.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// chainUnary makes one interceptor of several, the first outermost.
func chainUnary(ints []grpc.UnaryClientInterceptor) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var call func(i int) grpc.UnaryInvoker
		call = func(i int) grpc.UnaryInvoker {
			if i == len(ints) {
				return invoker
			}
			return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
				return ints[i](ctx, method, req, reply, cc, call(i+1), opts...)
			}
		}
		return call(0)(ctx, method, req, reply, cc, opts...)
	}
}
