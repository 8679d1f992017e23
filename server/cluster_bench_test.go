package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/server"
	"concord/server/servertest"

	"google.golang.org/protobuf/types/known/durationpb"
)

// benchTopology is where a cluster benchmark's clients send their calls.
type benchTopology struct {
	name  string
	nodes int
	// spread: the clients are spread over every node; otherwise they all call the leader.
	spread bool
}

var benchTopologies = []benchTopology{
	{"nodes=1", 1, false},
	{"nodes=3/clients=leader", 3, false},
	{"nodes=3/clients=spread", 3, true},
}

// benchNodes starts a topology's nodes and returns the gRPC port each client should call, in
// turn. A single node runs alone, as `concord serve` without --raft-addr does.
func benchNodes(b *testing.B, top benchTopology, opts servertest.Options) ([]*servertest.Node, func(i int) *servertest.Node) {
	b.Helper()
	if top.nodes == 1 {
		n := servertest.Start(b, opts)
		return []*servertest.Node{n}, func(int) *servertest.Node { return n }
	}
	c := servertest.StartCluster(b, top.nodes, opts)
	leader := c.Leader(b, 10*time.Second)
	return c.Nodes, func(i int) *servertest.Node {
		if !top.spread {
			return c.Nodes[leader]
		}
		return c.Nodes[i%len(c.Nodes)]
	}
}

// BenchmarkClusterWrites measures notices submitted into committed state on one node alone and
// on a three-node cluster (every write replicated to a majority, each node fsyncing its log),
// with the writers calling the leader or spread over every node (followers forward their writes
// to the leader, then wait until they have applied them). All nodes share the machine's cores.
// Signing happens before the timer, as in BenchmarkIngest.
func BenchmarkClusterWrites(b *testing.B) {
	for _, size := range []int{1, 1000} {
		for _, top := range benchTopologies {
			b.Run(fmt.Sprintf("hashes_per_notice=%d/%s", size, top.name), func(b *testing.B) {
				benchWrites(b, top, size, 16, servertest.Options{})
			})
		}
	}
}

