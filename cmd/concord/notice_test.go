package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"

	"google.golang.org/protobuf/encoding/protojson"
)

// cli runs the concord binary against node n as partner and returns its stdout.
func cli(t *testing.T, n *servertest.Node, partner string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The connection flags go last, after any argument: every command takes flags anywhere.
	full := append(slices.Clone(args), "--addr", n.GRPCAddr(), "--as", partner, "--pki", n.PKI.Dir)
	cmd := exec.CommandContext(ctx, concordBinary, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &cliError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
func (e *cliError) Unwrap() error { return e.err }

func mustCLI(t *testing.T, n *servertest.Node, partner string, args ...string) string {
	t.Helper()
	out, err := cli(t, n, partner, args...)
	if err != nil {
		t.Fatalf("concord %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func cliRecord(t *testing.T, out string) *concordv1.NoticeRecord {
	t.Helper()
	rec := &concordv1.NoticeRecord{}
	if err := protojson.Unmarshal([]byte(out), rec); err != nil {
		t.Fatalf("--json output is not a NoticeRecord: %v\n%s", err, out)
	}
	return rec
}

func TestNoticeCommands(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	content := []byte("a propaganda video, which never leaves this machine")
	file := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	md := md5.Sum(content)
	given := strings.Repeat("ab", 32)

	// submit: --hash and --file, JSON output.
	out := mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.cp.421-2-5", "--category", "glorification",
		"--hash", "sha256:"+given, "--file", file, "--counter-narrative", "https://example.org/exit@fr", "--json")
	rec := cliRecord(t, out)
	id := rec.GetNotice().GetNoticeId()
	if rec.GetHashCount() != 3 || rec.GetNotice().GetIssuer() != "fr-pharos" {
		t.Fatalf("submitted record: %v", rec)
	}
	full := cliRecord(t, mustCLI(t, n, "videoshare", "notice", "get", id, "--json"))
	var gotHex []string
	for _, h := range full.GetNotice().GetHashes() {
		gotHex = append(gotHex, kindName(h.GetKind())+":"+hex.EncodeToString(h.GetValue()))
	}
	want := []string{"sha256:" + given, "sha256:" + hex.EncodeToString(sum[:]), "md5:" + hex.EncodeToString(md[:])}
	if strings.Join(gotHex, " ") != strings.Join(want, " ") {
		t.Fatalf("hashes: %v, want %v", gotHex, want)
	}

	// An image also gets its PDQ hash, computed locally; a URL its normalised SHA-256.
	img := "../../hashing/pdq/testdata/pixels/bridge-mods/blur-a-little.png"
	imgRec := cliRecord(t, mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.lcen.6-1", "--category", "ATTACK_FOOTAGE",
		"--file", img, "--url", "https://example.org/attack.mp4", "--json"))
	kinds := map[string]bool{}
	for _, h := range cliRecord(t, mustCLI(t, n, "videoshare", "notice", "get", imgRec.GetNotice().GetNoticeId(), "--json")).GetNotice().GetHashes() {
		kinds[kindName(h.GetKind())] = true
		if h.GetKind() == concordv1.HashKind_HASH_KIND_PDQ && h.GetQuality() < 50 {
			t.Errorf("PDQ of quality %d submitted", h.GetQuality())
		}
	}
	if !kinds["sha256"] || !kinds["md5"] || !kinds["pdq"] || !kinds["url_sha256"] {
		t.Fatalf("image notice holds %v, want sha256, md5, pdq and url_sha256", kinds)
	}

	// endorse, object, withdraw, in people's text output.
	if out := mustCLI(t, n, "de-bka", "notice", "endorse", id, "--basis", "de.stgb.140"); !strings.Contains(out, "ENDORSED") || !strings.Contains(out, "de.stgb.140") {
		t.Fatalf("endorse output:\n%s", out)
	}
	if out := mustCLI(t, n, "be-fedpol", "notice", "object", id, "--reason", "satire"); !strings.Contains(out, "OBJECTED") {
		t.Fatalf("object output:\n%s", out)
	}
	if _, err := cli(t, n, "us-doj", "notice", "endorse", id, "--basis", "us.usc18.2339b"); err == nil || !strings.Contains(err.Error(), "not covered in US") {
		t.Fatalf("US endorsement: %v; want the reason it is refused", err)
	}
	out = mustCLI(t, n, "fr-pharos", "notice", "withdraw", id, "--reason", "annulled", "--reinstate")
	if !strings.Contains(out, "WITHDRAWN") || !strings.Contains(out, "reinstate: true") {
		t.Fatalf("withdraw output:\n%s", out)
	}

	// A bulk CSV list of 10 001 hashes goes as two notices.
	var csv strings.Builder
	csv.WriteString("kind,hex\n")
	for i := range 10001 {
		s := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		csv.WriteString("sha256," + hex.EncodeToString(s[:]) + "\n")
	}
	list := filepath.Join(dir, "hashes.csv")
	if err := os.WriteFile(list, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.lcen.6-1", "--category", "ATTACK_FOOTAGE", "--list", list)
	if strings.Count(out, "Notice ") != 2 || !strings.Contains(out, "hashes      10000") || !strings.Contains(out, "hashes      1\n") {
		t.Fatalf("bulk submit output:\n%.2000s", out)
	}
	out = mustCLI(t, n, "observatory", "notice", "list", "--category", "ATTACK_FOOTAGE")
	if strings.Count(out, "ATTACK_FOOTAGE") != 3 { // the image notice and the two bulk ones
		t.Fatalf("list output:\n%s", out)
	}
	out = mustCLI(t, n, "observatory", "notice", "list", "--state", "withdrawn", "--json")
	var listed concordv1.ListNoticesResponse
	if err := protojson.Unmarshal([]byte(out), &listed); err != nil || len(listed.GetNotices()) != 1 || listed.GetNotices()[0].GetNotice().GetNoticeId() != id {
		t.Fatalf("list --state withdrawn --json: %v\n%s", err, out)
	}

	// Mistakes are explained before anything is sent.
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"notice", "submit", "--category", "GLORIFICATION", "--hash", "sha256:" + given}, "--basis is required"},
		{[]string{"notice", "submit", "--basis", "fr.cp.421-2-5", "--category", "MEMES", "--hash", "sha256:" + given}, "unknown category"},
		{[]string{"notice", "submit", "--basis", "fr.cp.421-2-5", "--category", "THREAT", "--hash", "sha1:00"}, "unknown hash kind"},
		{[]string{"notice", "submit", "--basis", "fr.cp.421-2-5", "--category", "THREAT", "--hash", "pdq:" + given}, "needs its quality"},
	} {
		if _, err := cli(t, n, "fr-pharos", tc.args...); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("concord %v: %v; want an error saying %q", tc.args, err, tc.says)
		}
	}
}
