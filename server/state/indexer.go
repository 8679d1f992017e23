package state

import (
	"fmt"
	"strings"
)

// stringIndexer indexes objects of type T by one string field, read through its getter. Unlike
// memdb.StringFieldIndex it needs no reflection and refuses objects of the wrong type, which
// would otherwise be silently left out of the index.
type stringIndexer[T any] struct {
	field func(T) string
}

// FromObject returns the index key of raw, or false when the field is empty.
func (x stringIndexer[T]) FromObject(raw any) (bool, []byte, error) {
	obj, ok := raw.(T)
	if !ok {
		var want T
		return false, nil, fmt.Errorf("index: object is %T, want %T", raw, want)
	}
	v := x.field(obj)
	if v == "" {
		return false, nil, nil
	}
	// The terminating NUL keeps "fr" from matching "fr-pharos" in an exact look-up.
	return true, append([]byte(v), 0), nil
}

// FromArgs returns the exact key for one string argument. An empty argument matches nothing,
// since objects with an empty field are not indexed.
func (x stringIndexer[T]) FromArgs(args ...any) ([]byte, error) {
	v, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return append([]byte(v), 0), nil
}

// PrefixFromArgs returns the key prefix for one string argument; "" matches every object.
func (x stringIndexer[T]) PrefixFromArgs(args ...any) ([]byte, error) {
	v, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}

func oneString(args []any) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("index: got %d arguments, want 1", len(args))
	}
	v, ok := args[0].(string)
	if !ok {
		return "", fmt.Errorf("index: argument is %T, want string", args[0])
	}
	return v, nil
}

// keysIndexer indexes objects of type T under several string keys each (a memdb.MultiIndexer),
// built by keys. Look-ups and prefix scans take one string, as stringIndexer's do; build the keys
// and the look-up arguments with compoundKey.
type keysIndexer[T any] struct {
	keys func(T) []string
}

// FromObject returns the index keys of raw, or false when it has none.
func (x keysIndexer[T]) FromObject(raw any) (bool, [][]byte, error) {
	obj, ok := raw.(T)
	if !ok {
		var want T
		return false, nil, fmt.Errorf("index: object is %T, want %T", raw, want)
	}
	var out [][]byte
	for _, k := range x.keys(obj) {
		if k != "" {
			out = append(out, append([]byte(k), 0))
		}
	}
	return len(out) > 0, out, nil
}

// FromArgs returns the exact key for one string argument.
func (x keysIndexer[T]) FromArgs(args ...any) ([]byte, error) {
	v, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return append([]byte(v), 0), nil
}

// PrefixFromArgs returns the key prefix for one string argument.
func (x keysIndexer[T]) PrefixFromArgs(args ...any) ([]byte, error) {
	v, err := oneString(args)
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}

// compoundKey joins parts with NUL bytes, which no part contains (ids, codes and numbers), so
// that a scan of the prefix compoundKey(a, "") finds exactly the keys whose first part is a.
func compoundKey(parts ...string) string {
	return strings.Join(parts, "\x00")
}