// BenchmarkClusterLogCheck measures what the voters' periodic comparison of their logs costs:
// one-hash notices written into a three-node cluster (writers spread over the nodes) with the
// comparison every 5 s (the default), every 100 ms, and never; then the CPU time the idle
// cluster uses over 10 s (idle_cpu_ms/s: the three nodes and their clients, in this process),
// where the comparisons are all there is to do. Run it long enough for several 5 s comparisons
// (-benchtime 10000x is ≈15 s a run here).
func BenchmarkClusterLogCheck(b *testing.B) {
	for _, c := range []struct {
		name     string
		interval time.Duration
	}{{"log_check=5s", 0}, {"log_check=100ms", 100 * time.Millisecond}, {"log_check=off", -1}} {
		b.Run(c.name, func(b *testing.B) {
			benchWrites(b, benchTopology{"nodes=3/clients=spread", 3, true}, 1, 16,
				servertest.Options{Cluster: server.ClusterConfig{LogCheckInterval: c.interval}})
			b.StopTimer()
			cpu0, t0 := cpuTime(b), time.Now()
			time.Sleep(10 * time.Second) // a window to measure, not a wait for anything
			b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/time.Since(t0).Seconds(), "idle_cpu_ms/s")
		})
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchWrites has writers (four authorities in turn) submit b.N notices of size hashes each
// into the topology's nodes, signed before the timer, and reports notices/s and hashes/s; it
// returns notices/s.
func benchWrites(b *testing.B, top benchTopology, size, writers int, opts servertest.Options) float64 {
	_, pick := benchNodes(b, top, opts)
	ctx := context.Background()
	type writer struct {
		c    *client.Client
		envs []*concordv1.Envelope
	}
	partners := []string{"fr-pharos", "de-bka", "be-fedpol", "gb-ctiru"}
	ws := make([]*writer, writers)
	for i := range ws {
		ws[i] = &writer{c: pick(i).Client(b, partners[i%len(partners)])}
	}
	for i := range b.N {
		w := ws[i%writers]
		n := &concordv1.Notice{LegalBasis: authorityBases[partners[i%writers%len(partners)]], Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
		for h := range size {
			n.Hashes = append(n.Hashes, sha256Hash(fmt.Sprintf("cluster bench %s %d %d", b.Name(), i, h)))
		}
		env, err := w.c.SignNotice(ctx, n)
		if err != nil {
			b.Fatal(err)
		}
		w.envs = append(w.envs, env)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, env := range w.envs {
				if _, err := w.c.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/elapsed, "notices/s")
	b.ReportMetric(float64(b.N*size)/elapsed, "hashes/s")
	// CPU per notice, every node and client in this process: steadier than a rate that the
	// disk's fsyncs make noisy.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu_us/notice")
	return float64(b.N) / elapsed
}

// BenchmarkClusterMatch measures Match calls (batches of 100 SHA-256 hashes, a tenth of them
// known) answered by one node alone and by a three-node cluster, with the clients calling the
// leader or spread over every node; spread, either linearizable (each follower asks the leader
// how far the log goes, one round trip shared by the calls waiting) or with max_staleness = 1 s
// (a follower that heard from the leader within it answers from its own state). All nodes share
// the machine's cores.
func BenchmarkClusterMatch(b *testing.B) {
	tops := append([]benchTopology{}, benchTopologies...)
	for _, stale := range []bool{false, true} {
		for _, top := range tops {
			if stale && !top.spread {
				continue
			}
			name := top.name
			if top.spread {
				name += map[bool]string{false: "/linearizable", true: "/max_staleness=1s"}[stale]
			}
			b.Run(name, func(b *testing.B) {
				nodes, pick := benchNodes(b, top, servertest.Options{})
				ctx := context.Background()
				// 100 notices of 100 hashes each.
				authority := pick(0).Client(b, "fr-pharos")
				var known []*concordv1.Hash
				for i := range 100 {
					n := &concordv1.Notice{LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
					for h := range 100 {
						n.Hashes = append(n.Hashes, sha256Hash(fmt.Sprintf("known %d %d", i, h)))
					}
					if _, err := authority.SubmitNotice(ctx, n); err != nil {
						b.Fatal(err)
					}
					known = append(known, n.Hashes[0])
				}
				req := &concordv1.MatchRequest{}
				for i := range 100 {
					if i%10 == 0 {
						req.Hashes = append(req.Hashes, known[i])
					} else {
						req.Hashes = append(req.Hashes, sha256Hash(fmt.Sprintf("unknown %d", i)))
					}
				}
				if stale {
					req.MaxStaleness = durationpb.New(time.Second)
				}
				clients := make([]*client.Client, len(nodes))
				for i := range clients {
					clients[i] = pick(i).Client(b, "videoshare")
				}
				var next atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					c := clients[int(next.Add(1))%len(clients)]
					for pb.Next() {
						resp, err := c.Matches.Match(ctx, req)
						if err != nil {
							b.Error(err)
							return
						}
						if len(resp.GetResults()[0].GetMatches()) != 1 {
							b.Error("a known hash did not match")
							return
						}
					}
				})
				elapsed := time.Since(start).Seconds()
				b.ReportMetric(float64(b.N)/elapsed, "queries/s")
				b.ReportMetric(float64(b.N*len(req.Hashes))/elapsed, "hashes/s")
			})
		}
	}
}

// BenchmarkDamagedFollowerRepair measures how long a follower whose raft log was damaged takes
// to find out and to repair itself from its cluster. A three-node cluster takes 10 000 one-hash
// notices (CONCORD_BENCH_NOTICES sets another number); a follower is stopped, 64 bytes of an
// entry in the middle of its log are flipped, and it is started again. Reported, from its
// start: detect_s, when it logs that it repairs itself (the damaged file found, its raft
// state set aside); repaired_s, when it logs that its log agrees with the other voters'; and
// serving_s, when server.Start returns (caught up and serving). Run with -benchtime 1x.
func BenchmarkDamagedFollowerRepair(b *testing.B) {
	notices := benchEnvInt(b, "CONCORD_BENCH_NOTICES", 10_000)
	for range b.N {
		b.StopTimer()
		c := servertest.StartCluster(b, 3, servertest.Options{})
		leader := c.Leader(b, 30*time.Second)
		ctx := context.Background()
		var (
			next atomic.Int64
			wg   sync.WaitGroup
		)
		for w := range 16 {
			cl := c.Nodes[leader].Client(b, []string{"fr-pharos", "de-bka", "be-fedpol", "gb-ctiru"}[w%4])
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := int(next.Add(1)) - 1; k < notices; k = int(next.Add(1)) - 1 {
					me, err := cl.Me(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					n := &concordv1.Notice{LegalBasis: authorityBases[me.GetId()], Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
						Hashes: []*concordv1.Hash{sha256Hash(fmt.Sprintf("repair bench %d", k))}}
					if _, err := cl.SubmitNotice(ctx, n); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		f := others(c, leader)[0]
		// Every node holds every notice before the follower stops.
		if _, err := c.Nodes[f].Client(b, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{}); err != nil {
			b.Fatal(err)
		}
		c.Stop(b, f)
		damageEntry(b, c.Nodes[f].DataDir, fmt.Sprintf("repair bench %d", notices/2))

		var logs logBuffer
		c.Nodes[f].Config.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		b.StartTimer()
		start := time.Now()
		c.Restart(b, f)
		serving := time.Since(start)
		b.StopTimer()
		at := func(msg string) float64 {
			for _, line := range strings.Split(logs.String(), "\n") {
				var l struct {
					Time time.Time `json:"time"`
					Msg  string    `json:"msg"`
				}
				if json.Unmarshal([]byte(line), &l) == nil && strings.HasPrefix(l.Msg, msg) {
					return l.Time.Sub(start).Seconds()
				}
			}
			b.Fatalf("the follower never logged %q:\n%s", msg, logs.String())
			return 0
		}
		// The follower's own account of its start, for where the time goes.
		var timeline []string
		for _, line := range strings.Split(logs.String(), "\n") {
			var l struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &l) == nil {
				timeline = append(timeline, fmt.Sprintf("%6.3fs %s", l.Time.Sub(start).Seconds(), firstWords(l.Msg, 12)))
			}
		}
		b.Logf("the follower's log from its start:\n%s", strings.Join(timeline, "\n"))
		b.ReportMetric(at("repairing this node from its cluster"), "detect_s")
		b.ReportMetric(at("node repaired from its cluster"), "repaired_s")
		b.ReportMetric(serving.Seconds(), "serving_s")
	}
}

// firstWords is s cut after n words.
func firstWords(s string, n int) string {
	if f := strings.Fields(s); len(f) > n {
		return strings.Join(f[:n], " ") + " …"
	}
	return s
}
