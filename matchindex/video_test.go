package matchindex

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// video concatenates frames into a PDQ_VIDEO value.
func video(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// frames returns n random frames: random 256-bit hashes are ≈128 apart, never within 31.
func frames(rng *rand.Rand, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = randBytes(rng, PDQSize)
	}
	return out
}

// near returns each frame moved by d bits.
func near(rng *rand.Rand, fs [][]byte, d int) [][]byte {
	out := make([][]byte, len(fs))
	for i, f := range fs {
		out[i] = flipBits(rng, f, d)
	}
	return out
}

// qualityFrame is a frame as a hasher reports it, with PDQ's quality score.
type qualityFrame struct {
	hash    []byte
	quality int
}

// callerFilter is what the caller does before MatchVideo: drop frames of quality < 50.
func callerFilter(fs []qualityFrame) []byte {
	var out [][]byte
	for _, f := range fs {
		if f.quality >= 50 {
			out = append(out, f.hash)
		}
	}
	return video(out...)
}

// TestMatchVideoRule checks vPDQ's rule on crafted videos: the 80 % threshold exactly, the
// frame distance threshold exactly, repeated frames counted once on either side, and frames
// of low quality left out by the caller.
func TestMatchVideoRule(t *testing.T) {
	rng := newRand(5)
	s := frames(rng, 10)   // the stored video's frames
	h := frames(rng, 100)  // a 100-frame stored video
	lowq := frames(rng, 3) // noise frames a hasher scores low
	rnd := func(n int) [][]byte { return frames(rng, n) }
	cat := func(parts ...[][]byte) []byte { return video(slices.Concat(parts...)...) }
	stored := []Notice{
		{ID: "V10", Hashes: []Hash{{PDQVideo, video(s...)}}},
		{ID: "V100", Hashes: []Hash{{SHA256, randBytes(rng, 32)}, {PDQVideo, video(h...)}}},
		{ID: "VREP", Hashes: []Hash{{PDQVideo, video(s[0], s[0], s[0], s[1])}}},
	}
	x, err := Build(stored, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		id                                                          string
		pos, queryFrames, queryMatched, storedFrames, storedMatched int
	}
	tests := []struct {
		name  string
		query []byte
		want  []want // matching videos; any other video must not match
	}{
		{"identical", video(s...), []want{{"V10", 0, 10, 10, 10, 10}}},
		{"frames moved by 20 bits", video(near(rng, s, 20)...), []want{{"V10", 0, 10, 10, 10, 10}}},
		{"exactly 80 % of 10", cat(near(rng, s[:8], 10), rnd(2)), []want{{"V10", 0, 10, 8, 10, 8}}},
		{"70 % of 10", cat(near(rng, s[:7], 10), rnd(3)), nil},
		{"exactly 80 % of 100", cat(near(rng, h[:80], 5), rnd(20)), []want{{"V100", 1, 100, 80, 100, 80}}},
		{"79 % of 100", cat(near(rng, h[:79], 5), rnd(21)), nil},
		{"4 of 5", cat(s[2:6], rnd(1)), []want{{"V10", 0, 5, 4, 10, 4}}},
		{"distance 31 matches", cat(near(rng, s[:4], 31), near(rng, s[4:5], 32)), []want{{"V10", 0, 5, 4, 10, 4}}},
		{"distance 32 does not", cat(near(rng, s[:3], 31), near(rng, s[3:5], 32)), nil},
		{"a clip: all query frames in a longer video", video(h[40:50]...), []want{{"V100", 1, 10, 10, 100, 10}}},
		{"repeated query frames count once", video(s[0], s[0], s[0], s[0], rnd(1)[0]), nil},
		{"repeated stored frames count once", video(s[0]), []want{
			{"V10", 0, 1, 1, 10, 1}, {"VREP", 0, 1, 1, 2, 1}}},
		{"one query frame near two stored frames", video(s[0], s[1]), []want{
			{"V10", 0, 2, 2, 10, 2}, {"VREP", 0, 2, 2, 2, 2}}},
		{"low-quality frames dropped by the caller", callerFilter([]qualityFrame{
			{s[0], 90}, {lowq[0], 20}, {s[1], 80}, {lowq[1], 49}, {s[2], 50}, {s[3], 100}, {lowq[2], 10},
		}), []want{{"V10", 0, 4, 4, 10, 4}}},
		{"the same frames unfiltered", video(s[0], lowq[0], s[1], lowq[1], s[2], s[3], lowq[2]), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := x.MatchVideo(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var exp []VideoHit
			for _, w := range tc.want {
				exp = append(exp, VideoHit{
					NoticeID: w.id, Position: w.pos,
					QueryFrames: w.queryFrames, QueryMatched: w.queryMatched,
					StoredFrames: w.storedFrames, StoredMatched: w.storedMatched,
					QueryPercent:  100 * float64(w.queryMatched) / float64(w.queryFrames),
					StoredPercent: 100 * float64(w.storedMatched) / float64(w.storedFrames),
				})
			}
			sortVideoHits(exp)
			if !slices.Equal(got, exp) {
				t.Fatalf("got  %+v\nwant %+v", got, exp)
			}
		})
	}
}

