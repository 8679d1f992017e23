// Package protostrict finds what a decoded protobuf message holds beyond its schema. Concord's
// log keeps signed statements forever and serves them to every auditor: bytes nobody vetted (a
// field this hub does not know, in the statement or in any message inside it) must be refused
// at the door, not carried into the log because the decoder kept them as unknown fields.
package protostrict

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// UnknownField is a field a message carries that its schema does not define.
type UnknownField struct {
	// Path locates the message holding it from the root, as a caller writes it: "hashes[3].url"
	// (empty for the root message).
	Path string
	// Message is the full name of that message's type.
	Message protoreflect.FullName
	// Number is the field's number on the wire; Bytes how many bytes it and its value take.
	Number protowire.Number
	Bytes  int
}

func (u *UnknownField) Error() string {
	where := string(u.Message)
	if u.Path != "" {
		where = u.Path + " (" + where + ")"
	}
	return fmt.Sprintf("field number %d (%d bytes) is not part of %s", u.Number, u.Bytes, where)
}

// Unknown returns the first unknown field in m or in any message it holds, depth first in field
// order, or nil when m holds only what its schema defines.
func Unknown(m protoreflect.Message) *UnknownField {
	return walk(m, nil)
}

func walk(m protoreflect.Message, path []string) *UnknownField {
	if raw := m.GetUnknown(); len(raw) > 0 {
		num, _, n := protowire.ConsumeField(raw)
		if n < 0 {
			n = len(raw)
		}
		return &UnknownField{Path: strings.Join(path, ""), Message: m.Descriptor().FullName(), Number: num, Bytes: n}
	}
	var found *UnknownField
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		name := string(fd.Name())
		if len(path) > 0 {
			name = "." + name
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && found == nil; i++ {
				found = walk(l.Get(i).Message(), append(path, name+"["+strconv.Itoa(i)+"]"))
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				found = walk(mv.Message(), append(path, name+"["+k.String()+"]"))
				return found == nil
			})
		default:
			found = walk(v.Message(), append(path, name))
		}
		return found == nil
	})
	return found
}
