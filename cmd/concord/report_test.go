package main

import (
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/servertest"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// renderSVG renders svg to an image with rsvg-convert (Debian's librsvg2-bin, which `make test`
// installs: a missing one fails the test).
func renderSVG(t *testing.T, svg string) image.Image {
	t.Helper()
	bin, err := exec.LookPath("rsvg-convert")
	if err != nil {
		t.Fatal("rsvg-convert not found on PATH: run 'make debian-tools' (the test command installs Debian's librsvg2-bin)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "chart.svg"), filepath.Join(dir, "chart.png")
	if err := os.WriteFile(in, []byte(svg), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(bin, "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("rsvg-convert: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// runOf is the length of the longest horizontal run of pixels of colour c (within a small
// tolerance for antialiasing) on row y.
func runOf(img image.Image, y int, c [3]uint8) int {
	best, run := 0, 0
	b := img.Bounds()
	for x := b.Min.X; x < b.Max.X; x++ {
		r, g, bl, _ := img.At(x, y).RGBA()
		near := func(v uint32, want uint8) bool { d := int(v>>8) - int(want); return d > -6 && d < 6 }
		if near(r, c[0]) && near(g, c[1]) && near(bl, c[2]) {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// TestTimeToActionChart renders the report's chart for times from seconds to days and checks
// the picture: one visible median bar per jurisdiction with actions, whatever its scale, and a
// title that ends inside the picture.
func TestTimeToActionChart(t *testing.T) {
	from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dark := [3]uint8{0x31, 0x82, 0xbd}
	for name, rows := range map[string][]*concordv1.TimeToAction{
		"seconds": {{Jurisdiction: "FR", Actions: 3, MedianSeconds: 4, P90Seconds: 9}, {Jurisdiction: "DE", Actions: 1, MedianSeconds: 2, P90Seconds: 2}},
		"seconds to days": {{Jurisdiction: "FR", Actions: 3, MedianSeconds: 4, P90Seconds: 9}, {Jurisdiction: "DE", Actions: 5, MedianSeconds: 7200, P90Seconds: 30 * 3600},
			{Jurisdiction: "BE", Actions: 2, MedianSeconds: 3 * 86400, P90Seconds: 5 * 86400}},
		"instant": {{Jurisdiction: "FR", Actions: 1, MedianSeconds: 0, P90Seconds: 0}},
	} {
		t.Run(name, func(t *testing.T) {
			r := &concordv1.GetTransparencyReportResponse{From: timestamppb.New(from), To: timestamppb.New(to), TimeToAction: rows}
			img := renderSVG(t, timeToActionSVG(r))
			const top, rowH = 64, 34 // as timeToActionSVG lays rows out
			var widths []int
			for i := range rows {
				w := runOf(img, top+i*rowH+15, dark)
				if w < 3 {
					t.Errorf("%s: its median bar is %d px wide", rows[i].GetJurisdiction(), w)
				}
				widths = append(widths, w)
			}
			if name == "seconds to days" && !(widths[0] < widths[1] && widths[1] < widths[2]) {
				t.Errorf("bars of 4 s, 2 h and 3 days measure %v px: not in order", widths)
			}
			// The title's last ink is short of the right edge.
			b := img.Bounds()
			for y := 5; y < 26; y++ {
				r, g, bl, _ := img.At(b.Max.X-2, y).RGBA()
				if r>>8 < 200 || g>>8 < 200 || bl>>8 < 200 {
					t.Fatalf("the title reaches the picture's right edge (row %d)", y)
				}
			}
		})
	}
	// No actions: a chart that says so.
	svg := timeToActionSVG(&concordv1.GetTransparencyReportResponse{From: timestamppb.New(from), To: timestamppb.New(to)})
	if !strings.Contains(svg, "no actions in the period") || strings.Contains(svg, "NaN") {
		t.Fatalf("chart without actions:\n%s", svg)
	}
	renderSVG(t, svg)
}

// TestComplianceWithoutActions: with nothing acted on, the time to action is n/a, not 0s.
func TestComplianceWithoutActions(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	mustCLI(t, n, "fr-pharos", "notice", "submit", "--basis", "fr.lcen.6-1", "--category", "ATTACK_FOOTAGE", "--hash", "sha256:"+strings.Repeat("cd", 32))
	out := mustCLI(t, n, "fr-pharos", "compliance")
	if !strings.Contains(out, "median n/a, p90 n/a") || strings.Contains(out, "median 0s") {
		t.Fatalf("compliance with nothing acted on:\n%s", out)
	}
}
