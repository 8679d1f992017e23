// Package rpcmethod finds an RPC's descriptor from the full method name gRPC hands interceptors
// ("/concord.v1.NoticeService/GetNotice"), so that what the .proto declares of a method — its
// roles, whether it has side effects — decides how clients retry it, how the server authorizes,
// logs and orders it. Look-ups are cached: interceptors ask on every call.
package rpcmethod

import (
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

var found sync.Map // full method name → protoreflect.MethodDescriptor, or nil

// Find returns the descriptor of fullMethod among the compiled-in files, if it is a method.
func Find(fullMethod string) (protoreflect.MethodDescriptor, bool) {
	if v, ok := found.Load(fullMethod); ok {
		md, _ := v.(protoreflect.MethodDescriptor)
		return md, md != nil
	}
	var md protoreflect.MethodDescriptor
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(fullMethod, "/"), "/", "."))
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err == nil {
		md, _ = d.(protoreflect.MethodDescriptor)
	}
	if md == nil {
		found.Store(fullMethod, nil)
		return nil, false
	}
	found.Store(fullMethod, md)
	return md, true
}

// Level is the idempotency level md's .proto declares (IDEMPOTENCY_UNKNOWN if none).
func Level(md protoreflect.MethodDescriptor) descriptorpb.MethodOptions_IdempotencyLevel {
	if opts, ok := md.Options().(*descriptorpb.MethodOptions); ok {
		return opts.GetIdempotencyLevel()
	}
	return descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN
}

// ReadOnly reports whether fullMethod is declared NO_SIDE_EFFECTS.
func ReadOnly(fullMethod string) bool {
	md, ok := Find(fullMethod)
	return ok && Level(md) == descriptorpb.MethodOptions_NO_SIDE_EFFECTS
}

// Retryable reports whether fullMethod is declared NO_SIDE_EFFECTS or IDEMPOTENT: safe to send
// again when the first answer was lost.
func Retryable(fullMethod string) bool {
	md, ok := Find(fullMethod)
	if !ok {
		return false
	}
	switch Level(md) {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
		return true
	}
	return false
}
