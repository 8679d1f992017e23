package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"concord/server/servertest"
)

// runConcordStatus runs the binary with args (and extra environment), and returns its standard
// output, standard error and exit status.
func runConcordStatus(t *testing.T, env []string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, concordBinary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		status = exit.ExitCode()
	default:
		t.Fatalf("concord %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), status
}

// TestCommandLineErrors: each mistake a new user makes gets an exit status a script can trust
// (2 when nothing was sent, 1 when the hub refused or could not be reached) and a message that
// says what is wrong and what to do.
func TestCommandLineErrors(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	conn := []string{"--addr", n.GRPCAddr(), "--pki", n.PKI.Dir}
	closed := freePort(t) // nothing listens on it
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "clip.mp4"), []byte("not a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		env    []string
		args   []string
		status int
		want   []string // in what it printed
		not    []string
	}{
		{name: "no command", args: nil, status: 2, want: []string{"Usage: concord <command>", "Exit status: 0 done"}},
		{name: "unknown partner", args: append([]string{"notice", "list", "--as", "nosuchpartner"}, conn...), status: 2,
			want: []string{"--as nosuchpartner: unknown partner", "fr-pharos", "videoshare"}},
		{name: "no dev PKI", args: []string{"notice", "list", "--as", "fr-pharos", "--pki", filepath.Join(dir, "none")}, status: 2,
			want: []string{"there is no dev PKI in", "run 'concord dev'"}},
		{name: "server down", args: []string{"notice", "list", "--as", "fr-pharos", "--pki", n.PKI.Dir, "--addr", closed}, status: 1,
			want: []string{"no Concord node answers at " + closed, "is it running?"}},
		{name: "short hash", args: append([]string{"notice", "submit", "--as", "fr-pharos", "--basis", "fr.cp.421-2-5", "--category", "GLORIFICATION", "--hash", "sha256:abcd"}, conn...), status: 2,
			want: []string{`--hash "sha256:abcd": a sha256 hash has 64 hex digits; this one has 4`}},
		{name: "unknown jurisdiction", args: append([]string{"notice", "list", "--as", "videoshare", "--jurisdiction", "XX"}, conn...), status: 1,
			want: []string{`"XX" is not a partner jurisdiction`, "FR"}},
		{name: "stray argument", args: append([]string{"notice", "list", "extra", "--as", "videoshare"}, conn...), status: 2,
			want: []string{`unexpected argument "extra"`}},
		{name: "two notice ids", args: append([]string{"notice", "get", "01A", "01B", "--as", "videoshare"}, conn...), status: 2,
			want: []string{`one notice id only: got "01A" and "01B"`}},
		{name: "no ffmpeg", env: []string{"PATH=" + filepath.Join(dir, "empty")}, args: []string{"hash", filepath.Join(dir, "clip.mp4"), "--url", "https://example.org/video"}, status: 0,
			want: []string{"concord decodes videos with ffmpeg, which is not on PATH", "apt-get install ffmpeg"}, not: []string{"Options.FFmpeg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, status := runConcordStatus(t, tc.env, tc.args...)
			if status != tc.status {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, tc.status, stdout, stderr)
			}
			printed := stdout + stderr
			for _, w := range tc.want {
				if !strings.Contains(printed, w) {
					t.Errorf("it does not say %q:\n%s", w, printed)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(printed, w) {
					t.Errorf("it says %q:\n%s", w, printed)
				}
			}
		})
	}
	// The README's example: flags after the files.
	stdout, stderr, status := runConcordStatus(t, nil, "hash", "../../hashing/pdq/testdata/images/misc-images/wee.jpg", dir, "--url", "https://example.org/video")
	if status != 0 || !strings.Contains(stdout, "https://example.org/video") || !strings.Contains(stdout, "wee.jpg") {
		t.Fatalf("hash FILE DIR --url URL: status %d\n%s\n%s", status, stdout, stderr)
	}
	// "--" ends the flags: what follows is a file even if it starts with a dash.
	if err := os.WriteFile(filepath.Join(dir, "-odd"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(concordBinary, "hash", "--", "-odd")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "-odd") {
		t.Fatalf("hash -- -odd: %v\n%s", err, out)
	}
}

// TestFlagsAfterArguments: every command that takes arguments reads flags given after them. A
// partner unknown to the PKI, given last, must be the error each reports (had --as been taken
// for an argument, the error would be another); snapshot restore, which calls no node, must see
// its --data-dir.
func TestFlagsAfterArguments(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	runConcord(t, "certs", "init", "--dir", pkiDir)
	file := filepath.Join(dir, "photo.jpg")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	const id = "01JD5Z3Y5J8Q6T4V2W0X9Y8Z7A"
	for _, args := range [][]string{
		{"notice", "get", id},
		{"notice", "endorse", id, "--basis", "de.stgb.140"},
		{"notice", "object", id, "--reason", "satire"},
		{"notice", "withdraw", id, "--reason", "annulled"},
		{"action", "report", id, "--outcome", "REMOVED", "--jurisdiction", "FR"},
		{"match", file},
		{"cluster", "join", "node-9", "127.0.0.1:7009"},
		{"cluster", "remove", "node-9"},
		{"snapshot", "save", filepath.Join(dir, "backup.snap")},
	} {
		full := append(append([]string{}, args...), "--pki", pkiDir, "--as", "nosuchpartner")
		_, stderr, status := runConcordStatus(t, nil, full...)
		if status != 2 || !strings.Contains(stderr, "--as nosuchpartner: unknown partner") {
			t.Errorf("concord %s: status %d, want 2 naming the unknown partner:\n%s", strings.Join(full, " "), status, stderr)
		}
	}
	_, stderr, status := runConcordStatus(t, nil, "snapshot", "restore", filepath.Join(dir, "missing.snap"), "--data-dir", filepath.Join(dir, "data"),
		"--node-id", "node-1", "--raft-addr", "127.0.0.1:7001")
	if status == 0 || strings.Contains(stderr, "--data-dir") || !strings.Contains(stderr, "missing.snap") {
		t.Errorf("snapshot restore FILE --data-dir DIR: status %d:\n%s", status, stderr)
	}
}
