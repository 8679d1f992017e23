package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/ratelimit"
	"concord/server/servertest"
)

// envInt reads a benchmark size from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// randomPDQ is n random PDQ hashes of good quality.
func randomPDQ(r *rand.Rand, n int) []*concordv1.Hash {
	hashes := make([]*concordv1.Hash, n)
	for i := range hashes {
		v := make([]byte, 32)
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		hashes[i] = &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: v, Quality: 90}
	}
	return hashes
}

// BenchmarkFairness measures, in one run on one node holding CONCORD_BENCH_HASHES PDQ hashes
// (default 200 000), a victim platform's single-hash Match latency alone, then while another
// platform floods at its limits: CONCORD_BENCH_FLOOD_STREAMS MatchStreams (default 8, the default
// cap) sending batches of 10 000 PDQ hashes as fast as the node takes them (default limits: the
// flooder's work budget paces them). Goal: the victim's p99 within 2× of alone.
// CONCORD_BENCH_LIMITS=off runs the same on a node with every limit off, for comparison.
func BenchmarkFairness(b *testing.B) {
	total, streams, calls := envInt("CONCORD_BENCH_HASHES", 200_000), envInt("CONCORD_BENCH_FLOOD_STREAMS", 8), envInt("CONCORD_BENCH_VICTIM_CALLS", 2_000)
	limits := &ratelimit.Config{}
	if os.Getenv("CONCORD_BENCH_LIMITS") == "off" {
		limits.Off = true
	}
	n := servertest.Start(b, servertest.Options{Limits: limits})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 7))
	fr := n.Client(b, "fr-pharos")
	for done := 0; done < total; done += 10_000 {
		notice := glorificationNotice()
		notice.Hashes = randomPDQ(r, min(10_000, total-done))
		if _, err := fr.SubmitNotice(ctx, notice); err != nil {
			b.Fatal(err)
		}
	}
	victim, flooder := n.Client(b, "socialnet"), n.Client(b, "videoshare")
	query := &concordv1.MatchRequest{Hashes: randomPDQ(r, 1)}
	// The victim calls at 50/s, well within its own limits, and measures each call.
	measure := func() []time.Duration {
		lat := make([]time.Duration, 0, calls)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range calls {
			<-tick.C
			start := time.Now()
			if _, err := victim.Matches.Match(ctx, query); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		return lat
	}
	q := func(lat []time.Duration, p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	b.ResetTimer()
	for range b.N {
		alone := measure()

		floodCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var batches, refused sync.Map
		for s := range streams {
			wg.Go(func() {
				stream, err := flooder.Matches.MatchStream(floodCtx)
				if err != nil {
					return
				}
				batch := &concordv1.MatchStreamRequest{Batch: &concordv1.MatchRequest{Hashes: randomPDQ(rand.New(rand.NewPCG(uint64(s), 1)), 10_000)}}
				for k := 0; ; k++ {
					if err := stream.Send(batch); err != nil {
						refused.Store(s, err)
						return
					}
					if _, err := stream.Recv(); err != nil {
						refused.Store(s, err)
						return
					}
					batches.Store(s, k+1)
				}
			})
		}
		floodStart := time.Now()
		flooded := measure()
		floodTook := time.Since(floodStart)
		stop()
		wg.Wait()
		sent := 0
		batches.Range(func(_, v any) bool { sent += v.(int); return true })

		b.ReportMetric(float64(q(alone, 0.5).Microseconds())/1000, "alone_p50_ms")
		b.ReportMetric(float64(q(alone, 0.99).Microseconds())/1000, "alone_p99_ms")
		b.ReportMetric(float64(q(flooded, 0.5).Microseconds())/1000, "flood_p50_ms")
		b.ReportMetric(float64(q(flooded, 0.99).Microseconds())/1000, "flood_p99_ms")
		b.ReportMetric(float64(q(flooded, 0.99))/float64(q(alone, 0.99)), "p99_ratio")
		b.ReportMetric(float64(sent)*10_000/floodTook.Seconds(), "flood_hashes/s")
		fmt.Fprintf(os.Stderr, "fairness (limits off: %v) at %d hashes: victim alone p50 %v p99 %v max %v; during a flood of %d streams (%d batches of 10 000 PDQ, %.0f hashes/s) p50 %v p99 %v max %v: p99 ×%.2f\n",
			limits.Off, total, q(alone, 0.5), q(alone, 0.99), alone[len(alone)-1], streams, sent, float64(sent)*10_000/floodTook.Seconds(),
			q(flooded, 0.5), q(flooded, 0.99), flooded[len(flooded)-1], float64(q(flooded, 0.99))/float64(q(alone, 0.99)))
	}
}

// BenchmarkLimitingOverhead compares, in one run, Match calls/s (10 exact hashes a call, eight
// callers) on a node with every limit off and on a node whose limits are on but never bind (so
// every call is charged, every batch scheduled fairly): the cost of cost-based limiting.
func BenchmarkLimitingOverhead(b *testing.B) {
	never := ratelimit.Limits{Requests: 1e9, RequestBurst: 1e9, Work: 1e12, WorkBurst: 1e12}
	nodes := map[string]*servertest.Node{
		"off": servertest.Start(b, servertest.Options{}),
		"on":  servertest.Start(b, servertest.Options{Limits: &ratelimit.Config{Default: never}}),
	}
	req := &concordv1.MatchRequest{}
	for i := range 10 {
		req.Hashes = append(req.Hashes, sha256Hash(fmt.Sprint("overhead ", i)))
	}
	rates := map[string]float64{}
	for _, name := range []string{"off", "on", "off", "on"} {
		c := nodes[name].Client(b, "videoshare")
		b.Run(name, func(b *testing.B) {
			const workers = 8
			var wg sync.WaitGroup
			per := b.N/workers + 1
			start := time.Now()
			for range workers {
				wg.Go(func() {
					for range per {
						if _, err := c.Matches.Match(context.Background(), req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			rate := float64(per*workers) / time.Since(start).Seconds()
			rates[name] = max(rates[name], rate)
			b.ReportMetric(rate, "calls/s")
		})
	}
	b.Logf("limits on: %.2f× the Match calls/s of limits off (best of two runs each)", rates["on"]/rates["off"])
}
