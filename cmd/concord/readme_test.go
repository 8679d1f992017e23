package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock is one ```sh block of README.md.
type readmeBlock struct {
	line int    // of the opening fence
	skip string // why TestREADME does not run it (a "<!-- TestREADME skips: … -->" line before it)
	text string
}

// readmeBlocks returns README.md's shell blocks in order.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	prev := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case line == "```sh":
			cur = &readmeBlock{line: n}
			if why, ok := strings.CutPrefix(prev, "<!-- TestREADME skips: "); ok {
				cur.skip = strings.TrimSuffix(why, " -->")
			}
		}
		if strings.TrimSpace(line) != "" {
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestREADME runs every shell block of README.md, in order, as one bash script, as a new user
// would paste them: from a fresh directory that holds the repository's test images (hashing/)
// and pinned tools (.bin/), with `concord` the binary under test. `go run ./cmd/concord` is that
// binary; `concord dev` gets free ports in place of 7443 and 8443 (a developer's own dev node
// may hold those), and the blocks' calls to them are pointed there too. A block marked
// "<!-- TestREADME skips: why -->" is not run: the test command itself, production paths, long
// runs of their own.
func TestREADME(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for _, link := range []string{"hashing", ".bin"} {
		if err := os.Symlink(filepath.Join(root, link), filepath.Join(work, link)); err != nil {
			t.Fatal(err)
		}
	}
	grpcAddr, httpAddr := freePort(t), freePort(t)
	var script strings.Builder
	script.WriteString("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n")
	ran, skipped := 0, 0
	for _, b := range readmeBlocks(t, filepath.Join(root, "README.md")) {
		if b.skip != "" {
			t.Logf("README.md:%d not run: %s", b.line, b.skip)
			skipped++
			continue
		}
		ran++
		text := strings.ReplaceAll(b.text, "go run ./cmd/concord", "concord")
		text = strings.ReplaceAll(text, "127.0.0.1:7443", grpcAddr)
		text = strings.ReplaceAll(text, "127.0.0.1:8443", httpAddr)
		if strings.TrimSpace(text) == "concord dev" {
			// Started in the background, and waited for: it serves until stopped.
			text = fmt.Sprintf("concord dev --grpc-addr %s --http-addr %s > dev.out 2>&1 &\n"+
				"for i in $(seq 1200); do grep -q 'Stop with Ctrl-C' dev.out && break; sleep 0.1; done\n"+
				"grep -q 'Stop with Ctrl-C' dev.out || { cat dev.out; exit 1; }\n", grpcAddr, httpAddr)
		}
		fmt.Fprintf(&script, "echo '>>> README.md:%d'\n%s", b.line, text)
	}
	if ran < 4 || skipped > 5 {
		t.Fatalf("%d README blocks run, %d skipped: the README test is not testing the README", ran, skipped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The output goes to a file, not a pipe: the servers the blocks start in the background
	// must not keep the test waiting for a pipe to close. They are in the script's process
	// group, which is killed at the end whatever happens.
	outPath := filepath.Join(work, "readme.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(concordBinary)+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		b, _ := os.ReadFile(outPath)
		lines := strings.Split(string(b), "\n")
		t.Fatalf("the README's blocks, run in order: %v\n%s", err, strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
	t.Logf("%d README blocks ran, %d skipped", ran, skipped)
}
