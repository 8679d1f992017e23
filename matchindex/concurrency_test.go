package matchindex

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentReadersSeeWholeNotices runs readers against a writer that adds, removes and
// compacts while background merges run (run it with -race). Every reader takes a view and
// asserts that each notice it looks at is wholly present, at the right positions, or wholly
// absent.
func TestConcurrentReadersSeeWholeNotices(t *testing.T) {
	rng := newRand(8)
	const nNotices = 500
	notices := make([]Notice, nNotices)
	for i := range notices {
		var hs []Hash
		for range 1 + rng.IntN(40) {
			if rng.IntN(2) == 0 {
				hs = append(hs, Hash{SHA256, randBytes(rng, 32)})
			} else {
				hs = append(hs, Hash{PDQ, randBytes(rng, 32)})
			}
		}
		notices[i] = Notice{ID: noticeID(i), Hashes: hs}
	}
	x := New(Options{MergeFactor: 2})
	var started atomic.Int32 // notices [0, started) may have been added
	var done atomic.Bool
	removed := make([]bool, nNotices)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 3 {
		wg.Go(func() {
			rr := newRand(uint64(100 + r))
			for checks := 0; !done.Load() || checks < 200; checks++ {
				n := int(started.Load())
				if n == 0 {
					continue
				}
				v := x.View()
				i := rr.IntN(n)
				if err := checkWhole(v, notices[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	wrng := newRand(9)
	for i := 0; i < nNotices; i++ {
		started.Store(int32(min(i+3, nNotices)))
		if i%7 == 0 && i+3 <= nNotices {
			if err := x.AddBatch(notices[i : i+3]); err != nil {
				t.Fatal(err)
			}
			i += 2
		} else if err := x.Add(notices[i].ID, notices[i].Hashes); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			j := wrng.IntN(i + 1)
			if !removed[j] {
				if err := x.Remove(notices[j].ID); err != nil {
					t.Fatal(err)
				}
				removed[j] = true
			}
		}
		if i == nNotices/2 {
			x.Compact()
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	x.WaitMerges()
	v := x.View()
	for i, n := range notices {
		present, err := presence(v, n)
		if err != nil {
			t.Fatal(err)
		}
		if present == removed[i] {
			t.Fatalf("notice %d: present=%v after the writer finished, removed=%v", i, present, removed[i])
		}
	}
	t.Logf("final segments %v", v.Stats().SegmentSizes)
}

// checkWhole returns an error unless notice n is wholly present or wholly absent in v.
func checkWhole(v View, n Notice) error {
	_, err := presence(v, n)
	return err
}

// presence reports whether all of n's hashes are in v at their positions, or none; any
// other state is an error.
func presence(v View, n Notice) (bool, error) {
	found := 0
	for p, h := range n.Hashes {
		var hits []Hit
		var err error
		if h.Kind == PDQ {
			hits, err = v.MatchPDQ(h.Value, 0)
		} else {
			hits, err = v.Lookup(h.Kind, h.Value)
		}
		if err != nil {
			return false, err
		}
		switch {
		case len(hits) == 0:
		case len(hits) == 1 && hits[0].NoticeID == n.ID && hits[0].Position == p:
			found++
		default:
			return false, fmt.Errorf("notice %s hash %d: hits %+v", n.ID, p, hits)
		}
	}
	if found != 0 && found != len(n.Hashes) {
		return false, fmt.Errorf("notice %s: %d of %d hashes visible", n.ID, found, len(n.Hashes))
	}
	return found > 0, nil
}
