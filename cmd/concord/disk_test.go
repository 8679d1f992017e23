package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// smallDisk is a tmpfs of a given size, mounted in a mount namespace of its own that a holder
// process keeps alive (so that the mount outlives the node's kill -9 and goes with the test).
type smallDisk struct {
	holder *exec.Cmd
	// dir is the mount point as the node sees it; outside is the same directory as the test
	// process reaches it, through the holder's root.
	dir, outside string
}

// newSmallDisk mounts a tmpfs of size bytes (as root, or in a user namespace of its own).
func newSmallDisk(t *testing.T, size int64) *smallDisk {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		args = append(args, "--map-root-user")
	}
	args = append(args, "sh", "-c", fmt.Sprintf("mount -t tmpfs -o size=%d tmpfs %s && echo mounted && exec sleep 3600", size, dir))
	holder := exec.Command("unshare", args...)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	holder.Stderr = &stderr
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "mounted" {
		t.Fatalf("mount a %d-byte tmpfs in a namespace of its own: %q, %v (%s)", size, line, err, stderr.String())
	}
	return &smallDisk{holder: holder, dir: dir, outside: filepath.Join("/proc", strconv.Itoa(holder.Process.Pid), "root", dir)}
}

// enter is the command prefix that runs a program in the disk's namespace.
func (d *smallDisk) enter() []string {
	args := []string{"nsenter", "--target", strconv.Itoa(d.holder.Process.Pid), "--mount"}
	if os.Geteuid() != 0 {
		args = append(args, "--user", "--preserve-credentials")
	}
	return append(args, "--")
}

// fill writes a file on the disk until no space is left, and returns its path (outside).
func (d *smallDisk) fill(t *testing.T) string {
	t.Helper()
	path := filepath.Join(d.outside, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xf1}, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	for _, n := range []int{64 << 10, 4 << 10, 1} { // the last bytes too
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// TestFullDiskRefusesWritesKeepsReadsAndResumes fills the data directory's filesystem while
// two authorities write: writes get ResourceExhausted naming the directory, reads, matching and
// checkpoints go on, the node stays SERVING with a NO_SPACE alarm; once space is freed, writes
// resume in the same process; and after a kill -9 every acknowledged write is there.
func TestFullDiskRefusesWritesKeepsReadsAndResumes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := testPKI(t, dir)
	disk := newSmallDisk(t, 256<<20)
	dataDir := filepath.Join(disk.dir, "data")
	n := startServeWith(t, disk.enter(), dir, dataDir, "--rate-limit", "-1")

	var (
		mu     sync.Mutex
		acked  []string
		codesN = map[codes.Code]int{}
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for w, p := range []struct{ partner, basis string }{{"fr-pharos", "fr.cp.421-2-5"}, {"de-bka", "de.stgb.140"}} {
		c := dialAs(t, certs, n.grpcAddr, p.partner)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				notice := &concordv1.Notice{LegalBasis: p.basis, Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
				for h := range 200 {
					notice.Hashes = append(notice.Hashes, sha256Of(fmt.Sprint("disk", w, i, h)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rec, err := c.SubmitNotice(ctx, notice)
				cancel()
				var unverified *client.UnverifiedReceiptError
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, rec.GetNotice().GetNoticeId())
				case errors.As(err, &unverified):
					acked = append(acked, notice.GetNoticeId()) // committed
				default:
					codesN[status.Code(err)]++
				}
				mu.Unlock()
			}
		}()
	}
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor(t, "writes acknowledged before the disk fills", func() bool { return ackedCount() >= 10 })

	filler := disk.fill(t)
	auditor := dialAs(t, certs, n.grpcAddr, "observatory")
	admin := dialAs(t, certs, n.grpcAddr, "hub-ops")
	probe := dialAs(t, certs, n.grpcAddr, "fr-pharos")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A write now is refused, naming the disk.
	_, err := probe.SubmitNotice(ctx, &concordv1.Notice{LegalBasis: "fr.cp.421-2-5",
		Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}, Hashes: []*concordv1.Hash{sha256Of("on a full disk")}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a write on a full disk: %v, want ResourceExhausted", err)
	}
	if !strings.Contains(err.Error(), dataDir) {
		t.Fatalf("the refusal does not name the data directory %s: %v", dataDir, err)
	}
	// Reads, matching, checkpoints and health go on.
	first := func() string { mu.Lock(); defer mu.Unlock(); return acked[0] }()
	if _, err := auditor.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: first}); err != nil {
		t.Fatalf("a read on a full disk: %v", err)
	}
	if _, err := dialAs(t, certs, n.grpcAddr, "videoshare").Matches.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Of("disk 0 0 0")}}); err != nil {
		t.Fatalf("a match on a full disk: %v", err)
	}
	if _, err := auditor.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{}); err != nil {
		t.Fatalf("a checkpoint on a full disk: %v", err)
	}
	if h, err := healthpb.NewHealthClient(auditor.Conn()).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health on a full disk: %v, %v", h, err)
	}
	members, err := admin.Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if a := members.GetMembers()[0].GetAlarms(); len(a) != 1 || a[0].GetKind() != concordv1.AlarmKind_ALARM_KIND_NO_SPACE {
		t.Fatalf("alarms on a full disk: %v, want NO_SPACE", a)
	}
	before := ackedCount()

	// Space back: writes resume, in the same process.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "writes resume once space is freed", func() bool { return ackedCount() >= before+10 })
	if err := n.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the node is not the same process: %v", err)
	}
	close(stop)
	wg.Wait()

	// kill -9, restart: every acknowledged write is there.
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = n.cmd.Wait()
	again := startServeWith(t, disk.enter(), dir, dataDir)
	present := noticeIDs(t, dialAs(t, certs, again.grpcAddr, "observatory"))
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		if !present[id] {
			t.Errorf("acknowledged notice %s is missing after kill -9", id)
		}
	}
	t.Logf("%d writes acknowledged (%d before the disk filled), refusals by code %v; %d notices present after kill -9",
		len(acked), before, codesN, len(present))
}

// TestNodeRefusesToStartWithoutTheSpaceItsLogNeeds: on a filesystem smaller than a log segment,
// a spare one and the margin, a node exits at once, saying how much it needs.
func TestNodeRefusesToStartWithoutTheSpaceItsLogNeeds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testPKI(t, dir)
	disk := newSmallDisk(t, 100<<20)
	dataDir := filepath.Join(disk.dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(append(disk.enter(), concordBinary), serveArgs(dir, dataDir)...)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("start on a 100 MiB disk: %v, want exit status 1 (%s)", err, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, dataDir) || !strings.Contains(msg, "a node needs 144.0 MiB to start") {
		t.Fatalf("the refusal does not name the directory and the space needed: %s", msg)
	}
}

// waitFor waits, within a generous bound, for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
