package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing/pdq"
	"concord/server/servertest"

	"google.golang.org/protobuf/encoding/protojson"
)

// TestPlatformLoopCommands drives the platform loop from the command line: watch, match, action
// report, compliance and the transparency report with its chart.
func TestPlatformLoopCommands(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	dir := t.TempDir()
	img := "../../hashing/pdq/testdata/pixels/bridge-mods/high-contrast.png"

	// A platform follows the feed.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// --from-start: the notice's event arrives whether the stream opens before the submit or after.
	watch := exec.CommandContext(ctx, concordBinary, "watch", "--json", "--from-start", "--addr", n.GRPCAddr(), "--as", "videoshare", "--pki", n.PKI.Dir)
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })
	events := make(chan *concordv1.NoticeEvent, 10)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			ev := &concordv1.NoticeEvent{}
			if protojson.Unmarshal(sc.Bytes(), ev) == nil {
				events <- ev
			}
		}
	}()
	rec := cliRecord(t, mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.lcen.6-1", "--category", "ATTACK_FOOTAGE", "--file", img, "--preserve", "--json"))
	id := rec.GetNotice().GetNoticeId()
	select {
	case ev := <-events:
		if ev.GetNoticeId() != id || ev.GetType() != concordv1.NoticeEventType_NOTICE_EVENT_TYPE_NEW {
			t.Fatalf("watch printed %v", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("concord watch printed no event within 15 s")
	}

	// The platform checks a directory holding the image (re-encoded names don't matter) and an
	// unrelated file; only hashes leave the machine.
	if err := os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("holiday notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "upload-1.png"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	table := mustCLI(t, n, "videoshare", "match", dir)
	if !strings.Contains(table, id) || !strings.Contains(table, "2 files checked: 1 matched, 1 not matched") {
		t.Fatalf("match table:\n%s", table)
	}
	var found []struct {
		File    string            `json:"file"`
		Matches []json.RawMessage `json:"matches"`
	}
	jsonOut := mustCLI(t, n, "videoshare", "match", "--json", dir)
	if err := json.Unmarshal([]byte(jsonOut), &found); err != nil || len(found) != 2 || len(found[1].Matches) != 3 {
		// upload-1.png matches by SHA-256, MD5 and PDQ (each a hash position of the notice)
		t.Fatalf("match --json: %v\n%s", err, jsonOut)
	}
	_, err = cli(t, n, "videoshare", "match", "--fail-on-match", filepath.Join(dir, "upload-1.png"))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("match --fail-on-match on matching content: %v, want exit status 3", err)
	}

	// A mirrored copy matches (by PDQ, the exact hashes differ), and the table says how it
	// differs; asked to match images as they are only, nothing matches.
	mirrored := filepath.Join(t.TempDir(), "mirrored.png")
	writeMirrored(t, img, mirrored)
	table = mustCLI(t, n, "videoshare", "match", mirrored)
	if !strings.Contains(table, id) || !strings.Contains(table, "(mirrored left to right)") || !strings.Contains(table, "1 matched") {
		t.Fatalf("match of a mirrored copy:\n%s", table)
	}
	if table = mustCLI(t, n, "videoshare", "match", "--dihedral=false", mirrored); !strings.Contains(table, "0 matched") {
		t.Fatalf("match --dihedral=false of a mirrored copy:\n%s", table)
	}

	// It reports the removal and the preservation.
	outAction := mustCLI(t, n, "videoshare", "action", "report", id, "--outcome", "REMOVED", "--jurisdiction", "FR,DE", "--at", "1m")
	if !strings.Contains(outAction, "MET") {
		t.Fatalf("action report output:\n%s", outAction)
	}
	mustCLI(t, n, "videoshare", "action", "report", id, "--outcome", "PRESERVED", "--jurisdiction", "FR", "--preservation-ref", "vault-7")

	var compliance concordv1.GetComplianceResponse
	if err := protojson.Unmarshal([]byte(mustCLI(t, n, "fr-pharos", "compliance", "--notice", id, "--json")), &compliance); err != nil {
		t.Fatal(err)
	}
	s := compliance.GetSummary()
	// Two platforms see the notice in FR and DE: videoshare met both, socialnet has two open.
	if s.GetObligations() != 4 || s.GetMet() != 2 || s.GetOpen() != 2 || s.GetPreservationConfirmed() != 1 {
		t.Fatalf("compliance: %v", s)
	}

	chart := filepath.Join(dir, "tta.svg")
	md := mustCLI(t, n, "observatory", "report", "--from", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "--chart", chart)
	for _, want := range []string{"| notices | 1 |", "| ATTACK_FOOTAGE | 1 |", "| REMOVED | 1 |", "| FR | 1 |"} {
		if !strings.Contains(md, want) {
			t.Fatalf("report lacks %q:\n%s", want, md)
		}
	}
	svg, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil || !strings.Contains(string(svg), "<rect") {
		t.Fatalf("chart is not an SVG with bars: %v", err)
	}
	csvOut := mustCLI(t, n, "observatory", "report", "--from", "2020-01-01", "--format", "csv")
	if !strings.Contains(csvOut, "actions_by_outcome,REMOVED,1") {
		t.Fatalf("csv report:\n%s", csvOut)
	}
}

func asExit(err error, exit **exec.ExitError) bool { return errors.As(err, exit) }

// startNodeWithNotices starts a node holding a few notices, one of them TLP:RED for de-bka only,
// and one with the PDQ of a reference image.
func startNodeWithNotices(t *testing.T) *servertest.Node {
	t.Helper()
	n := servertest.Start(t, servertest.Options{})
	img := "../../hashing/pdq/testdata/pixels/bridge-mods/high-contrast.png"
	mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.lcen.6-1", "--category", "ATTACK_FOOTAGE", "--file", img)
	mustCLI(t, n, "de-bka", "notice", "submit", "--basis", "de.stgb.140", "--category", "GLORIFICATION", "--hash", "sha256:"+strings.Repeat("cd", 32))
	mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.cp.421-2-5", "--category", "GLORIFICATION", "--hash", "sha256:"+strings.Repeat("ef", 32),
		"--tlp", "RED", "--share-with", "de-bka")
	return n
}

// writeMirrored writes the image at src, mirrored left to right, as a PNG at dst.
func writeMirrored(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := pdq.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			out.Set(b.Dx()-1-x, y, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	w, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := png.Encode(w, out); err != nil {
		t.Fatal(err)
	}
}
