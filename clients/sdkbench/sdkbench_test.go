// Package sdkbench_test measures Match calls a second from the Go, Python and TypeScript SDKs
// against one node, side by side in one run:
//
//	make bench-sdk
//	go test ./clients/sdkbench -run '^$' -bench . -benchtime 1x
//
// Each SDK sends the same batches from one client, one call after the other, for
// CONCORD_SDKBENCH_SECONDS (default 5) per batch size; the figures are calls/s, hashes/s and
// the ratio to Go's calls/s. TestScriptsMatch checks, in `make test`, that each script runs and
// finds what it should.
package sdkbench_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"
)

// fixture is a node holding notices of PDQ hashes, and files of query batches for it.
type fixture struct {
	node    *servertest.Node
	queries map[int]string // batch size → file
	batches map[int][][]*concordv1.Hash
}

const (
	notices        = 10
	hashesANotice  = 1000
	batchesInTurns = 20
)

// newFixture starts a node with notices × hashesANotice random PDQ hashes, and writes batches
// of each size: half near-duplicates of stored hashes (4 bits flipped), half unrelated hashes.
func newFixture(tb testing.TB, sizes ...int) *fixture {
	tb.Helper()
	n := servertest.Start(tb, servertest.Options{})
	c := n.Client(tb, "fr-pharos")
	r := rand.New(rand.NewPCG(1, 2))
	random := func() []byte {
		v := make([]byte, 32)
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		return v
	}
	var stored [][]byte
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for range notices {
		notice := &concordv1.Notice{LegalBasis: "fr.cp.421-2-5", Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
		for range hashesANotice {
			v := random()
			stored = append(stored, v)
			notice.Hashes = append(notice.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: v, Quality: 100})
		}
		if _, err := c.SubmitNotice(ctx, notice); err != nil {
			tb.Fatal(err)
		}
	}
	f := &fixture{node: n, queries: map[int]string{}, batches: map[int][][]*concordv1.Hash{}}
	dir := tb.TempDir()
	for _, size := range sizes {
		var lines []string
		for range batchesInTurns {
			var batch []*concordv1.Hash
			var hexes []string
			for k := range size {
				v := random()
				if k%2 == 0 {
					v = append([]byte(nil), stored[r.IntN(len(stored))]...)
					for _, bit := range r.Perm(256)[:4] {
						v[bit/8] ^= 1 << (bit % 8)
					}
				}
				batch = append(batch, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: v, Quality: 100})
				hexes = append(hexes, hex.EncodeToString(v))
			}
			f.batches[size] = append(f.batches[size], batch)
			lines = append(lines, strings.Join(hexes, ","))
		}
		file := filepath.Join(dir, fmt.Sprintf("queries-%d.txt", size))
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		f.queries[size] = file
	}
	return f
}

// result is what one SDK did in its time.
type result struct {
	Calls   int     `json:"calls"`
	Hashes  int     `json:"hashes"`
	Seconds float64 `json:"seconds"`
	Matched int     `json:"matched"`
}

func (r result) callsPerSecond() float64 { return float64(r.Calls) / r.Seconds }

// goMatch sends the batches of size from the Go SDK for seconds.
func (f *fixture) goMatch(tb testing.TB, size int, seconds float64) result {
	tb.Helper()
	c := f.node.Client(tb, "videoshare")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	batches := f.batches[size]
	if _, err := c.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: batches[0]}); err != nil {
		tb.Fatal(err)
	}
	var res result
	start := time.Now()
	for {
		batch := batches[res.Calls%len(batches)]
		resp, err := c.Matches.Match(ctx, &concordv1.MatchRequest{Hashes: batch})
		if err != nil {
			tb.Fatal(err)
		}
		res.Calls++
		res.Hashes += len(batch)
		for _, r := range resp.GetResults() {
			if len(r.GetMatches()) > 0 {
				res.Matched++
			}
		}
		if res.Seconds = time.Since(start).Seconds(); res.Seconds >= seconds {
			return res
		}
	}
}

