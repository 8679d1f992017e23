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
	"google.golang.org/protobuf/reflect/protoreflect"
)

// jsonCodec is Connect's protobuf JSON codec with errors that name the real problem. The
// decoder keeps unknown fields out (a newer client's fields are ignored, for compatibility),
// and with them it would let two mistakes through to errors that mislead: an enum name it
// does not know becomes 0, which validation then reports as "must not be in list [0]"; and a
// hash written in hexadecimal in a bytes field decodes as base64 into bytes of another length.
// Before decoding, the request's JSON is read against its schema, and both are refused with
// InvalidArgument naming the field and what to send instead.
type jsonCodec struct {
	*connectproto.JSONCodec
}

func newJSONCodec() jsonCodec { return jsonCodec{connectproto.NewJSONCodec()} }

// UnmarshalRead checks the request's JSON, then decodes it as Connect's codec does.
func (c jsonCodec) UnmarshalRead(ctx context.Context, src io.Reader, msg any) error {
	data, err := io.ReadAll(src)
	if err != nil {
		return err
	}
	if m, ok := msg.(interface {
		ProtoReflect() protoreflect.Message
	}); ok {
		if err := checkJSON(data, m.ProtoReflect().Descriptor()); err != nil {
			return err // Connect answers a request that does not decode with InvalidArgument
		}
	}
	return c.JSONCodec.UnmarshalRead(ctx, bytes.NewReader(data), msg)
}

// checkJSON reads data (a JSON object of message md) and returns the first enum name md does
// not define, or bytes field written in hexadecimal. JSON that does not parse is left to the
// decoder, which says where.
func checkJSON(data []byte, md protoreflect.MessageDescriptor) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return checkJSONMessage(v, md, "")
}

func checkJSONMessage(v any, md protoreflect.MessageDescriptor, path string) error {
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
		at := string(fd.Name())
		if path != "" {
			at = path + "." + at
		}
		var err error
		switch {
		case fd.IsMap():
			if m, ok := val.(map[string]any); ok {
				for k, item := range m {
					if err = checkJSONValue(fd.MapValue(), item, fmt.Sprintf("%s[%q]", at, k)); err != nil {
						break
					}
				}
			}
		case fd.IsList():
			if items, ok := val.([]any); ok {
				for i, item := range items {
					if err = checkJSONValue(fd, item, fmt.Sprintf("%s[%d]", at, i)); err != nil {
						break
					}
				}
			}
		default:
			err = checkJSONValue(fd, val, at)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkJSONValue(fd protoreflect.FieldDescriptor, v any, path string) error {
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
	case protoreflect.BytesKind:
		s, ok := v.(string)
		if !ok || !looksHex(s) {
			return nil
		}
		b, _ := hex.DecodeString(s)
		return fmt.Errorf("%s: %q is hexadecimal, but JSON carries bytes in base64: send %q (the same %d bytes)",
			path, abbreviate(s), base64.StdEncoding.EncodeToString(b), len(b))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkJSONMessage(v, fd.Message(), path)
	}
	return nil
}

// looksHex says whether s reads as hexadecimal bytes: at least 8 digits, an even number, and
// nothing else. Base64 of the bytes Concord takes (hashes, keys, signatures) is almost never
// that: its 64 letters include padding and the other half of the alphabet.
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
