package vpdq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrFFmpegNotFound: the ffmpeg executable could not be found.
var ErrFFmpegNotFound = errors.New("vpdq: ffmpeg is needed to decode videos and was not found on PATH: " +
	"install it (Debian/Ubuntu: apt-get install ffmpeg; Fedora: dnf install ffmpeg; macOS: brew install ffmpeg; " +
	"Windows: winget install ffmpeg) or set Options.FFmpeg to its path")

// Options tune HashFile and HashReader. The zero value samples one frame per second with the
// ffmpeg found on PATH.
type Options struct {
	// FramesPerSecond is the sampling rate; 0 means DefaultFramesPerSecond.
	FramesPerSecond float64
	// FFmpeg is the ffmpeg executable to run; empty means "ffmpeg", looked up on PATH.
	FFmpeg string
}

// maxFramePixels bounds a frame announced by ffmpeg (8K UHD is 33 megapixels), so a corrupt
// stream cannot make the reader allocate without limit.
const maxFramePixels = 1 << 26

// HashFile hashes the video file at path. ffmpeg reads the file itself, which lets it seek
// (MP4 files written with their index at the end need that).
func HashFile(ctx context.Context, path string, opts Options) ([]Frame, error) {
	// The file: prefix keeps ffmpeg from reading a path such as "http://…" or "-i" as a URL
	// or an option.
	return run(ctx, "file:"+path, nil, opts)
}

// HashReader hashes the video read from r, piped to ffmpeg's standard input. Formats that
// need to seek (MP4 with its index at the end) fail this way; use HashFile for them.
func HashReader(ctx context.Context, r io.Reader, opts Options) ([]Frame, error) {
	return run(ctx, "pipe:0", r, opts)
}

// ffmpegArgs makes ffmpeg decode the first video stream, sample it at rate frames per second,
// and write each frame to standard output as a binary PPM: a short text header with the size,
// then raw 8-bit RGB. The header lets frames change size mid-stream and spares a probe.
func ffmpegArgs(input string, rate float64, fromStdin bool) []string {
	args := []string{"-hide_banner", "-loglevel", "error"}
	if !fromStdin {
		args = append(args, "-nostdin")
	}
	return append(args,
		"-i", input,
		"-map", "0:v:0",
		"-vf", "fps="+strconv.FormatFloat(rate, 'f', -1, 64),
		"-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24",
		"pipe:1")
}

func run(ctx context.Context, input string, stdin io.Reader, opts Options) ([]Frame, error) {
	h, err := NewHasher(opts.FramesPerSecond)
	if err != nil {
		return nil, err
	}
	bin := opts.FFmpeg
	if bin == "" {
		bin = "ffmpeg"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrFFmpegNotFound, err)
	}

	cmd := exec.CommandContext(ctx, path, ffmpegArgs(input, h.rate, stdin != nil)...)
	cmd.Stdin = stdin
	// Once ffmpeg has exited, do not wait long for the copy of stdin: the caller's reader may
	// block (a stalled network stream) long after ffmpeg stopped wanting it.
	cmd.WaitDelay = 5 * time.Second
	stderr := &tail{max: 4096}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("vpdq: ffmpeg: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vpdq: start ffmpeg: %w", err)
	}

	readErr := readFrames(bufio.NewReaderSize(stdout, 1<<16), h)
	if readErr != nil {
		// Stop ffmpeg before waiting for it: it may be blocked writing frames nobody reads.
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("vpdq: hashing stopped: %w", ctx.Err())
	case readErr != nil:
		return nil, readErr
	case waitErr != nil:
		return nil, fmt.Errorf("vpdq: ffmpeg could not decode the video (%v): %s", waitErr, stderr)
	case len(h.frames) == 0:
		return nil, fmt.Errorf("vpdq: ffmpeg found no video frame in the input: is it a video? %s", stderr)
	}
	return h.Frames(), nil
}

// readFrames reads binary PPM frames (P6, maxval 255) until the end of r, hashing each.
func readFrames(r *bufio.Reader, h *Hasher) error {
	var pix []byte
	for {
		if _, err := r.Peek(1); err == io.EOF {
			return nil
		}
		width, height, err := readPPMHeader(r)
		if err != nil {
			return fmt.Errorf("vpdq: frame %d from ffmpeg: %w", len(h.frames), err)
		}
		n := 3 * width * height
		if cap(pix) < n {
			pix = make([]byte, n)
		}
		pix = pix[:n]
		if _, err := io.ReadFull(r, pix); err != nil {
			return fmt.Errorf("vpdq: frame %d from ffmpeg: %d×%d pixels: %w", len(h.frames), width, height, err)
		}
		if err := h.AddRGB(pix, width, height, 3*width); err != nil {
			return err
		}
	}
}

// readPPMHeader reads "P6 <width> <height> <maxval>" and the single whitespace byte that ends
// it. Comments (# to end of line) are skipped, as the format allows.
func readPPMHeader(r *bufio.Reader) (width, height int, err error) {
	magic := make([]byte, 2)
	if _, err := io.ReadFull(r, magic); err != nil {
		return 0, 0, fmt.Errorf("read PPM header: %w", err)
	}
	if string(magic) != "P6" {
		return 0, 0, fmt.Errorf("not a binary PPM frame (starts with %q)", magic)
	}
	var fields [3]int
	for i := range fields {
		if fields[i], err = readPPMNumber(r); err != nil {
			return 0, 0, err
		}
	}
	width, height, maxval := fields[0], fields[1], fields[2]
	if maxval != 255 {
		return 0, 0, fmt.Errorf("PPM maxval %d, want 255 (8-bit RGB)", maxval)
	}
	if width <= 0 || height <= 0 || width*height > maxFramePixels {
		return 0, 0, fmt.Errorf("PPM frame size %d×%d out of range", width, height)
	}
	if c, err := r.ReadByte(); err != nil || !isSpace(c) {
		return 0, 0, errors.New("PPM header not followed by whitespace")
	}
	return width, height, nil
}

func readPPMNumber(r *bufio.Reader) (int, error) {
	c, err := r.ReadByte()
	for err == nil && (isSpace(c) || c == '#') {
		if c == '#' {
			_, err = r.ReadString('\n')
			if err != nil {
				break
			}
		}
		c, err = r.ReadByte()
	}
	if err != nil {
		return 0, fmt.Errorf("read PPM header: %w", err)
	}
	n := 0
	digits := 0
	for ; err == nil && c >= '0' && c <= '9'; c, err = r.ReadByte() {
		if n > 1<<20 {
			return 0, errors.New("PPM header number too large")
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if digits == 0 {
		return 0, fmt.Errorf("PPM header: want a number, got %q", c)
	}
	if err == nil {
		// The byte after the digits belongs to what follows (the separator).
		_ = r.UnreadByte()
	}
	return n, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// tail keeps the last max bytes written to it: the end of ffmpeg's error output, which holds
// the reason it failed, without letting a chatty ffmpeg fill memory.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "(ffmpeg printed nothing)"
	}
	return "ffmpeg said: " + s
}
