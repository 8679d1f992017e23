// Command mihbench measures the match index at scale, in one run: for each size and
// distribution it builds the index through the Builder (the restart path), then reports PDQ
// radius-31 query latency (random queries, and queries planted near stored hashes), a
// brute-force scan of the same hashes in the same run and the ratio, memory per stored hash
// (RSS and Go heap), and, once per run, exact SHA-256 lookups per second at the largest size.
//
//	go run ./matchindex/cmd/mihbench -n 1000000,10000000 -dist uniform,clustered
//	make bench-match    # every corpus at 1 M and 10 M, FAISS side by side (faiss_bench.py)
//
// It prints a Markdown table (BENCHMARKS.md holds the figures and the command). Build with
// GOAMD64=v2 or higher to compare with POPCNT compiled in (the default v1 checks a CPU
// flag before each popcount).
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"concord/matchindex"
	"concord/matchindex/corpus"
)

// FAISS side by side (-faiss): the script's results per size and distribution.
var (
	faissPy      *string
	faissQueries *int
	faissRows    []string
)

func main() {
	sizes := flag.String("n", "1000000,10000000", "stored PDQ hashes, comma-separated")
	dists := flag.String("dist", "uniform,clustered", "distributions: uniform, clustered, beta4 (mild skew), beta05 (harsh skew); see matchindex/corpus")
	hashes := flag.String("hashes", "", "a real hash list instead of -n and -dist: one PDQ hash (64 hex digits) a line, first field; every hundredth line is held out as a query")
	queries := flag.Int("queries", 2000, "queries of each sort (random, planted)")
	brute := flag.Int("brute", 200, "queries also answered by a plain scan (half planted, half random): its p50, an exactness check, and each query's time against the index's")
	exact := flag.Bool("exact", true, "measure SHA-256 lookups at the largest size")
	adds := flag.Int("adds", 100_000, "hashes then added through Add (1 000-hash notices), to measure queries over merged segments; 0: skip")
	layout := flag.Int("layout", 8, "also measure the worst segment layout of this merge factor at the largest size (uniform); 0: skip")
	faissPy = flag.String("faiss", "", "also run FAISS on the same hashes and queries with this Python (Debian's: /usr/bin/python3 with python3-faiss, see `make faiss`); empty: skip")
	faissQueries = flag.Int("faiss-queries", 500, "queries given to FAISS (half random, half planted)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.BoolVar(&dihedral, "dihedral", false, "also time the same queries with dihedral matching (MatchPDQDihedral: the eight rotations and reflections) beside plain ones")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	fmt.Printf("machine: %d CPUs (%s), %s, GOAMD64=%s, GOMAXPROCS=%d\n\n", runtime.NumCPU(), cpuModel(),
		runtime.Version(), goamd64(), runtime.GOMAXPROCS(0))
	fmt.Println("| hashes | dist | build s (Builder.Add + Finish) | index B/hash (Stats) | RSS B/hash | heap B/hash | " +
		"p50 µs random | p99 µs random | p50 µs planted | p99 µs planted | queries/s/core | brute p50 ms | ratio | exact check | segments after adds | p50 µs after adds |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var largest int
	if *hashes != "" {
		g, err := corpus.FromFile(*hashes)
		if err != nil {
			log.Fatal(err)
		}
		fileGen = g
		runPDQ(g.Len(), corpus.Model("file"), *queries, *brute, *adds)
		*sizes = ""
	}
	for _, ns := range strings.Split(*sizes, ",") {
		if ns == "" {
			continue
		}
		n, err := strconv.Atoi(ns)
		if err != nil {
			log.Fatalf("-n %q: want comma-separated hash counts", *sizes)
		}
		largest = max(largest, n)
		for _, d := range strings.Split(*dists, ",") {
			m, err := corpus.Parse(d)
			if err != nil {
				log.Fatalf("-dist: %v", err)
			}
			runPDQ(n, m, *queries, *brute, *adds)
		}
	}
	if *layout > 1 && largest > 0 {
		runWorstLayout(largest, *layout, *queries)
	}
	if *exact && largest > 0 {
		runExact(largest)
	}
	printTable("Dihedral matching (the eight rotations and reflections of each query) beside plain, each query both ways in turn, r = 31:",
		"| hashes | dist | plain p50 / p99 µs | dihedral p50 / p99 µs | plain queries/s | dihedral queries/s | cost | hits plain / dihedral |", dihedralRows)
	printTable("Each query of the brute-force check timed on the index and on a plain scan (4 popcounts a hash over one array), one after the other, each side's best of three; few hits: fewer than 100:",
		"| hashes | dist | queries | index p50 / p99 µs | scan p50 / p99 ms | index slower than the scan | scan / index, worst query | queries with few hits | scan / index on those, worst |", scanRows)
	printTable("FAISS on the same hashes and queries (one query at a time, one thread, r = 31; recall against an exact scan; B/hash: RSS the index added, its copy of the hashes included):",
		"| hashes | dist | Concord p50 / p99 µs (same queries) | Concord B/hash | index | p50 µs | p99 µs | recall | B/hash | build s |", faissRows)
}

// printTable prints a Markdown table after a blank line and its title, if it has rows.
func printTable(title, header string, rows []string) {
	if len(rows) == 0 {
		return
	}
	fmt.Printf("\n%s\n\n%s\n%s\n", title, header, strings.Repeat("|---", strings.Count(header, "|")-1)+"|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// runWorstLayout measures queries over the most segments the merge policy with factor f
// lets stand over a first segment of n hashes: each newer one just under 1/f of the one
// before, down to one notice. Background merging is off so the layout stays as built.
func runWorstLayout(n, f, nq int) {
	g := corpus.New(corpus.Uniform, 77, n)
	b := matchindex.NewBuilder(matchindex.Options{ManualMerge: true})
	load(b, g, n, nil)
	x := b.Finish()
	total := n
	notice := 0
	for size := n/f - 1; size >= perNotice; size = size/f - 1 {
		var batch []matchindex.Notice
		for left := size; left > 0; left -= perNotice {
			k := min(left, perNotice)
			hs := make([]matchindex.Hash, k)
			for j := range hs {
				hs[j] = matchindex.Hash{Kind: matchindex.PDQ, Value: bytesOf(g.Next())}
			}
			batch = append(batch, matchindex.Notice{ID: fmt.Sprintf("01LAYOUT%018d", notice), Hashes: hs})
			notice++
		}
		if err := x.AddBatch(batch); err != nil {
			log.Fatal(err)
		}
		total += size
	}
	qg := corpus.New(corpus.Uniform, 5, n)
	qs := make([][4]uint64, nq)
	for i := range qs {
		qs[i] = qg.Random()
	}
	settle()
	lat, _ := timeQueries(x, qs)
	slices.Sort(lat)
	fmt.Printf("\nworst layout for merge factor %d: %d hashes in segments %v: p50 %.0f µs, p99 %.0f µs (random queries, r=31)\n",
		f, total, x.Stats().SegmentSizes, us(lat[len(lat)/2]), us(lat[len(lat)*99/100]))
	runtime.KeepAlive(x)
}

// fileGen is the real hash list of -hashes, if given.
var fileGen *corpus.Gen

// newGen returns the generator of a distribution, or the real list from its start.
func newGen(dist corpus.Model, seed uint64, n int) *corpus.Gen {
	if dist == "file" {
		return fileGen.Again()
	}
	return corpus.New(dist, seed, n)
}

func put(dst []byte, h [4]uint64) {
	for i, w := range h {
		binary.BigEndian.PutUint64(dst[8*i:], w)
	}
}

const perNotice = 1000

// load streams n hashes from a generator into a builder, notice by notice, keeping the
// hashes at the given indices (sorted) for planted queries. It returns the time spent in
// Builder.Add, without the generator's.
func load(b *matchindex.Builder, g *corpus.Gen, n int, keep []int) ([][4]uint64, time.Duration) {
	var inAdd time.Duration
	var kept [][4]uint64
	buf := make([]byte, perNotice*matchindex.PDQSize)
	hs := make([]matchindex.Hash, 0, perNotice)
	for i, notice := 0, 0; i < n; notice++ {
		hs = hs[:0]
		for j := 0; j < perNotice && i < n; j, i = j+1, i+1 {
			h := g.Next()
			if len(keep) > 0 && keep[0] == i {
				kept = append(kept, h)
				keep = keep[1:]
			}
			v := buf[j*32 : j*32+32]
			put(v, h)
			hs = append(hs, matchindex.Hash{Kind: matchindex.PDQ, Value: v})
		}
		id := fmt.Sprintf("01BENCH%019d", notice)
		s := time.Now()
		if err := b.Add(id, hs); err != nil {
			log.Fatal(err)
		}
		inAdd += time.Since(s)
	}
	return kept, inAdd
}

func runPDQ(n int, dist corpus.Model, nq, nBrute, adds int) {
	rss0, heap0 := settle()
	rng := rand.New(rand.NewPCG(7, 7))
	seen := map[int]bool{}
	var keep []int
	for len(keep) < min(nq, n) {
		if i := rng.IntN(n); !seen[i] {
			seen[i] = true
			keep = append(keep, i)
		}
	}
	slices.Sort(keep)
	b := matchindex.NewBuilder(matchindex.Options{})
	resetPeak()
	kept, loadTime := load(b, newGen(dist, 42, n), n, keep)
	t1 := time.Now()
	x := b.Finish()
	tables := time.Since(t1)
	peak := procField("VmHWM")
	st := x.Stats()
	rss, heap := settle()
	rssPer := float64(rss-rss0) / float64(n)
	heapPer := float64(heap-heap0) / float64(n)

	var random, planted [][4]uint64
	qg := newGen(dist, 99, n)
	for i := range nq {
		random = append(random, qg.Fresh())
		planted = append(planted, corpus.Flip(rng, kept[i%len(kept)], rng.IntN(32)))
	}
	latR, hitsR := timeQueries(x, random)
	latP, hitsP := timeQueries(x, planted)
	all := slices.Concat(latR, latP)
	var total time.Duration
	for _, l := range all {
		total += l
	}
	qps := float64(len(all)) / total.Seconds()
	slices.Sort(latR)
	slices.Sort(latP)

	// Brute force over the same hashes, regenerated from the seed, in the same run; its
	// answers double as an exactness check of the index on those queries.
	flat := make([]uint64, 0, 4*n)
	g := newGen(dist, 42, n)
	for range n {
		h := g.Next()
		flat = append(flat, h[:]...)
	}
	var bruteLat []time.Duration
	var vs []versus
	exact := 0
	for i := range nBrute {
		q := planted[i%nq]
		if i%2 == 1 {
			q = random[i%nq]
		}
		// Each side's best of three, so that one preemption or page fault does not make a
		// query look slower than it is on either side.
		var want []int
		var hits []matchindex.Hit
		scanT, indexT := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
		for range 3 {
			s := time.Now()
			want = bruteForce(flat, q, matchindex.MaxRadius)
			scanT = min(scanT, time.Since(s))
			s = time.Now()
			hits, _ = x.MatchPDQ(bytesOf(q), matchindex.MaxRadius)
			indexT = min(indexT, time.Since(s))
		}
		bruteLat = append(bruteLat, scanT)
		vs = append(vs, versus{index: indexT, scan: scanT, hits: len(want)})
		got := make([]int, len(hits))
		for j, h := range hits {
			notice, _ := strconv.Atoi(strings.TrimPrefix(h.NoticeID, "01BENCH"))
			got[j] = notice*perNotice + h.Position
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			exact++
		}
	}
	if *faissPy != "" {
		runFAISS(n, dist, x, flat, random, planted, float64(st.Bytes)/float64(n))
	}
	if dihedral {
		runDihedral(n, dist, x, slices.Concat(random, planted))
	}
	flat = nil
	scanRows = append(scanRows, fmt.Sprintf("| %d | %s | %s", n, dist, versusRow(vs)))
	slices.Sort(bruteLat)
	bp50 := bruteLat[len(bruteLat)/2]

	segs, afterP50 := "-", "-"
	if adds > 0 {
		s, p := addMore(x, newGen(dist, 1234, adds), adds, planted)
		segs, afterP50 = s, fmt.Sprintf("%.0f", us(p))
	}
	fmt.Printf("| %d | %s | %.2f + %.2f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.0f× | %d/%d | %s | %s |\n",
		n, dist, loadTime.Seconds(), tables.Seconds(), float64(st.Bytes)/float64(n), rssPer, heapPer,
		us(latR[len(latR)/2]), us(latR[len(latR)*99/100]), us(latP[len(latP)/2]), us(latP[len(latP)*99/100]),
		qps, float64(bp50.Microseconds())/1000, float64(bp50)/float64(latR[len(latR)/2]),
		exact, nBrute, segs, afterP50)
	fmt.Fprintf(os.Stderr, "  (%d/%s: %.1f hits per random query, %.1f per planted; segments %v; %d families holding %.0f %% of the hashes; build peak %.0f B/hash, %.2f× the steady state)\n",
		n, dist, float64(hitsR)/float64(nq), float64(hitsP)/float64(nq), st.SegmentSizes, st.Families, 100*float64(st.InFamilies)/float64(n),
		float64(peak-rss0)/float64(n), float64(peak-rss0)/float64(rss-rss0))
	runtime.KeepAlive(x)
}

// addMore adds hashes through Add in 1 000-hash notices, as a live server does, lets the
// background merges settle, and returns the segment sizes and the p50 of the queries then.
func addMore(x *matchindex.Index, g *corpus.Gen, n int, queries [][4]uint64) (string, time.Duration) {
	buf := make([]byte, perNotice*32)
	for i, notice := 0, 0; i < n; notice++ {
		var hs []matchindex.Hash
		for j := 0; j < perNotice && i < n; j, i = j+1, i+1 {
			v := buf[j*32 : j*32+32]
			put(v, g.Next())
			hs = append(hs, matchindex.Hash{Kind: matchindex.PDQ, Value: v})
		}
		if err := x.Add(fmt.Sprintf("01ADDED%019d", notice), hs); err != nil {
			log.Fatal(err)
		}
	}
	x.WaitMerges()
	lat, _ := timeQueries(x, queries)
	slices.Sort(lat)
	return strings.Trim(fmt.Sprint(x.Stats().SegmentSizes), "[]"), lat[len(lat)/2]
}

func timeQueries(x *matchindex.Index, qs [][4]uint64) ([]time.Duration, int) {
	lat := make([]time.Duration, 0, len(qs))
	hits := 0
	for _, q := range qs {
		v := bytesOf(q)
		s := time.Now()
		h, err := x.MatchPDQ(v, matchindex.MaxRadius)
		lat = append(lat, time.Since(s))
		if err != nil {
			log.Fatal(err)
		}
		hits += len(h)
	}
	return lat, hits
}

// dihedral is the -dihedral flag; dihedralRows its results, printed at the end.
var (
	dihedral     bool
	dihedralRows []string
)

// runDihedral times each query plain and with dihedral matching, one after the other, and
// prints both sides' p50, p99 and queries a second.
func runDihedral(n int, dist corpus.Model, x *matchindex.Index, qs [][4]uint64) {
	var plain, dih []time.Duration
	var hitsPlain, hitsDih int
	for _, q := range qs {
		v := bytesOf(q)
		s := time.Now()
		h, err := x.MatchPDQ(v, matchindex.MaxRadius)
		plain = append(plain, time.Since(s))
		if err != nil {
			log.Fatal(err)
		}
		s = time.Now()
		d, err := x.MatchPDQDihedral(v, matchindex.MaxRadius)
		dih = append(dih, time.Since(s))
		if err != nil {
			log.Fatal(err)
		}
		hitsPlain, hitsDih = hitsPlain+len(h), hitsDih+len(d)
	}
	rate := func(lat []time.Duration) float64 {
		var total time.Duration
		for _, l := range lat {
			total += l
		}
		return float64(len(lat)) / total.Seconds()
	}
	rp, rd := rate(plain), rate(dih)
	slices.Sort(plain)
	slices.Sort(dih)
	dihedralRows = append(dihedralRows, fmt.Sprintf("| %d | %s | %.0f / %.0f | %.0f / %.0f | %.0f | %.0f | %.2f× | %d / %d |", n, dist,
		us(plain[len(plain)/2]), us(plain[len(plain)*99/100]), us(dih[len(dih)/2]), us(dih[len(dih)*99/100]),
		rp, rd, rp/rd, hitsPlain, hitsDih))
}

// versus is one query's time on the index and on a plain scan, and its hits.
type versus struct {
	index, scan time.Duration
	hits        int
}

// scanRows are the index-against-scan rows, printed at the end.
var scanRows []string

// versusRow says how the index did against the scan on each query: the goal is never slower,
// and at least twice as fast on queries with fewer than 100 hits.
func versusRow(vs []versus) string {
	var idx, scan []time.Duration
	slower, few := 0, 0
	worst, worstFew := math.Inf(1), math.Inf(1)
	for _, v := range vs {
		idx, scan = append(idx, v.index), append(scan, v.scan)
		ratio := float64(v.scan) / float64(v.index)
		worst = min(worst, ratio)
		if v.index > v.scan {
			slower++
		}
		if v.hits < 100 {
			few++
			worstFew = min(worstFew, ratio)
		}
	}
	slices.Sort(idx)
	slices.Sort(scan)
	p := func(d []time.Duration, q int) time.Duration { return d[min(len(d)-1, len(d)*q/100)] }
	fewRatio := "-"
	if few > 0 {
		fewRatio = fmt.Sprintf("%.1f×", worstFew)
	}
	return fmt.Sprintf("%d | %.0f / %.0f | %.2f / %.2f | %d | %.1f× | %d | %s |", len(vs),
		us(p(idx, 50)), us(p(idx, 99)), us(p(scan, 50))/1000, us(p(scan, 99))/1000, slower, worst, few, fewRatio)
}

// bruteForce returns the indices of the hashes within r of q: the scan the index is
// compared with.
func bruteForce(flat []uint64, q [4]uint64, r int) []int {
	var out []int
	for i := 0; i+4 <= len(flat); i += 4 {
		h := flat[i : i+4 : i+4]
		if bits.OnesCount64(h[0]^q[0])+bits.OnesCount64(h[1]^q[1])+
			bits.OnesCount64(h[2]^q[2])+bits.OnesCount64(h[3]^q[3]) <= r {
			out = append(out, i/4)
		}
	}
	return out
}

func runExact(n int) {
	rss0, _ := settle()
	rng := rand.New(rand.NewPCG(3, 3))
	b := matchindex.NewBuilder(matchindex.Options{})
	buf := make([]byte, perNotice*32)
	var present [][]byte
	t0 := time.Now()
	for i, notice := 0, 0; i < n; notice++ {
		var hs []matchindex.Hash
		for j := 0; j < perNotice && i < n; j, i = j+1, i+1 {
			v := buf[j*32 : j*32+32]
			for k := 0; k < 32; k += 8 {
				binary.LittleEndian.PutUint64(v[k:], rng.Uint64())
			}
			if rng.IntN(n/100_000+1) == 0 && len(present) < 100_000 {
				present = append(present, slices.Clone(v))
			}
			hs = append(hs, matchindex.Hash{Kind: matchindex.SHA256, Value: v})
		}
		if err := b.Add(fmt.Sprintf("01EXACT%019d", notice), hs); err != nil {
			log.Fatal(err)
		}
	}
	x := b.Finish()
	build := time.Since(t0)
	rss, _ := settle()
	absent := make([][]byte, len(present))
	for i := range absent {
		absent[i] = make([]byte, 32)
		for k := 0; k < 32; k += 8 {
			binary.LittleEndian.PutUint64(absent[i][k:], rng.Uint64())
		}
	}
	const rounds = 10
	found := 0
	s := time.Now()
	for range rounds {
		for i := range present {
			h, _ := x.Lookup(matchindex.SHA256, present[i])
			found += len(h)
			h, _ = x.Lookup(matchindex.SHA256, absent[i])
			found += len(h)
		}
	}
	el := time.Since(s)
	lookups := float64(2 * rounds * len(present))
	fmt.Printf("\nexact SHA-256: %d stored, build %.2f s, %.0f B/hash RSS, %.2f M lookups/s on one core (half present, half absent; %d hits)\n",
		n, build.Seconds(), float64(rss-rss0)/float64(n), lookups/el.Seconds()/1e6, found)
	runtime.KeepAlive(x)
}

func bytesOf(h [4]uint64) []byte {
	b := make([]byte, 32)
	put(b, h)
	return b
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// settle collects garbage, returns freed memory to the OS, and returns VmRSS and the Go heap
// in use, in bytes.
func settle() (rss, heap int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return procField("VmRSS"), int64(ms.HeapInuse)
}

// resetPeak sets the process's resident high-water mark (VmHWM) back to its resident size.
func resetPeak() {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		log.Fatalf("reset the peak resident size: %v", err)
	}
}

// procField is a size field of /proc/self/status (VmRSS, VmHWM) in bytes.
func procField(name string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		log.Fatalf("read %s: %v (mihbench needs Linux's /proc)", name, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	log.Fatalf("no %s in /proc/self/status", name)
	return 0
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			return strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
		}
	}
	return "unknown CPU"
}

func goamd64() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOAMD64" {
				return s.Value
			}
		}
	}
	return "v1 (default)"
}

