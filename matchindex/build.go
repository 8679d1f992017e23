package matchindex

import "fmt"

// Builder makes an index from a complete set of notices in one pass, as after a raft
// snapshot restore or at start-up: the notices become one segment (no merges), built on
// BuildWorkers goroutines. Add copies each notice's hashes into compact arrays at once, so
// a caller can stream notices from its state store without holding them all.
type Builder struct {
	opts  Options
	seg   segBuilder
	names []string
	byID  map[string]uint32
	done  bool
}

// NewBuilder returns an empty builder.
func NewBuilder(opts Options) *Builder {
	return &Builder{opts: opts.withDefaults(), byID: map[string]uint32{}}
}

// Add adds a notice. Errors are those of Index.Add; a notice refused leaves the builder as
// it was.
func (b *Builder) Add(noticeID string, hashes []Hash) error {
	if b.done {
		return fmt.Errorf("%w: Builder.Add after Finish (start a new Builder)", ErrInvalidNotice)
	}
	if err := checkNotice(noticeID, hashes); err != nil {
		return err
	}
	if _, ok := b.byID[noticeID]; ok {
		return fmt.Errorf("%w: %s added twice to the builder", ErrNoticeExists, noticeID)
	}
	h := uint32(len(b.names))
	b.names = append(b.names, noticeID)
	b.byID[noticeID] = h
	b.seg.addNotice(h, hashes)
	return nil
}

// Finish builds the tables and returns the index, ready to serve. The builder cannot be
// used afterwards.
func (b *Builder) Finish() *Index {
	b.done = true
	x := New(b.opts)
	x.names, x.byID = b.names, b.byID
	v := &view{names: x.names, fallbacks: &x.fallbacks}
	if len(b.names) > 0 {
		b.seg.fallbacks = &x.fallbacks
		seg := b.seg.build(b.opts.BuildWorkers)
		v.segs, v.deadSize = []*segment{seg}, []int{0}
	}
	b.seg = segBuilder{}
	x.cur.Store(v)
	return x
}

// Build returns an index of the given notices: NewBuilder, Add each, Finish.
func Build(notices []Notice, opts Options) (*Index, error) {
	b := NewBuilder(opts)
	for _, n := range notices {
		if err := b.Add(n.ID, n.Hashes); err != nil {
			return nil, err
		}
	}
	return b.Finish(), nil
}
