package matchindex

import (
	"math/bits"
	"sync"
	"testing"
)

// Benchmarks at 1 M hashes; the 10 M figures come from cmd/mihbench (see BENCHMARKS.md).
//
//	go test -run '^$' -bench . -benchtime 2000x ./matchindex

const benchN = 1_000_000

// benchPDQ is a 1 M uniform PDQ index and the same hashes flat, built once per process.
var benchPDQ = sync.OnceValues(func() (*Index, []uint64) {
	rng := newRand(10)
	b := NewBuilder(Options{})
	flat := make([]uint64, 0, 4*benchN)
	for n := 0; n < benchN; n += 1000 {
		hs := make([]Hash, 1000)
		for i := range hs {
			v := randBytes(rng, 32)
			hs[i] = Hash{PDQ, v}
			w := pdqWords(v)
			flat = append(flat, w[:]...)
		}
		if err := b.Add(noticeID(n/1000), hs); err != nil {
			panic(err)
		}
	}
	return b.Finish(), flat
})

func BenchmarkMatchPDQ(b *testing.B) {
	x, _ := benchPDQ()
	rng := newRand(11)
	qs := make([][]byte, 1024)
	for i := range qs {
		qs[i] = randBytes(rng, 32)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := x.MatchPDQ(qs[i%len(qs)], MaxRadius); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBruteForce is the scan MatchPDQ is measured against, over the same hashes.
func BenchmarkBruteForce(b *testing.B) {
	_, flat := benchPDQ()
	q := pdqWords(randBytes(newRand(12), 32))
	found := 0
	for b.Loop() {
		for i := 0; i+4 <= len(flat); i += 4 {
			h := flat[i : i+4 : i+4]
			if bits.OnesCount64(h[0]^q[0])+bits.OnesCount64(h[1]^q[1])+
				bits.OnesCount64(h[2]^q[2])+bits.OnesCount64(h[3]^q[3]) <= MaxRadius {
				found++
			}
		}
	}
	b.ReportMetric(float64(found), "found")
}

func BenchmarkLookupSHA256(b *testing.B) {
	rng := newRand(13)
	bl := NewBuilder(Options{})
	var present [][]byte
	for n := 0; n < benchN; n += 1000 {
		hs := make([]Hash, 1000)
		for i := range hs {
			hs[i] = Hash{SHA256, randBytes(rng, 32)}
		}
		present = append(present, hs[0].Value)
		if err := bl.Add(noticeID(n/1000), hs); err != nil {
			b.Fatal(err)
		}
	}
	x := bl.Finish()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if h, _ := x.Lookup(SHA256, present[i%len(present)]); len(h) != 1 {
			b.Fatal("lost a hash")
		}
	}
}

// BenchmarkBuild100k is the restart path at 100 000 PDQ hashes (notices already in memory).
func BenchmarkBuild100k(b *testing.B) {
	c := genCorpus(newRand(14), 100_000, 0, "uniform")
	for b.Loop() {
		if _, err := Build(c.notices, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdd adds 1 000-hash PDQ notices one at a time, merges running in the background.
func BenchmarkAdd(b *testing.B) {
	rng := newRand(15)
	x := New(Options{})
	hs := make([]Hash, 1000)
	i := 0
	for b.Loop() {
		for j := range hs {
			hs[j] = Hash{PDQ, randBytes(rng, 32)}
		}
		if err := x.Add(noticeID(i), hs); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	x.WaitMerges()
}

// BenchmarkMatchVideo matches a 30-frame query against 10 000 stored 30-frame videos.
func BenchmarkMatchVideo(b *testing.B) {
	rng := newRand(16)
	bl := NewBuilder(Options{})
	var stored [][][]byte
	for n := range 1000 {
		var hs []Hash
		for range 10 {
			f := frames(rng, 30)
			stored = append(stored, f)
			hs = append(hs, Hash{PDQVideo, video(f...)})
		}
		if err := bl.Add(noticeID(n), hs); err != nil {
			b.Fatal(err)
		}
	}
	x := bl.Finish()
	q := video(near(rng, stored[123], 10)...)
	b.ResetTimer()
	for b.Loop() {
		if h, _ := x.MatchVideo(q); len(h) != 1 {
			b.Fatalf("got %d video hits, want 1", len(h))
		}
	}
}