// runFAISS writes the stored hashes and a share of the queries to files, times Concord on those
// queries, and runs faiss_bench.py (beside this file) on the same files.
func runFAISS(n int, dist corpus.Model, x *matchindex.Index, flat []uint64, random, planted [][4]uint64, bPerHash float64) {
	dir, err := os.MkdirTemp("", "mihbench-faiss")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	k := min(*faissQueries/2, len(random))
	qs := slices.Concat(random[:k], planted[:k])
	write := func(name string, words []uint64) string {
		b := make([]byte, 8*len(words))
		for i, w := range words {
			binary.LittleEndian.PutUint64(b[8*i:], w)
		}
		path := dir + "/" + name
		if err := os.WriteFile(path, b, 0o600); err != nil {
			log.Fatal(err)
		}
		return path
	}
	qw := make([]uint64, 0, 4*len(qs))
	for _, q := range qs {
		qw = append(qw, q[:]...)
	}
	stored, queries := write("stored.bin", flat), write("queries.bin", qw)
	lat, _ := timeQueries(x, qs)
	slices.Sort(lat)
	concord := fmt.Sprintf("%.0f / %.0f", us(lat[len(lat)/2]), us(lat[len(lat)*99/100]))
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "faiss_bench.py")
	if _, err := os.Stat(script); err != nil { // built with -trimpath: from the checkout's root
		script = filepath.Join("matchindex", "cmd", "mihbench", "faiss_bench.py")
	}
	cmd := exec.Command(*faissPy, script, "--stored", stored, "--queries", queries)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s %s: %v (is python3-faiss installed? make faiss)", *faissPy, script, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Index    string  `json:"index"`
			P50      float64 `json:"p50_us"`
			P99      float64 `json:"p99_us"`
			Recall   float64 `json:"recall"`
			BPerHash float64 `json:"rss_b_per_hash"`
			Build    float64 `json:"build_s"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			log.Fatalf("faiss_bench.py printed %q: %v", line, err)
		}
		faissRows = append(faissRows, fmt.Sprintf("| %d | %s | %s | %.0f | %s | %.0f | %.0f | %.3f | %.0f | %.1f |",
			n, dist, concord, bPerHash, r.Index, r.P50, r.P99, r.Recall, r.BPerHash, r.Build))
	}
}
