package vpdq

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ffmpeg is not installed where these tests run, and a test must not depend on it: the test
// binary plays ffmpeg itself when started under a name beginning with "ffmpeg" (see fake).
// Each name selects a behaviour.
func TestMain(m *testing.M) {
	if name := filepath.Base(os.Args[0]); strings.HasPrefix(name, "ffmpeg") {
		os.Exit(fakeFFmpeg(name, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeInput is what the fake expects on standard input when told to read pipe:0.
const fakeInput = "fake video bytes"

// fakeFrames are the frames the fake ffmpeg "decodes": a repeated frame, a size change and a
// fade to black, as real videos have.
func fakeFrames() []struct {
	w, h int
	pix  []byte
} {
	return []struct {
		w, h int
		pix  []byte
	}{
		{160, 120, picture(160, 120, 1)},
		{160, 120, picture(160, 120, 1)},
		{96, 64, picture(96, 64, 2)},
		{160, 120, flat(160, 120)},
	}
}

func writePPM(w io.Writer, width, height int, pix []byte) {
	fmt.Fprintf(w, "P6\n%d %d\n255\n", width, height)
	w.Write(pix)
}

func fakeFFmpeg(name string, args []string) int {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	arg := func(flag string) string {
		for i, a := range args {
			if a == flag && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	switch name {
	case "ffmpeg", "ffmpeg-frames":
		if !strings.HasPrefix(arg("-vf"), "fps=") || arg("-f") != "image2pipe" || arg("-c:v") != "ppm" {
			fmt.Fprintf(os.Stderr, "unexpected arguments %q", args)
			return 2
		}
		if arg("-i") == "pipe:0" {
			in, _ := io.ReadAll(os.Stdin)
			if string(in) != fakeInput {
				fmt.Fprintf(os.Stderr, "stdin: got %q", in)
				return 3
			}
		}
		for _, f := range fakeFrames() {
			writePPM(out, f.w, f.h, f.pix)
		}
		return 0
	case "ffmpeg-args":
		fmt.Fprintf(os.Stderr, "%s", strings.Join(args, " "))
		return 1
	case "ffmpeg-fail":
		fmt.Fprintln(os.Stderr, "[mov,mp4 @ 0x1] moov atom not found\npipe:0: Invalid data found when processing input")
		return 1
	case "ffmpeg-garbage":
		fmt.Fprint(out, "P6 160 x")
		return 0
	case "ffmpeg-truncated":
		f := fakeFrames()[0]
		writePPM(out, f.w, f.h, f.pix[:len(f.pix)/2])
		return 0
	case "ffmpeg-comment":
		f := fakeFrames()[0]
		fmt.Fprintf(out, "P6 # made by hand\n%d\t%d # size\n255\n", f.w, f.h)
		out.Write(f.pix)
		return 0
	case "ffmpeg-empty":
		return 0
	case "ffmpeg-hang":
		f := fakeFrames()[0]
		writePPM(out, f.w, f.h, f.pix)
		out.Flush()
		time.Sleep(time.Minute)
		return 0
	}
	fmt.Fprintf(os.Stderr, "fake ffmpeg: unknown behaviour %q", name)
	return 4
}

// fake returns the path of an executable named name that runs this test binary as a fake
// ffmpeg with that behaviour.
func fake(t *testing.T, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(self, path); err != nil {
		t.Fatalf("link the fake ffmpeg: %v", err)
	}
	return path
}

// wantFrames is what hashing fakeFrames directly through a Hasher gives.
func wantFrames(t *testing.T, rate float64) []Frame {
	t.Helper()
	h, err := NewHasher(rate)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fakeFrames() {
		if err := h.AddRGB(f.pix, f.w, f.h, 3*f.w); err != nil {
			t.Fatal(err)
		}
	}
	return h.Frames()
}

func equalFrames(t *testing.T, got, want []Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("frame %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestHashThroughFFmpeg(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		got, err := HashFile(ctx, "clip.mp4", Options{FFmpeg: fake(t, "ffmpeg-frames")})
		if err != nil {
			t.Fatal(err)
		}
		equalFrames(t, got, wantFrames(t, 1))
	})
	t.Run("reader", func(t *testing.T) {
		t.Parallel()
		got, err := HashReader(ctx, strings.NewReader(fakeInput), Options{FFmpeg: fake(t, "ffmpeg-frames"), FramesPerSecond: 4})
		if err != nil {
			t.Fatal(err)
		}
		equalFrames(t, got, wantFrames(t, 4))
		if got[3].Time != 750*time.Millisecond {
			t.Errorf("fourth frame at %v, want 750ms at 4 frames per second", got[3].Time)
		}
	})
	t.Run("PPM comments", func(t *testing.T) {
		t.Parallel()
		got, err := HashFile(ctx, "clip.mp4", Options{FFmpeg: fake(t, "ffmpeg-comment")})
		if err != nil {
			t.Fatal(err)
		}
		equalFrames(t, got, wantFrames(t, 1)[:1])
	})
	t.Run("a video matches itself through the wire form", func(t *testing.T) {
		t.Parallel()
		frames, err := HashFile(ctx, "clip.mp4", Options{FFmpeg: fake(t, "ffmpeg-frames")})
		if err != nil {
			t.Fatal(err)
		}
		value, err := Encode(frames)
		if err != nil {
			t.Fatal(err)
		}
		if len(value) != 2*32 {
			t.Errorf("wire value holds %d hashes, want 2 (the repeat and the black frame dropped)", len(value)/32)
		}
		stored, err := Decode(value)
		if err != nil {
			t.Fatal(err)
		}
		if s := CompareHashes(Usable(frames), stored); !s.Match() || s.QueryPercent != 100 {
			t.Errorf("video against its own wire value: %+v, want a 100%% match", s)
		}
	})
}

func TestFFmpegArguments(t *testing.T) {
	t.Parallel()
	_, err := HashFile(context.Background(), "-i http://example.com/x.mp4", Options{FFmpeg: fake(t, "ffmpeg-args"), FramesPerSecond: 0.5})
	if err == nil {
		t.Fatal("no error from a failing ffmpeg")
	}
	for _, want := range []string{"-nostdin", "-i file:-i http://example.com/x.mp4 ", "-map 0:v:0", "-vf fps=0.5", "-pix_fmt rgb24", "pipe:1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ffmpeg arguments in %q lack %q", err, want)
		}
	}
}

func TestFFmpegFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fake    string
		errText []string
	}{
		{"ffmpeg fails", "ffmpeg-fail", []string{"could not decode", "moov atom not found"}},
		{"not a PPM stream", "ffmpeg-garbage", []string{"frame 0 from ffmpeg", "want a number"}},
		{"truncated frame", "ffmpeg-truncated", []string{"frame 0 from ffmpeg", "160×120", "unexpected EOF"}},
		{"no frame", "ffmpeg-empty", []string{"no video frame", "is it a video"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			frames, err := HashReader(context.Background(), strings.NewReader(fakeInput), Options{FFmpeg: fake(t, tt.fake)})
			if err == nil {
				t.Fatalf("got %d frames, want an error", len(frames))
			}
			for _, want := range tt.errText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
	t.Run("bad frame rate", func(t *testing.T) {
		t.Parallel()
		if _, err := HashFile(context.Background(), "x", Options{FramesPerSecond: -1}); err == nil ||
			!strings.Contains(err.Error(), "frames per second") {
			t.Errorf("error %v, want one about the frame rate", err)
		}
	})
}

func TestFFmpegCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := HashFile(ctx, "clip.mp4", Options{FFmpeg: fake(t, "ffmpeg-hang")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to stop after the deadline", d)
	}
}

// TestFFmpegMissing: without ffmpeg the error names it and says how to install it. Not
// parallel: it changes PATH.
func TestFFmpegMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, opts := range []Options{{}, {FFmpeg: filepath.Join(t.TempDir(), "no-such-ffmpeg")}} {
		_, err := HashFile(context.Background(), "clip.mp4", opts)
		if !errors.Is(err, ErrFFmpegNotFound) {
			t.Fatalf("Options%+v: error %v, want ErrFFmpegNotFound", opts, err)
		}
		for _, want := range []string{"ffmpeg", "install", "apt-get install ffmpeg", "brew install ffmpeg"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		_, err = HashReader(context.Background(), bytes.NewReader(nil), opts)
		if !errors.Is(err, ErrFFmpegNotFound) {
			t.Errorf("HashReader: error %v, want ErrFFmpegNotFound", err)
		}
	}
}

// TestFFmpegOnPath: with no Options.FFmpeg, the ffmpeg found on PATH is run. Not parallel: it
// changes PATH.
func TestFFmpegOnPath(t *testing.T) {
	dir := filepath.Dir(fake(t, "ffmpeg"))
	t.Setenv("PATH", dir)
	got, err := HashFile(context.Background(), "clip.mp4", Options{})
	if err != nil {
		t.Fatal(err)
	}
	equalFrames(t, got, wantFrames(t, 1))
}

func TestTail(t *testing.T) {
	t.Parallel()
	tl := &tail{max: 8}
	tl.Write([]byte("hello, "))
	tl.Write([]byte("world"))
	if got := tl.String(); got != "ffmpeg said: o, world" {
		t.Errorf("tail = %q", got)
	}
	if got := (&tail{max: 8}).String(); got != "(ffmpeg printed nothing)" {
		t.Errorf("empty tail = %q", got)
	}
}
