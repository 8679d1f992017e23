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
