package matchindex

import "testing"

// TestLookupCases checks exact lookups for each kind on hand-made notices: duplicates across
// and within notices, kinds kept apart, removal, in a bulk-built and an incremental index.
func TestLookupCases(t *testing.T) {
	rng := newRand(3)
	sha, md5, url, shared := randBytes(rng, 32), randBytes(rng, 16), randBytes(rng, 32), randBytes(rng, 32)
	pdq := randBytes(rng, 32)
	notices := []Notice{
		{ID: "A", Hashes: []Hash{{SHA256, sha}, {MD5, md5}, {PDQ, pdq}, {URLSHA256, url}}},
		{ID: "B", Hashes: []Hash{{URLSHA256, shared}, {SHA256, sha}, {SHA256, sha}}},
		{ID: "C", Hashes: []Hash{{SHA256, shared}, {MD5, md5}}},
	}
	// Background values, so the tables have real directories.
	for i := range 200 {
		var hs []Hash
		for range 50 {
			hs = append(hs, Hash{SHA256, randBytes(rng, 32)}, Hash{MD5, randBytes(rng, 16)},
				Hash{URLSHA256, randBytes(rng, 32)})
		}
		notices = append(notices, Notice{ID: noticeID(i), Hashes: hs})
	}
	type lookup struct {
		kind  Kind
		value []byte
		want  []Hit
	}
	before := []lookup{
		{SHA256, sha, []Hit{{"A", 0, 0, 0}, {"B", 1, 0, 0}, {"B", 2, 0, 0}}},
		{MD5, md5, []Hit{{"A", 1, 0, 0}, {"C", 1, 0, 0}}},
		{URLSHA256, url, []Hit{{"A", 3, 0, 0}}},
		{URLSHA256, shared, []Hit{{"B", 0, 0, 0}}}, // same bytes as C's SHA256: other kind
		{SHA256, shared, []Hit{{"C", 0, 0, 0}}},
		{SHA256, url, nil}, // a URL hash is not a file hash
		{SHA256, pdq, nil}, // nor is a PDQ hash
		{SHA256, randBytes(rng, 32), nil},
	}
	afterRemoveA := []lookup{
		{SHA256, sha, []Hit{{"B", 1, 0, 0}, {"B", 2, 0, 0}}},
		{MD5, md5, []Hit{{"C", 1, 0, 0}}},
		{URLSHA256, url, nil},
	}
	check := func(t *testing.T, x *Index, cases []lookup) {
		t.Helper()
		for i, c := range cases {
			got, err := x.Lookup(c.kind, c.value)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if d := diffHits(got, c.want); d != "" {
				t.Fatalf("case %d (%s): %s", i, c.kind, d)
			}
		}
	}
	build := map[string]func(t *testing.T) *Index{
		"bulk": func(t *testing.T) *Index {
			x, err := Build(notices, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return x
		},
		"incremental": func(t *testing.T) *Index {
			x := New(Options{ManualMerge: true})
			for _, n := range notices {
				if err := x.Add(n.ID, n.Hashes); err != nil {
					t.Fatal(err)
				}
			}
			return x
		},
	}
	for name, mk := range build {
		t.Run(name, func(t *testing.T) {
			x := mk(t)
			check(t, x, before)
			if err := x.Remove("A"); err != nil {
				t.Fatal(err)
			}
			check(t, x, afterRemoveA)
			x.Compact()
			check(t, x, afterRemoveA)
		})
	}
}

// TestLookupMatchesOracle compares lookups with a scan on random notices with many
// duplicates, through removals and merges.
func TestLookupMatchesOracle(t *testing.T) {
	rng := newRand(4)
	kinds := []Kind{SHA256, MD5, URLSHA256}
	var pool []Hash
	for range 3000 {
		k := kinds[rng.IntN(3)]
		pool = append(pool, Hash{k, randBytes(rng, 8*k.words())})
	}
	x := New(Options{MergeFactor: 2})
	o := newOracle()
	var live []string
	for i := range 400 {
		var hs []Hash
		for range 1 + rng.IntN(60) {
			hs = append(hs, pool[rng.IntN(len(pool))]) // duplicates across and within notices
		}
		mustAdd(t, x, o, noticeID(i), hs)
		live = append(live, noticeID(i))
		if i%6 == 5 {
			j := rng.IntN(len(live))
			mustRemove(t, x, o, live[j])
			live = append(live[:j], live[j+1:]...)
		}
	}
	x.WaitMerges()
	for _, stage := range []string{"merged", "compacted"} {
		t.Run(stage, func(t *testing.T) {
			for i, h := range pool {
				got, err := x.Lookup(h.Kind, h.Value)
				if err != nil {
					t.Fatal(err)
				}
				if d := diffHits(got, o.lookup(h.Kind, h.Value)); d != "" {
					t.Fatalf("value %d (%s): %s", i, h.Kind, d)
				}
			}
		})
		x.Compact()
	}
}

// TestLookupErrors checks that bad lookups are refused with what to fix.
func TestLookupErrors(t *testing.T) {
	x := New(Options{})
	tests := []struct {
		name  string
		kind  Kind
		value []byte
	}{
		{"PDQ is not exact", PDQ, make([]byte, 32)},
		{"video is not exact", PDQVideo, make([]byte, 32)},
		{"short SHA-256", SHA256, make([]byte, 31)},
		{"MD5 of 32 bytes", MD5, make([]byte, 32)},
		{"unknown kind", Kind(9), make([]byte, 32)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := x.Lookup(tc.kind, tc.value); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
		})
	}
}
