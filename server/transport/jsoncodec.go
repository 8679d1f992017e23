package transport

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"connectrpc.com/connect/v2/connectproto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// jsonCodec is Connect's protobuf JSON codec with errors that name the real problem. The
// decoder ignores unknown fields (a newer client's fields, for compatibility), and with them it
// would let two mistakes through to errors that mislead: an enum name it does not know became
// 0, which validation then reported as "must not be in list [0]"; and a hash written in
// hexadecimal in a bytes field decoded as base64 into bytes of another length. Both are now
// refused with InvalidArgument naming the field and what to send instead.
//
// A request is decoded strictly first (unknown names and fields refused), which costs nothing
// more for one that is right; only when that fails is its JSON read against the schema for an
// enum name to report, and, if there is none, decoded again ignoring unknown fields.
type jsonCodec struct {
	*connectproto.JSONCodec
}

func newJSONCodec() jsonCodec { return jsonCodec{connectproto.NewJSONCodec()} }

// UnmarshalRead decodes the request, naming unknown enum names and hexadecimal bytes.
func (c jsonCodec) UnmarshalRead(ctx context.Context, src io.Reader, msg any) error {
	m, ok := msg.(proto.Message)
	if !ok {
		return c.JSONCodec.UnmarshalRead(ctx, src, msg)
	}
	data, err := io.ReadAll(src)
	if err != nil {
		return err
	}
	strict := c.UnmarshalOptions
	strict.DiscardUnknown = false
	if err := strict.Unmarshal(data, m); err != nil {
		if err := unknownEnum(data, m.ProtoReflect().Descriptor()); err != nil {
			return err // Connect answers a request that does not decode with InvalidArgument
		}
		proto.Reset(m)
		if err := c.JSONCodec.UnmarshalRead(ctx, bytes.NewReader(data), msg); err != nil {
			return err
		}
	}
	return hexBytes(m.ProtoReflect(), "")
}

// unknownEnum reads data (a JSON object of message md) and returns the first enum name md does
// not define, with the names it does. JSON that does not parse is left to the decoder, which
// says where.
func unknownEnum(data []byte, md protoreflect.MessageDescriptor) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return enumsIn(v, md, "")
}

func enumsIn(v any, md protoreflect.MessageDescriptor, path string) error {
	obj, ok := v.(map[string]any)
	if !ok || strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return nil // well-known types have JSON forms of their own
	}
	fields := md.Fields()
	for key, val := range obj {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByTextName(key)
		}
		if fd == nil {
			continue // unknown: the decoder ignores it
		}
		at := joinPath(path, fd)
		var items []any
		var names []string
		switch x := val.(type) {
		case []any:
			for i, item := range x {
				items, names = append(items, item), append(names, fmt.Sprintf("%s[%d]", at, i))
			}
		case map[string]any:
			if fd.IsMap() {
				for k, item := range x {
					items, names = append(items, item), append(names, fmt.Sprintf("%s[%q]", at, k))
				}
				fd = fd.MapValue()
			} else {
				items, names = []any{x}, []string{at}
			}
		default:
			items, names = []any{x}, []string{at}
		}
		for i, item := range items {
			if err := enumIn(fd, item, names[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func enumIn(fd protoreflect.FieldDescriptor, v any, path string) error {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		s, ok := v.(string)
		ed := fd.Enum()
		if !ok || ed.FullName() == "google.protobuf.NullValue" || ed.Values().ByName(protoreflect.Name(s)) != nil {
			return nil
		}
		var names []string
		for i := range ed.Values().Len() {
			if n := ed.Values().Get(i); n.Number() != 0 {
				names = append(names, string(n.Name()))
			}
		}
		return fmt.Errorf("%s: %q is not a %s: use one of %s", path, s, ed.Name(), strings.Join(names, ", "))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return enumsIn(v, fd.Message(), path)
	}
	return nil
}

// hexBytes returns the first bytes field of the decoded message m whose value was sent in
// hexadecimal: its base64 form is all hex digits, which base64 of the bytes Concord takes
// (hashes, keys, signatures) almost never is — its alphabet has 64 letters and padding.
func hexBytes(m protoreflect.Message, path string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := joinPath(path, fd)
		check := func(v protoreflect.Value, at string) {
			switch {
			case fd.Kind() == protoreflect.BytesKind:
				if sent := base64.StdEncoding.EncodeToString(v.Bytes()); looksHex(sent) {
					b, _ := hex.DecodeString(sent)
					err = fmt.Errorf("%s: %q is hexadecimal, but JSON carries bytes in base64: send %q (the same %d bytes)",
						at, abbreviate(sent), base64.StdEncoding.EncodeToString(b), len(b))
				}
			case fd.Kind() == protoreflect.MessageKind && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf."):
				err = hexBytes(v.Message(), at)
			}
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len() && err == nil; i++ {
				check(v.List().Get(i), fmt.Sprintf("%s[%d]", at, i))
			}
		case fd.IsMap():
			fd = fd.MapValue()
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				check(v, fmt.Sprintf("%s[%q]", at, k.String()))
				return err == nil
			})
		default:
			check(v, at)
		}
		return err == nil
	})
	return err
}

// joinPath is the path of field fd in the message at path, as a caller writes it.
func joinPath(path string, fd protoreflect.FieldDescriptor) string {
	if path == "" {
		return string(fd.Name())
	}
	return path + "." + string(fd.Name())
}

// looksHex says whether s reads as hexadecimal bytes: at least 8 digits, an even number, and
// nothing else.
func looksHex(s string) bool {
	if len(s) < 8 || len(s)%2 != 0 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// abbreviate shortens a long value for a message.
func abbreviate(s string) string {
	if len(s) <= 24 {
		return s
	}
	return s[:12] + "…" + s[len(s)-8:]
}
