package transport

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// undecodable holds the request messages of the gRPC port whose body did not decode, with the
// reason. grpc-go decodes a unary request before any interceptor runs and answers a body that
// does not parse with Internal, unlogged; the codec below records the failure instead, so that
// the interceptors (after the caller is known) answer InvalidArgument and log who sent it.
var undecodable sync.Map // proto.Message → error

// strictCodec is grpc-go's proto codec, except that a body that does not decode leaves an empty
// message marked in undecodable rather than failing the call before it is authorized and logged.
type strictCodec struct{ base encoding.CodecV2 }

func newStrictCodec() strictCodec { return strictCodec{base: encoding.GetCodecV2("proto")} }

func (c strictCodec) Name() string { return c.base.Name() }

func (c strictCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c strictCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m) // nothing half-decoded reaches a handler
	undecodable.Store(m, err)
	return nil
}

// decodeFailure returns, and forgets, why req's body did not decode; nil if it did.
func decodeFailure(req any) error {
	if req == nil {
		return nil
	}
	if err, ok := undecodable.LoadAndDelete(req); ok {
		return err.(error)
	}
	return nil
}
