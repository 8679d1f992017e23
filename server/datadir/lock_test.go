package datadir

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Not parallel with TestLockEndsWithTheProcess: a process forked meanwhile holds a copy of the
// lock's descriptor until it execs, and with it the lock.
func TestAcquireRefusesASecondHolderAtOnce(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open file descriptions: a second Acquire in the same process is
	// refused as another process's would be.
	_, err = Acquire(dir)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Acquire = %v, want ErrInUse naming %s and process %d", err, dir, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

// TestLockEndsWithTheProcess: a holder killed with SIGKILL leaves no lock behind.
func TestLockEndsWithTheProcess(t *testing.T) {
	dir := t.TempDir()
	// flock(1) holds the lock file and prints once it does.
	cmd := exec.Command("flock", "--exclusive", "--no-fork", dir+"/"+LockFile, "sh", "-c", "echo held; exec sleep 600")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("flock(1): %v", err)
	}
	defer cmd.Process.Kill()
	line := make([]byte, 5)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "held\n" {
		t.Fatalf("the helper did not take the lock: %q, %v", line, err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("Acquire while another process holds the directory = %v, want ErrInUse", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	l.Release()
}
