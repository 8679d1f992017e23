package server_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server"
	"concord/server/servertest"
)

// faultTrials is how many random places of each kind of data file TestDamagedDataFiles damages:
// CONCORD_FAULT_TRIALS overrides it (make chaos runs 500 of each).
func faultTrials(t *testing.T) int {
	if v := os.Getenv("CONCORD_FAULT_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CONCORD_FAULT_TRIALS=%q: %v", v, err)
		}
		return n
	}
	return 50
}

// faultSeed seeds the choice of places; CONCORD_FAULT_SEED replays a run.
func faultSeed(t *testing.T) uint64 {
	if v := os.Getenv("CONCORD_FAULT_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CONCORD_FAULT_SEED=%q: %v", v, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// dataFileKind is one kind of file a node keeps, and the part of it that holds data (the rest
// of a log segment, or of a file written into reserved space, is zeros that nothing reads).
type dataFileKind struct {
	name string
	// find returns the file's path in a data directory.
	find func(t *testing.T, dataDir string) string
	// region is the span of the file to damage, [0, region(data)).
	region func(data []byte) int
}

func wholeFile(data []byte) int { return len(data) }

// writtenPart ends after the last non-zero byte, plus a frame header: damage right where the next
// write would go is covered too.
func writtenPart(data []byte) int {
	end := len(data)
	for end > 0 && data[end-1] == 0 {
		end--
	}
	return min(len(data), end+16)
}

func segments(t *testing.T, dataDir string) []string {
	names, _ := filepath.Glob(filepath.Join(dataDir, "raft", "wal", "*.wal"))
	if len(names) < 3 {
		t.Fatalf("want at least 3 raft log segments, found %v", names)
	}
	return names
}

func newestSnapshotFile(t *testing.T, dataDir, name string) string {
	dirs, _ := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*"))
	if len(dirs) == 0 {
		t.Fatal("no snapshot")
	}
	return filepath.Join(dirs[len(dirs)-1], name) // names sort by term, then index
}

var dataFileKinds = []dataFileKind{
	{"sealed log segment", func(t *testing.T, d string) string { return segments(t, d)[1] }, writtenPart},
	{"last log segment", func(t *testing.T, d string) string { s := segments(t, d); return s[len(s)-1] }, writtenPart},
	{"log metadata", func(t *testing.T, d string) string { return filepath.Join(d, "raft", "wal", "wal-meta.json") }, writtenPart},
	{"snapshot state", func(t *testing.T, d string) string { return newestSnapshotFile(t, d, "state.bin") }, wholeFile},
	{"snapshot metadata", func(t *testing.T, d string) string { return newestSnapshotFile(t, d, "meta.json") }, wholeFile},
	{"signed checkpoint", func(t *testing.T, d string) string { return filepath.Join(d, "checkpoint") }, writtenPart},
}

// faultNode configures a node quick to elect itself, with small log segments and no snapshot
// but those the test takes.
func faultNode(t *testing.T, dir string) *servertest.Node {
	n := servertest.Prepare(t, servertest.Options{Dir: dir})
	n.Config.Cluster.SegmentBytes = 16 << 10
	n.Config.Cluster.SnapshotBytes = 1 << 40
	n.Config.Cluster.TrailingLogs = 100000
	n.Config.Cluster.HeartbeatTimeout = 50 * time.Millisecond
	n.Config.Cluster.LeaderLeaseTimeout = 50 * time.Millisecond
	return n
}

// pristineDataDir builds a node's data directory holding sealed and open log segments, a
// snapshot with entries after it, and a signed checkpoint, and stops the node.
func pristineDataDir(t *testing.T) *servertest.Node {
	t.Helper()
	n := faultNode(t, t.TempDir())
	srv, err := server.Start(context.Background(), n.Config)
	if err != nil {
		t.Fatal(err)
	}
	n.Server = srv
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fr := n.Client(t, "fr-pharos")
	submit := func(k int) {
		var content []string
		for h := range 40 {
			content = append(content, fmt.Sprintf("notice %d hash %d", k, h))
		}
		if _, err := fr.SubmitNotice(ctx, glorificationNotice(content...)); err != nil {
			t.Fatal(err)
		}
	}
	for k := range 20 {
		submit(k)
	}
	if err := srv.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for k := 20; k < 30; k++ {
		submit(k)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	n.Server = nil
	return n
}

// copyDir copies the directory tree src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fingerprint starts a node on cfg's data, returns its state and log root, and stops it; or
// returns the start's error.
func fingerprint(t *testing.T, n *servertest.Node) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.Start(ctx, n.Config)
	if err != nil {
		return "", err
	}
	defer srv.Shutdown(ctx)
	n.Server = srv
	state, size, root, err := server.Fingerprint(srv)
	if err != nil {
		t.Fatal(err)
	}
	// The node serves that state too.
	if _, err := n.Client(t, "observatory").Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{}); err != nil {
		t.Fatalf("a node that started does not serve: %v", err)
	}
	return fmt.Sprintf("%x/%d/%x", state, size, root), nil
}

// TestDamagedDataFiles damages random places of every kind of file a node keeps (one byte, or a
// run of up to 64, each XORed with a random non-zero byte) in copies of one data directory, and starts a
// node on each: it refuses to start with an error naming the damaged file, or comes up with
// exactly the state and log root of an undamaged copy. Never anything else.
func TestDamagedDataFiles(t *testing.T) {
	t.Parallel()
	pristine := pristineDataDir(t)
	want, err := fingerprint(t, withDataCopy(t, pristine))
	if err != nil {
		t.Fatalf("an undamaged copy does not start: %v", err)
	}
	trials, seed := faultTrials(t), faultSeed(t)
	t.Logf("%d places per kind of file; CONCORD_FAULT_SEED=%d replays them", trials, seed)
	var mu sync.Mutex
	summary := map[string][2]int{}
	t.Cleanup(func() {
		for _, k := range dataFileKinds {
			t.Logf("%-18s refused %2d, came up identical %2d", k.name, summary[k.name][0], summary[k.name][1])
		}
	})
	for ki, kind := range dataFileKinds {
		t.Run(strings.ReplaceAll(kind.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, uint64(ki)))
			refused := 0
			for trial := range trials {
				n := withDataCopy(t, pristine)
				path := kind.find(t, n.DataDir)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				region := kind.region(data)
				off := r.IntN(region)
				length := 1
				if r.IntN(2) == 0 {
					length += r.IntN(64)
				}
				for i := off; i < min(off+length, len(data)); i++ {
					data[i] ^= byte(1 + r.IntN(255))
				}
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
				got, err := fingerprint(t, n)
				switch {
				case err != nil && strings.Contains(err.Error(), path):
					refused++
				case err != nil:
					t.Fatalf("trial %d: %d bytes at %d of %s: the node refused to start without naming the file: %v", trial, length, off, path, err)
				case got != want:
					t.Fatalf("trial %d: %d bytes at %d of %s: the node came up with a state or log that differs from an undamaged copy's", trial, length, off, path)
				}
			}
			mu.Lock()
			summary[kind.name] = [2]int{refused, trials - refused}
			mu.Unlock()
			if refused == 0 && trials >= 5 {
				t.Fatalf("no damage to the %s was ever detected in %d trials", kind.name, trials)
			}
		})
	}
}

// withDataCopy is a node configured like n on a copy of n's data directory.
func withDataCopy(t *testing.T, n *servertest.Node) *servertest.Node {
	t.Helper()
	c := *n
	c.Config.DataDir = filepath.Join(t.TempDir(), "data")
	c.DataDir = c.Config.DataDir
	copyDir(t, n.DataDir, c.DataDir)
	return &c
}
