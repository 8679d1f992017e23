package transport

import (
	"context"
	"strings"

	"concord/server/authz"
	"concord/server/ratelimit"

	"connectrpc.com/connect/v2"
	"google.golang.org/grpc"
)

// limitedCaller is the partner a call is charged to; nodes are not limited: they carry the
// partners' calls, which were charged where they arrived.
func limitedCaller(ctx context.Context) (ratelimit.Caller, bool) {
	c, ok := authz.CallerFrom(ctx)
	if !ok || c.PartnerID == "" {
		return ratelimit.Caller{}, false
	}
	return ratelimit.Caller{ID: c.PartnerID, Roles: c.Partner.GetRoles()}, true
}

// methodName is the last part of a full method name: "/concord.v1.NoticeService/WatchNotices" →
// "WatchNotices".
func shortMethod(fullMethod string) string {
	return fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
}

// chargeUnary charges a unary call by what its request asks.
func (o *Options) chargeUnary(ctx context.Context, req any) error {
	c, ok := limitedCaller(ctx)
	if !ok {
		return nil
	}
	return o.Limiter.Charge(c, 1, ratelimit.CostCall+ratelimit.Cost(req))
}

// openStream counts a new stream against its partner's cap for the method and charges its
// opening; release ends the count.
func (o *Options) openStream(ctx context.Context, fullMethod string) (release func(), err error) {
	c, ok := limitedCaller(ctx)
	if !ok {
		return func() {}, nil
	}
	release, err = o.Limiter.Open(c, shortMethod(fullMethod))
	if err != nil {
		return nil, err
	}
	if err := o.Limiter.Charge(c, 1, ratelimit.CostCall); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// chargeMessage charges a message a client sent on a stream, waiting for the partner's buckets
// (the stream slows down to its partner's limits) up to ratelimit.MaxStreamWait.
func (o *Options) chargeMessage(ctx context.Context, m any) error {
	c, ok := limitedCaller(ctx)
	if !ok {
		return nil
	}
	return o.Limiter.Wait(ctx, c, 1, ratelimit.CostCall+ratelimit.Cost(m))
}

// chargedServerStream charges each message the client sends on a gRPC stream.
type chargedServerStream struct {
	grpc.ServerStream
	o *Options
}

func (s chargedServerStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return grpcError(s.Context(), s.o.Logger, s.o.chargeMessage(s.Context(), m))
}

// chargedConnectStream charges what the client sends on the HTTPS port: a unary request once,
// at once; each message of a client stream, waiting for the buckets.
type chargedConnectStream struct {
	connect.ServerStream
	ctx   context.Context
	o     *Options
	unary bool
}

func (s chargedConnectStream) Receive(m any) error {
	if err := s.ServerStream.Receive(m); err != nil {
		return err
	}
	if s.unary {
		return connectError(s.ctx, s.o.Logger, s.o.chargeUnary(s.ctx, m))
	}
	return connectError(s.ctx, s.o.Logger, s.o.chargeMessage(s.ctx, m))
}
