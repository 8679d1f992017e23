package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/pki"
	hashcorpus "concord/matchindex/corpus"
	"concord/server"
	"concord/server/servertest"

	"connectrpc.com/connect/v2/connecthttp"
)

// BenchmarkWhoAmI compares the two ports on the smallest authenticated call: mTLS, identity,
// role check, validation, a registry read. Run with `make bench`.
func BenchmarkWhoAmI(b *testing.B) {
	n := servertest.Start(b, servertest.Options{})
	ctx := context.Background()
	req := &concordv1.WhoAmIRequest{}
	b.Run("port=grpc/client=grpc-go", func(b *testing.B) {
		c := n.Client(b, "videoshare")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Registry.WhoAmI(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	for name, opts := range map[string][]connecthttp.Option{
		"port=https/protocol=connect": nil,
		"port=https/protocol=grpc":    {connecthttp.WithGRPC()},
	} {
		b.Run(name, func(b *testing.B) {
			c := concordv1connect.NewRegistryServiceClient(connectClient(b, n, "videoshare", opts...))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.WhoAmI(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkUpdateRegistry measures an acknowledged registry change: verify the admin's
// signature, check, commit through raft (fsync) and apply. Sequential: one writer's latency.
func BenchmarkUpdateRegistry(b *testing.B) {
	n := servertest.Start(b, servertest.Options{})
	admin := n.Client(b, "hub-ops")
	key, err := pki.LoadSigningKey(n.PKI.SigningKey("hub-ops"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		env := signedBy(b, key, &concordv1.RegistryChange{Author: "hub-ops",
			Change: &concordv1.RegistryChange_UpsertPartner{UpsertPartner: &concordv1.Partner{
				Id: "videoshare", DisplayName: fmt.Sprintf("VideoShare %d", i), Roles: []concordv1.Role{concordv1.Role_ROLE_OPERATOR}}}})
		if _, err := admin.Registry.UpdateRegistry(ctx, &concordv1.UpdateRegistryRequest{Envelope: env}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngest measures notices submitted through the gRPC port into committed state: signed
// by the client, verified, checked, committed through raft (fsync) and applied, by several
// authorities at once. It reports hashes/s and notices/s (DESIGN.md §6 asks ≥ 50 000 hashes/s).
// Signing happens before the timer, as an authority's system would prepare a batch.
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hashes_per_notice=%d", size), func(b *testing.B) {
			notices := benchWrites(b, benchTopology{"nodes=1", 1, false}, size, 4, servertest.Options{})
			// Each notice is one transparency-log entry (and one Merkle leaf).
			b.ReportMetric(notices, "log_appends/s")
		})
	}
}

// BenchmarkFeedLatency measures the time from a notice's commit to its delivery to 100
// concurrent watchers (DESIGN.md §6: p99 ≤ 50 ms), and the submit rate while they watch, beside
// the submit rate with no watcher in the same run. The commit time is the leader's time stamp of
// the statement, taken just before the raft append: the figure includes the fsync, so it is an
// upper bound of commit-to-delivery.
func BenchmarkFeedLatency(b *testing.B) {
	const watchers = 100
	for _, withWatchers := range []bool{false, true} {
		b.Run(fmt.Sprintf("watchers=%d", map[bool]int{false: 0, true: watchers}[withWatchers]), func(b *testing.B) {
			n := servertest.Start(b, servertest.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var (
				mu        sync.Mutex
				latencies []time.Duration
				received  sync.WaitGroup
			)
			if withWatchers {
				c := n.Client(b, "videoshare")
				for range watchers {
					stream, err := c.Notices.WatchNotices(ctx, &concordv1.WatchNoticesRequest{})
					if err != nil {
						b.Fatal(err)
					}
					received.Add(1)
					go func() {
						defer received.Done()
						got := 0
						for got < b.N {
							msg, err := stream.Recv()
							if err != nil {
								return
							}
							if ev := msg.GetEvent(); ev != nil {
								d := time.Since(ev.GetAt().AsTime())
								mu.Lock()
								latencies = append(latencies, d)
								mu.Unlock()
								got++
							}
						}
					}()
				}
				time.Sleep(200 * time.Millisecond) // every stream open
			}
			fr := n.Client(b, "fr-pharos")
			envs := make([]*concordv1.Envelope, b.N)
			for i := range envs {
				env, err := fr.SignNotice(ctx, glorificationNotice(fmt.Sprint("feed bench ", i, " ", withWatchers)))
				if err != nil {
					b.Fatal(err)
				}
				envs[i] = env
			}
			b.ResetTimer()
			start := time.Now()
			for _, env := range envs {
				if _, err := fr.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{Envelope: env}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "notices/s")
			if !withWatchers {
				return
			}
			received.Wait()
			b.StopTimer()
			slices.Sort(latencies)
			q := func(p float64) float64 {
				return float64(latencies[min(int(p*float64(len(latencies))), len(latencies)-1)].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.50), "p50_ms")
			b.ReportMetric(q(0.99), "p99_ms")
			b.ReportMetric(float64(len(latencies)), "deliveries")
		})
	}
}

// BenchmarkRestart stores random PDQ hashes through the API (1 M by default; CONCORD_BENCH_HASHES
// sets another number) in notices of 10 000 hashes, one big history (CONCORD_BENCH_NOTICE_HASHES
// sets another size, or several separated by commas, run side by side: 10 makes a history of
// many small notices), submitted by eight writers at once. It reports the node's resident memory per stored hash, all in, then restarts it twice on
// the same data — as the ingest left it (its latest automatic snapshot, taken every 64 MiB of
// log, and the log after it), then right after a snapshot — and reports the time from
// server.Start until a Match is answered (DESIGN.md §6: back and serving in ≤ 10 s, ≤ 400
// bytes a hash), and the size of the raft log and snapshots on disk. The memory right after
// ingest may include a merge of the match index in flight (old and new copies); the one after
// the restart from the snapshot is the steady state; each restart's peak resident memory
// (VmHWM, reset before it) is reported per hash and, the larger, against that steady state.
// CONCORD_BENCH_CPU_PROFILE=PREFIX writes a
// CPU profile of each restart to PREFIX-SIZE-as-left.pprof and PREFIX-SIZE-snapshot.pprof.
// Run with -benchtime 1x.
// CONCORD_BENCH_DIST=beta4 (or another matchindex/corpus model) stores skewed hashes instead of
// uniform ones; CONCORD_BENCH_DIST=file:PATH the hashes of a list (pdqcorpus's, or a real one:
// one PDQ hash a line, as mihbench -hashes reads it), at most as many as it stores.
func BenchmarkRestart(b *testing.B) {
	total := benchEnvInt(b, "CONCORD_BENCH_HASHES", 1_000_000)
	if path, ok := strings.CutPrefix(os.Getenv("CONCORD_BENCH_DIST"), "file:"); ok {
		g, err := hashcorpus.FromFile(path)
		if err != nil {
			b.Fatal(err)
		}
		benchHashFile, total = g, min(total, g.Len())
	}
	sizes := []int{10_000}
	if v := os.Getenv("CONCORD_BENCH_NOTICE_HASHES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("CONCORD_BENCH_NOTICE_HASHES=%q: want positive whole numbers, comma-separated", v)
			}
			sizes = append(sizes, n)
		}
	}
	for _, perNotice := range sizes {
		b.Run(fmt.Sprintf("hashes=%d/notice_hashes=%d", total, perNotice), func(b *testing.B) {
			benchRestart(b, total, perNotice)
		})
	}
}

// benchHashFile is the list CONCORD_BENCH_DIST=file:PATH names, read before any memory is
// measured and kept to the end, so that no figure counts it (10 M hashes hold 320 MB).
var benchHashFile *hashcorpus.Gen

// benchRestart is BenchmarkRestart for total hashes in notices of perNotice.
func benchRestart(b *testing.B, total, perNotice int) {
	defer runtime.KeepAlive(benchHashFile)
	notices := (total + perNotice - 1) / perNotice
	for range b.N {
		dir := b.TempDir()
		rssBefore := vmRSS(b)
		ctx := context.Background()
		// The node runs directly (not through servertest.Start, whose clean-up would keep it in
		// memory after its restart) so that the memory measured is the running node's.
		n := servertest.Prepare(b, servertest.Options{Dir: dir})
		node, err := server.Start(ctx, n.Config)
		if err != nil {
			b.Fatal(err)
		}
		n.Server = node
		authorities := []struct{ partner, basis string }{{"fr-pharos", "fr.cp.421-2-5"}, {"de-bka", "de.stgb.140"}}
		start := time.Now()
		var (
			next atomic.Int64
			wg   sync.WaitGroup
		)
		// CONCORD_BENCH_DIST draws the hashes from a model of matchindex/corpus (beta4, beta05,
		// clustered) instead of uniform random ones, shared by the writers.
		var draw func() []byte
		if d := os.Getenv("CONCORD_BENCH_DIST"); d != "" {
			g := benchHashFile
			if g != nil {
				g = g.Again()
			} else {
				m, err := hashcorpus.Parse(d)
				if err != nil {
					b.Fatalf("CONCORD_BENCH_DIST: %v", err)
				}
				g = hashcorpus.New(m, 1, total)
			}
			mu := &sync.Mutex{}
			draw = func() []byte {
				mu.Lock()
				h := g.Next()
				mu.Unlock()
				v := make([]byte, 32)
				for i, w := range h {
					binary.BigEndian.PutUint64(v[8*i:], w)
				}
				return v
			}
		}
		for w := range 8 {
			a := authorities[w%len(authorities)]
			c := n.Client(b, a.partner)
			r := rand.New(rand.NewPCG(1, uint64(w)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(next.Add(1)) - 1
					if k >= notices {
						return
					}
					notice := &concordv1.Notice{LegalBasis: a.basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
					seen := map[string]bool{} // a model may repeat a hash; a notice lists each once
					for range min(perNotice, total-k*perNotice) {
						v := make([]byte, 32)
						for j := range v {
							v[j] = byte(r.Uint32())
						}
						for draw != nil {
							if v = draw(); !seen[string(v)] {
								seen[string(v)] = true
								break
							}
						}
						notice.Hashes = append(notice.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: v, Quality: 90})
					}
					if _, err := c.SubmitNotice(ctx, notice); err != nil {
						b.Error(err)
						return
					}
					if step := max(notices/10, 1); (k+1)%step == 0 {
						fmt.Fprintf(os.Stderr, "ingest: %d of %d notices after %v\n", k+1, notices, time.Since(start).Round(time.Second))
					}
				}
			}()
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "ingest_hashes/s")
		runtime.GC()
		debug.FreeOSMemory()
		b.ReportMetric(float64(vmRSS(b)-rssBefore)/float64(total), "rss_bytes/hash")
		if path := os.Getenv("CONCORD_BENCH_HEAP_PROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.WriteHeapProfile(f); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}

		cfg := n.Config
		var peaks []float64 // each restart's peak resident bytes a hash
		restart := func(label, profile string) {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			// A restarted process starts with none of the old one's work in flight: the old
			// match index's background merges (the ingest leaves some) must not share the cores
			// with the restart measured.
			old := node
			if err := node.Shutdown(sctx); err != nil {
				b.Fatal(err)
			}
			server.WaitIndexMerges(old)
			// A restart is a new process: nothing of the old node may stay reachable (n holds
			// it too) or resident (freed memory goes back to the system before the peak is reset).
			node, n.Server, old = nil, nil, nil
			runtime.GC()
			debug.FreeOSMemory()
			b.ReportMetric(float64(dirBytes(b, filepath.Join(cfg.DataDir, "raft", "wal")))/1e6, label+"_log_MB")
			b.ReportMetric(float64(dirBytes(b, filepath.Join(cfg.DataDir, "raft", "snapshots")))/1e6, label+"_snapshots_MB")
			if prefix := os.Getenv("CONCORD_BENCH_CPU_PROFILE"); prefix != "" {
				f, err := os.Create(fmt.Sprintf("%s-%d-%s.pprof", prefix, perNotice, profile))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				defer pprof.StopCPUProfile()
			}
			resetPeakRSS(b)
			t0 := time.Now()
			if node, err = server.Start(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			n.Server = node
			q := &concordv1.MatchRequest{Hashes: []*concordv1.Hash{{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: make([]byte, 32), Quality: 90}}}
			if _, err := n.Client(b, "videoshare").Matches.Match(ctx, q); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(t0).Seconds(), label+"_s")
			peak := float64(procStatus(b, "VmHWM")-rssBefore) / float64(total)
			b.ReportMetric(peak, label+"_peak_bytes/hash")
			peaks = append(peaks, peak)
		}
		restart("restart_as_left", "as-left")
		if err := node.Snapshot(); err != nil {
			b.Fatal(err)
		}
		restart("restart_snapshot", "snapshot")
		defer node.Shutdown(context.Background())
		// Resident memory of the node rebuilt from the snapshot, merges and ingest buffers gone.
		runtime.GC()
		debug.FreeOSMemory()
		steady := float64(vmRSS(b)-rssBefore) / float64(total)
		b.ReportMetric(steady, "rss_after_restart_bytes/hash")
		// Issue 17's bound: a restart's peak at most 1.5× the steady state.
		b.ReportMetric(slices.Max(peaks)/steady, "restart_peak/steady")
	}
}

// benchEnvInt is the integer in the environment variable name, or def.
func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

// dirBytes is the size of the files under dir.
func dirBytes(b *testing.B, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}

// vmRSS is this process's resident memory, in bytes.
func vmRSS(b *testing.B) int64 { return procStatus(b, "VmRSS") }

// resetPeakRSS sets the process's resident high-water mark (VmHWM) back to its resident size.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset the peak resident size: %v", err)
	}
}

// procStatus is a size field of /proc/self/status (VmRSS, VmHWM), in bytes.
func procStatus(b *testing.B, field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
