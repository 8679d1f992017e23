// Package datadir keeps a node's data directory: one process at a time (Lock), and the space its
// log needs (Space).
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFile is the file a node holds locked in its data directory while it runs.
const LockFile = "LOCK"

// ErrInUse is returned by Acquire for a data directory another process holds.
var ErrInUse = errors.New("data directory in use")

// Lock is a data directory held by this process.
type Lock struct {
	dir string
	f   *os.File
}

// Acquire takes the data directory dir for this process, creating it if needed. It never
// waits: if another process holds dir, it fails at once with ErrInUse, naming that process.
// The lock is the kernel's (flock): it ends with the process, however the process ends.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is used by %s: stop it first, or give this process another data directory", ErrInUse, dir, holder)
		}
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d\nhost %s\nsince %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(info), 0)
	}
	return &Lock{dir: dir, f: f}, nil
}

// readHolder describes the process named in a lock file held by another process.
func readHolder(f *os.File) string {
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	fields := map[string]string{}
	for _, line := range strings.Split(string(b[:n]), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			fields[k] = v
		}
	}
	pid, err := strconv.Atoi(fields["pid"])
	if err != nil {
		return "another process"
	}
	desc := fmt.Sprintf("process %d", pid)
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(cmd) > 0 {
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		args[0] = filepath.Base(args[0])
		desc += fmt.Sprintf(" (%s)", strings.Join(args[:min(len(args), 2)], " "))
	}
	if host := fields["host"]; host != "" {
		desc += " on " + host
	}
	if since := fields["since"]; since != "" {
		desc += ", since " + since
	}
	return desc
}

// Dir is the locked directory.
func (l *Lock) Dir() string { return l.dir }

// Release lets another process take the directory. The lock file stays: removing it would let
// two processes lock two different files of the same name.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}
