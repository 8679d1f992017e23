package matchindex

import (
	"sync"
	"testing"
)

// TestMergePeakBound adds notices to an index built with most of its hashes, and withdraws
// many: no background merge may produce more than MaxMergeShare of the index (the memory a
// merge holds beside its inputs), answers stay exact, and the segments stay few. With the
// bound lifted, the same adds merge into the big segment, beyond half of the index: the bound
// is what held them back.
func TestMergePeakBound(t *testing.T) {
	notices, queries := familyCorpus(41) // ≈38 000 PDQ hashes
	run := func(share float64) (worst float64, x *Index, o *oracle) {
		var mu sync.Mutex
		opts := Options{MergeFactor: 4, MaxMergeShare: share, mergeFree: 1000}
		opts.onMerge = func(out, total int) {
			mu.Lock()
			defer mu.Unlock()
			worst = max(worst, float64(out)/float64(total))
		}
		o = newOracle()
		first := len(notices) * 6 / 10
		for _, n := range notices[:first] {
			o.add(n.ID, n.Hashes)
		}
		x, err := Build(notices[:first], opts)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range notices[first:] {
			mustAdd(t, x, o, n.ID, n.Hashes)
			if i%3 == 0 {
				mustRemove(t, x, o, notices[i].ID)
			}
		}
		x.WaitMerges()
		return worst, x, o
	}
	worst, x, o := run(0.5)
	st := x.Stats()
	t.Logf("bound 0.5: largest merge %.2f of the index; segments %v", worst, st.SegmentSizes)
	if worst > 0.5 {
		t.Fatalf("a background merge produced %.2f of the index, above MaxMergeShare 0.5", worst)
	}
	if st.Segments > 8 {
		t.Fatalf("%d segments %v: merges held back too far", st.Segments, st.SegmentSizes)
	}
	checkPDQ(t, x, o, queries)

	worst, x, _ = run(1)
	t.Logf("no bound: largest merge %.2f of the index; segments %v", worst, x.Stats().SegmentSizes)
	if worst <= 0.5 {
		t.Fatalf("without the bound the largest merge was %.2f of the index: the test does not exercise the bound", worst)
	}
}

// TestStatsDuringMergeOfFamilies: Stats and queries run while a merge reads a segment whose
// table has families (the merge maps entries to rows with arrays of its own: run with -race).
func TestStatsDuringMergeOfFamilies(t *testing.T) {
	notices, queries := familyCorpus(11)
	half := len(notices) / 2
	o := newOracle()
	x, err := Build(notices[:half], Options{ManualMerge: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notices[:half] {
		o.add(n.ID, n.Hashes)
	}
	if x.Stats().Families == 0 {
		t.Fatal("no families")
	}
	for _, n := range notices[half : half+3] {
		mustAdd(t, x, o, n.ID, n.Hashes)
	}
	old := x.View()
	before := old.Stats().Bytes
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if st := x.Stats(); st.Families == 0 {
				t.Error("Stats during the merge: no families")
				return
			}
			x.MatchPDQ(queries[0], MaxRadius)
		}
	}()
	x.Compact()
	close(stop)
	<-done
	checkPDQ(t, x, o, queries[:20])
	if after := old.Stats().Bytes; after != before {
		t.Fatalf("the merged segments' arrays went from %d to %d bytes by being read by a merge", before, after)
	}
}
