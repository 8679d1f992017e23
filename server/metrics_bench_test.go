package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server"
	"concord/server/servertest"
)

// BenchmarkMetricsOverhead compares, in one run, two nodes side by side: one without metrics and
// one recording them (every RPC on the provider's and the connect interceptor's series, each
// lookup's latency, each apply's) while a scraper reads its /metrics every second, 15× more often
// than Prometheus's default, so that scrape-time figures (obligations, the index's sizes) are
// paid for too. match: Match calls/s, 10 exact hashes a call, eight callers. write: SubmitNotice
// calls/s (one small notice each, signed by the client, acknowledged after commit), 16 writers.
// Each runs CONCORD_BENCH_ROUNDS rounds (default 6) of one run on each node, in alternating
// order; the median of the rounds' on/off ratios is the figure (DESIGN.md §6: ≤ 5 % cost).
func BenchmarkMetricsOverhead(b *testing.B) {
	on := servertest.Prepare(b, servertest.Options{Metrics: true})
	on.Config.MetricsInterval = 0 // the server's default: the figures at most every 30 s
	srv, err := server.Start(context.Background(), on.Config)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	on.Server = srv
	nodes := map[string]*servertest.Node{"off": servertest.Start(b, servertest.Options{}), "on": on}
	stop := make(chan struct{})
	var scrapes atomic.Int64
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			resp, err := http.Get("http://" + nodes["on"].MetricsAddr() + "/metrics")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				scrapes.Add(1)
			}
		}
	}()
	b.Cleanup(func() { close(stop) })

	ctx := context.Background()
	for _, n := range nodes {
		if _, err := n.Client(b, "fr-pharos").SubmitNotice(ctx, glorificationNotice("metrics overhead 0")); err != nil {
			b.Fatal(err)
		}
	}
	req := &concordv1.MatchRequest{}
	for i := range 10 {
		req.Hashes = append(req.Hashes, sha256Hash(fmt.Sprint("metrics overhead ", i)))
	}
	var written atomic.Int64
	work := map[string]struct {
		workers int
		call    func(n *servertest.Node, b *testing.B) func() error
	}{
		"match": {8, func(n *servertest.Node, b *testing.B) func() error {
			c := n.Client(b, "videoshare")
			return func() error { _, err := c.Matches.Match(ctx, req); return err }
		}},
		"write": {16, func(n *servertest.Node, b *testing.B) func() error {
			c := n.Client(b, "fr-pharos")
			return func() error {
				_, err := c.SubmitNotice(ctx, glorificationNotice(fmt.Sprint("metrics overhead write ", written.Add(1))))
				return err
			}
		}},
	}
	rounds := envInt("CONCORD_BENCH_ROUNDS", 6)
	for _, kind := range []string{"match", "write"} {
		w := work[kind]
		calls := map[string]func() error{"off": w.call(nodes["off"], b), "on": w.call(nodes["on"], b)}
		b.Run(kind, func(b *testing.B) {
			// b.N calls per run; off and on alternate, in turns, so that a busy moment of the
			// shared machine weighs on both alike. Each round compares a pair of runs.
			run := func(name string) float64 {
				var wg sync.WaitGroup
				per := b.N/w.workers + 1
				start := time.Now()
				for range w.workers {
					wg.Go(func() {
						for range per {
							if err := calls[name](); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				return float64(per*w.workers) / time.Since(start).Seconds()
			}
			var off, on, ratios []float64
			for r := range rounds {
				order := []string{"off", "on"}
				if r%2 == 1 {
					order = []string{"on", "off"}
				}
				got := map[string]float64{}
				for _, name := range order {
					got[name] = run(name)
				}
				off, on = append(off, got["off"]), append(on, got["on"])
				ratios = append(ratios, got["on"]/got["off"])
			}
			b.ReportMetric(median(off), "off_calls/s")
			b.ReportMetric(median(on), "on_calls/s")
			b.ReportMetric(median(ratios), "on/off")
			if b.N < 100 {
				return // the framework's first, one-call run
			}
			fmt.Fprintf(os.Stderr, "metrics overhead, %s (%d rounds of %d calls): off %.0f calls/s, on %.0f calls/s (medians); on/off per round %s, median %.3f\n",
				kind, rounds, b.N, median(off), median(on), formatRatios(ratios), median(ratios))
		})
	}
	if got, err := http.Get("http://" + nodes["on"].MetricsAddr() + "/metrics"); err == nil {
		body, _ := io.ReadAll(got.Body)
		got.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "concord_compliance_compute_duration_seconds ") || strings.HasPrefix(line, "concord_notices{") {
				fmt.Fprintf(os.Stderr, "metrics overhead: %s\n", line)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "metrics overhead: %d scrapes during the run\n", scrapes.Load())
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func formatRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.3f", r)
	}
	return strings.Join(parts, " ")
}
