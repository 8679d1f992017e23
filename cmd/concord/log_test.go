package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogVerifyAndMirrorCommands: `log verify` replays a node's log; `mirror --once` builds a
// verified mirror; `match --mirror` answers with no network at all; a byte flipped in a stored
// entry makes `log verify --dir` fail, naming the entry.
func TestLogVerifyAndMirrorCommands(t *testing.T) {
	n := startNodeWithNotices(t)
	out := mustCLI(t, n, "observatory", "log", "verify")
	for _, want := range []string{"OK: ", "notice", "bootstrap", "fr-pharos", "restricted for you"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log verify output lacks %q:\n%s", want, out)
		}
	}
	// The observatory witnesses the log; the checkpoint then carries its cosignature, and a
	// mirror requiring that witness follows it.
	if out := mustCLI(t, n, "observatory", "witness", "--dir", filepath.Join(t.TempDir(), "witness"), "--once"); !strings.Contains(out, "cosigned the checkpoint") {
		t.Fatalf("witness output:\n%s", out)
	}
	if out := mustCLI(t, n, "videoshare", "log", "checkpoint"); !strings.Contains(out, "— observatory.witness.concord.example ") {
		t.Fatalf("checkpoint without the witness's cosignature:\n%s", out)
	}
	dir := filepath.Join(t.TempDir(), "mirror")
	mustCLI(t, n, "videoshare", "mirror", "--dir", dir, "--once", "--witness", n.PKI.WitnessPub("observatory"), "--quorum", "1")

	// No node at this address: the answer can only come from the mirror.
	img := "../../hashing/pdq/testdata/pixels/bridge-mods/high-contrast.png"
	cmd := exec.Command(concordBinary, "match", "--mirror", dir, "--as", "videoshare", "--pki", n.PKI.Dir, "--addr", "127.0.0.1:1", img)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("match --mirror: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "1 files checked: 1 matched") {
		t.Fatalf("match --mirror output:\n%s", stdout.String())
	}

	// Damage the mirror: one byte of entry 2's bytes.
	path := filepath.Join(dir, "entries")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for k := 0; k < 2; k++ {
		size, w := binary.Uvarint(data[off+1:])
		off += 1 + w + int(size) + 32
	}
	_, w := binary.Uvarint(data[off+1:])
	data[off+1+w+10] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = cli(t, n, "videoshare", "log", "verify", "--dir", dir)
	var exit *exec.ExitError
	if err == nil || !strings.Contains(err.Error(), "entry 2") {
		t.Fatalf("log verify of a damaged mirror: %v; want a failure naming entry 2", err)
	}
	if !asExit(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("log verify of a damaged mirror exited with %v, want status 1", err)
	}
}
