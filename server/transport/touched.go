package transport

import (
	"log/slog"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The ids a call touched are read from its request and response messages by field name: every
// string field named *_id, and the index of a receipt (the transparency log entry the write
// appended), down to a bounded depth and count. Signed envelopes and checkpoints are skipped
// whole: they hold signatures, which stay out of the logs, and the ids inside an envelope's
// payload are those of the record the response returns.
const (
	maxTouchedDepth  = 2  // the response, a record in it, the statement in the record
	maxTouchedValues = 16 // beyond, the line says the list is truncated
	maxTouchedIDLen  = 128
)

var skippedMessages = map[protoreflect.FullName]bool{
	"concord.v1.Envelope":   true,
	"concord.v1.Checkpoint": true,
}

const receiptMessage protoreflect.FullName = "concord.v1.Receipt"

// touched collects the ids of a call's messages, each key once with its values in order.
type touched struct {
	keys      []string
	values    map[string][]string
	n         int  // values kept
	truncated bool // a value was dropped over maxTouchedValues
}

// touchedIDs returns the "ids" group of a call's log line, or an empty attribute if its messages
// name none.
func touchedIDs(msgs ...any) slog.Attr {
	var t touched
	for _, m := range msgs {
		if pm, ok := m.(proto.Message); ok && pm != nil {
			t.walk(pm.ProtoReflect(), 0)
		}
	}
	if len(t.keys) == 0 {
		return slog.Attr{}
	}
	attrs := make([]slog.Attr, 0, len(t.keys)+1)
	for _, k := range t.keys {
		attrs = append(attrs, slog.String(k, strings.Join(t.values[k], ",")))
	}
	if t.truncated {
		attrs = append(attrs, slog.Bool("truncated", true))
	}
	return slog.Attr{Key: "ids", Value: slog.GroupValue(attrs...)}
}

func (t *touched) add(key, value string) {
	if value == "" {
		return
	}
	if t.n >= maxTouchedValues {
		t.truncated = true
		return
	}
	if len(value) > maxTouchedIDLen {
		value = value[:maxTouchedIDLen] + "…"
	}
	if t.values == nil {
		t.values = map[string][]string{}
	}
	for _, v := range t.values[key] {
		if v == value {
			return
		}
	}
	if _, ok := t.values[key]; !ok {
		t.keys = append(t.keys, key)
	}
	t.values[key] = append(t.values[key], value)
	t.n++
}

func (t *touched) walk(m protoreflect.Message, depth int) {
	if !m.IsValid() || skippedMessages[m.Descriptor().FullName()] {
		return
	}
	receipt := m.Descriptor().FullName() == receiptMessage
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		switch {
		case fd.IsMap():
		case fd.Kind() == protoreflect.StringKind && !fd.IsList() && strings.HasSuffix(name, "_id"):
			t.add(name, v.String())
		case receipt && name == "index" && fd.Kind() == protoreflect.Uint64Kind:
			t.add("log_index", strconv.FormatUint(v.Uint(), 10))
		case fd.Kind() == protoreflect.MessageKind && depth < maxTouchedDepth:
			if fd.IsList() {
				list := v.List()
				for i := 0; i < list.Len() && !t.truncated; i++ {
					t.walk(list.Get(i).Message(), depth+1)
				}
			} else {
				t.walk(v.Message(), depth+1)
			}
		}
		return !t.truncated
	})
}