func sortVideoHits(h []VideoHit) {
	slices.SortFunc(h, func(a, b VideoHit) int {
		if a.QueryPercent != b.QueryPercent {
			if a.QueryPercent > b.QueryPercent {
				return -1
			}
			return 1
		}
		if a.NoticeID != b.NoticeID {
			if a.NoticeID < b.NoticeID {
				return -1
			}
			return 1
		}
		return a.Position - b.Position
	})
}

// TestVideoAndImageApart checks that frames are indexed apart from image PDQs: neither kind
// of query returns the other kind, and a removed video no longer matches.
func TestVideoAndImageApart(t *testing.T) {
	rng := newRand(6)
	f := frames(rng, 5)
	x := New(Options{})
	if err := x.Add("IMG", []Hash{{PDQ, f[0]}}); err != nil {
		t.Fatal(err)
	}
	if err := x.Add("VID", []Hash{{PDQVideo, video(f...)}}); err != nil {
		t.Fatal(err)
	}
	hits, err := x.MatchPDQ(f[0], MaxRadius)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffHits(hits, []Hit{{"IMG", 0, 0, 0}}); d != "" {
		t.Fatalf("image query: %s", d)
	}
	vh, err := x.MatchVideo(f[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(vh) != 1 || vh[0].NoticeID != "VID" {
		t.Fatalf("video query: %+v, want VID only", vh)
	}
	if err := x.Remove("VID"); err != nil {
		t.Fatal(err)
	}
	if vh, _ := x.MatchVideo(f[0]); len(vh) != 0 {
		t.Fatalf("removed video still matches: %+v", vh)
	}
	if _, err := x.MatchVideo(make([]byte, 33)); err == nil {
		t.Fatal("a 33-byte video query was accepted")
	}
}

// TestMatchVideoOracle compares video matching with vPDQ's brute-force rule on random videos
// that share and perturb frames, across segments, removals and merges.
func TestMatchVideoOracle(t *testing.T) {
	rng := newRand(7)
	base := frames(rng, 400) // frames videos draw from, so they overlap
	pick := func(n, d int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = flipBits(rng, base[rng.IntN(len(base))], rng.IntN(d+1))
		}
		return out
	}
	x := New(Options{MergeFactor: 2})
	o := newOracle()
	var live []string
	for i := range 120 {
		var hs []Hash
		for range 1 + rng.IntN(3) {
			hs = append(hs, Hash{PDQVideo, video(pick(2+rng.IntN(30), 20)...)})
		}
		if rng.IntN(2) == 0 {
			hs = append(hs, Hash{PDQ, base[rng.IntN(len(base))]})
		}
		mustAdd(t, x, o, noticeID(i), hs)
		live = append(live, noticeID(i))
		if i%10 == 9 {
			j := rng.IntN(len(live))
			mustRemove(t, x, o, live[j])
			live = append(live[:j], live[j+1:]...)
		}
	}
	x.WaitMerges()
	for _, stage := range []string{"merged", "compacted"} {
		t.Run(stage, func(t *testing.T) {
			matched := 0
			for qi := range 100 {
				// A query is part of a live stored video, perturbed, plus some other frames.
				id := live[rng.IntN(len(live))]
				var src []byte
				for _, h := range o.notices[id] {
					if h.Kind == PDQVideo {
						src = h.Value
					}
				}
				var q [][]byte
				for i := 0; i < len(src); i += PDQSize {
					if rng.IntN(6) > 0 {
						q = append(q, flipBits(rng, src[i:i+PDQSize], rng.IntN(37)))
					}
				}
				q = append(q, pick(rng.IntN(3), 40)...)
				if len(q) == 0 {
					q = pick(1, 10)
				}
				got, err := x.MatchVideo(video(q...))
				if err != nil {
					t.Fatal(err)
				}
				if want := o.matchVideo(video(q...)); !slices.Equal(got, want) {
					t.Fatalf("query %d: got %s\nwant %s", qi, fmtVideoHits(got), fmtVideoHits(want))
				}
				if len(got) > 0 {
					matched++
				}
			}
			if matched < 20 || matched > 90 {
				t.Fatalf("%d of 100 queries matched: the test no longer exercises both sides of 80 %%", matched)
			}
			t.Logf("%d of 100 queries matched", matched)
		})
		x.Compact()
	}
}

func fmtVideoHits(hs []VideoHit) string {
	var b bytes.Buffer
	for _, h := range hs {
		fmt.Fprintf(&b, "%s/%d q%d/%d s%d/%d; ", h.NoticeID, h.Position, h.QueryMatched, h.QueryFrames,
			h.StoredMatched, h.StoredFrames)
	}
	return b.String()
}