// repoRoot is the project's root, two levels up from this package.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// pythonMatch runs match.py with Debian's python3 and the Python SDK.
func (f *fixture) pythonMatch(tb testing.TB, size int, seconds float64) result {
	tb.Helper()
	cmd := exec.Command("/usr/bin/python3", "match.py", f.node.GRPCAddr(), f.node.PKI.Dir, f.queries[size], strconv.FormatFloat(seconds, 'f', -1, 64))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(repoRoot(tb), "clients", "python"), "PYTHONDONTWRITEBYTECODE=1")
	return run(tb, cmd, "the Python SDK needs python3-grpcio, python3-protobuf and python3-cryptography: run 'make python-deps'")
}

// typescriptMatch runs match.mjs with node and the TypeScript SDK, compiled once per run into
// clients/typescript/dist-sdkbench (not dist/, which the TypeScript package's own tests rebuild
// while these run beside them).
func (f *fixture) typescriptMatch(tb testing.TB, size int, seconds float64) result {
	tb.Helper()
	dir := filepath.Join(repoRoot(tb), "clients", "typescript")
	out := filepath.Join(dir, "dist-sdkbench")
	buildTypeScript.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
			buildErr = fmt.Errorf("the TypeScript SDK's packages are not installed: run 'make ts-deps' (%v)", err)
			return
		}
		cmd := exec.Command(filepath.Join(dir, "node_modules", ".bin", "tsc"), "-p", dir, "--outDir", out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%s: %v\n%s", cmd, err, msg)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	cmd := exec.Command("node", "match.mjs", f.node.GRPCAddr(), f.node.PKI.Dir, f.queries[size], strconv.FormatFloat(seconds, 'f', -1, 64))
	cmd.Env = append(os.Environ(), "CONCORD_TS_SDK="+filepath.Join(out, "index.js"))
	return run(tb, cmd, "the TypeScript SDK needs node 20 or later")
}

var (
	buildTypeScript sync.Once
	buildErr        error
)

// run runs a script that prints a result as JSON.
func run(tb testing.TB, cmd *exec.Cmd, hint string) result {
	tb.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s: %v\n%s\n(%s)", cmd, err, stderr.String(), hint)
	}
	var res result
	if err := json.Unmarshal(out, &res); err != nil || res.Calls == 0 {
		tb.Fatalf("%s printed %q: %v", cmd, out, err)
	}
	return res
}

// TestScriptsMatch: each SDK's script sends its batches and finds the near-duplicates, and only
// them, as the Go SDK does (a benchmark of scripts that match nothing would measure nothing).
func TestScriptsMatch(t *testing.T) {
	const size = 10
	f := newFixture(t, size)
	want := f.goMatch(t, size, 0)
	if want.Calls != 1 || want.Matched != size/2 {
		t.Fatalf("Go SDK: %+v, want one call matching %d hashes", want, size/2)
	}
	for name, match := range map[string]func(testing.TB, int, float64) result{"python": f.pythonMatch, "typescript": f.typescriptMatch} {
		got := match(t, size, 0)
		if got.Calls != 1 || got.Hashes != size || got.Matched != want.Matched {
			t.Errorf("%s: %+v, want one call of %d hashes matching %d", name, got, size, want.Matched)
		}
	}
}

// BenchmarkMatchFromEachSDK reports, for batches of 1 and of 100 hashes, each SDK's calls/s and
// hashes/s from one client, and its calls/s as a share of Go's (x-go).
func BenchmarkMatchFromEachSDK(b *testing.B) {
	seconds := 5.0
	if s := os.Getenv("CONCORD_SDKBENCH_SECONDS"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 {
			b.Fatalf("CONCORD_SDKBENCH_SECONDS=%q: want a positive number of seconds", s)
		}
		seconds = v
	}
	sizes := []int{1, 100}
	f := newFixture(b, sizes...)
	sdks := []struct {
		name  string
		match func(testing.TB, int, float64) result
	}{{"go", f.goMatch}, {"python", f.pythonMatch}, {"typescript", f.typescriptMatch}}
	for _, size := range sizes {
		var goCalls float64
		for _, sdk := range sdks {
			b.Run(fmt.Sprintf("batch=%d/%s", size, sdk.name), func(b *testing.B) {
				res := sdk.match(b, size, seconds)
				cps := res.callsPerSecond()
				if sdk.name == "go" {
					goCalls = cps
				}
				b.ReportMetric(cps, "calls/s")
				b.ReportMetric(float64(res.Hashes)/res.Seconds, "hashes/s")
				if goCalls > 0 {
					b.ReportMetric(cps/goCalls, "x-go")
				}
			})
		}
	}
}
