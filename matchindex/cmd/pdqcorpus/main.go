// Command pdqcorpus builds a realistic PDQ hash corpus for the match index's benchmarks: the
// hashes of images under the transforms platforms see (resized, recompressed, cropped, captioned,
// recoloured), and the frame hashes of generated videos of several scenes each, written as a hash
// list that `mihbench -hashes` reads (one hash a line, 64 hex digits, then the quality and where
// the hash came from).
//
//	go run ./matchindex/cmd/pdqcorpus -n 1000000 -o corpus-1m.txt
//	go run ./matchindex/cmd/pdqcorpus -n 1000000 -images ../shared/testdata/pdq/images -o corpus-1m.txt
//	go run ./matchindex/cmd/mihbench -hashes corpus-1m.txt
//
// Images: the real images under -images, if given, each with -variants transformed copies; then
// stills from ffmpeg's synthetic sources (fractal zooms, cellular automata, waves of colour, test
// patterns, recoloured at random), each with -variants copies too. Every copy applies one to three
// transforms drawn at random: a resize (0.35–1.6×), a JPEG re-encode (quality 15–95), a crop (up to
// 15 % a side), a caption, a brightness, contrast or grey change. Videos (-video, the share of
// hashes): 3–6 scenes of 5–60 s from the same sources, hashed at one frame a second as vPDQ does.
// Hashes of quality below 50 are left out, as a platform would not send them.
//
// The same flags and ffmpeg version give the same file. Hashing runs on every core; ffmpeg must
// be on PATH (Debian's ffmpeg package).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"io/fs"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"concord/hashing/pdq"
)

// side is the synthetic sources' frame size in pixels (-size).
var side = 128

// stillsPerRun and videosPerRun bound what one ffmpeg run draws: its start (≈0.1 s of CPU, more
// for a graph of many sources) is paid once for that many stills or videos.
const (
	stillsPerRun = 100
	videosPerRun = 12
)

func main() {
	n := flag.Int("n", 1_000_000, "hashes to write")
	out := flag.String("o", "-", "output file (-: standard output)")
	images := flag.String("images", "", "a folder of real images (JPEG, PNG, GIF), each stored with -variants copies")
	variants := flag.Int("variants", 20, "transformed copies of each image")
	videoShare := flag.Float64("video", 0.5, "share of the hashes that are video frames")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.IntVar(&side, "size", side, "side of the synthetic images and video frames, in pixels (64 to 1024, a multiple of 4); 256 costs ≈1.5× the CPU a hash of 128, with fewer hashes of low quality left out")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of pdqcorpus itself (not of ffmpeg) to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: pdqcorpus [flags]\n\nBuilds a PDQ hash corpus of transformed images and video frames for mihbench -hashes.\n\nExample:\n  go run ./matchindex/cmd/pdqcorpus -n 1000000 -images ../shared/testdata/pdq/images -o corpus-1m.txt\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || *n <= 0 || *variants < 0 || *videoShare < 0 || *videoShare > 1 || side < 64 || side > 1024 || side%4 != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		log.Fatal("pdqcorpus draws its images and videos with ffmpeg, which is not on PATH (Debian: apt-get install ffmpeg)")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	w := os.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	c := &corpus{w: bufio.NewWriterSize(w, 1<<20), left: *n, variants: *variants, start: time.Now()}
	fmt.Fprintf(c.w, "# pdqcorpus -n %d -variants %d -video %g -seed %d -size %d (ffmpeg: %s)\n", *n, *variants, *videoShare, *seed, side, ffmpegVersion())
	imageHashes := *n - int(float64(*n)**videoShare)
	if *images != "" {
		if err := c.realImages(*images, *seed, imageHashes); err != nil {
			log.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(*seed, 2))
	workers := 2 * runtime.GOMAXPROCS(0)
	for i := 0; c.written < imageHashes && c.left > 0; {
		var jobs []func() ([]entry, error)
		for range workers {
			seed, k, count := rng.Uint64(), i, max(1, min(stillsPerRun, (imageHashes-c.written)/(c.variants+1)/workers))
			jobs = append(jobs, func() ([]entry, error) { return stills(seed, k, count, c.variants) })
			i++
		}
		if err := c.batch(jobs); err != nil {
			log.Fatal(err)
		}
	}
	for i := 0; c.left > 0; {
		var jobs []func() ([]entry, error)
		for range workers {
			// Each job draws several videos in one ffmpeg run: its start costs as much as a
			// hundred frames, and a video has 60–200.
			seeds := make([]uint64, max(1, min(videosPerRun, c.left/150/workers)))
			for v := range seeds {
				seeds[v] = rng.Uint64()
			}
			k := i
			jobs = append(jobs, func() ([]entry, error) { return videos(seeds, k) })
			i += len(seeds)
		}
		if err := c.batch(jobs); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.w.Flush(); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "pdqcorpus: %d hashes (%d of quality below 50 left out) in %s\n", c.written, c.lowQuality, time.Since(c.start).Round(time.Second))
}

// entry is one hash to write.
type entry struct {
	h      pdq.Hash
	q      int
	origin string
}

// batch runs jobs (each drawing one source's hashes) on every core and writes their hashes in
// job order, so the file does not depend on which finished first.
func (c *corpus) batch(jobs []func() ([]entry, error)) error {
	res := make([][]entry, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	done := make(chan struct{})
	for i, job := range jobs {
		go func() {
			sem <- struct{}{}
			res[i], errs[i] = job()
			<-sem
			done <- struct{}{}
		}()
	}
	for range jobs {
		<-done
	}
	for i := range jobs {
		if errs[i] != nil {
			return errs[i]
		}
		for _, e := range res[i] {
			c.emit(e.h, e.q, e.origin)
		}
	}
	return nil
}

// corpus writes hashes until left reaches 0.
type corpus struct {
	w                   *bufio.Writer
	left, written       int
	lowQuality          int
	variants            int
	start, lastProgress time.Time
}

// emit writes one hash, unless its quality is below 50 or the corpus is full.
func (c *corpus) emit(h pdq.Hash, quality int, origin string) {
	if c.left <= 0 {
		return
	}
	if quality < 50 {
		c.lowQuality++
		return
	}
	fmt.Fprintf(c.w, "%s\t%d\t%s\n", h, quality, origin)
	c.left--
	c.written++
	if time.Since(c.lastProgress) > 10*time.Second {
		c.lastProgress = time.Now()
		fmt.Fprintf(os.Stderr, "pdqcorpus: %d hashes, %s\n", c.written, time.Since(c.start).Round(time.Second))
	}
}

// family returns the hashes of an image and its variants.
func family(img image.Image, variants int, seed uint64, origin string) []entry {
	h, q := pdq.HashImage(img)
	es := []entry{{h, q, origin}}
	for v := 1; v <= variants; v++ {
		rng := rand.New(rand.NewPCG(seed, uint64(v)))
		variant, applied := transform(rng, img)
		h, q := pdq.HashImage(variant)
		es = append(es, entry{h, q, origin + " " + applied})
	}
	return es
}

// realImages writes the images under dir, each with its variants, up to limit hashes.
func (c *corpus) realImages(dir string, seed uint64, limit int) error {
	i := 0
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || c.written >= limit {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".jpg", ".jpeg", ".png", ".gif":
		default:
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		img, _, err := pdq.Decode(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pdqcorpus: %s: %v (left out)\n", path, err)
			return nil
		}
		small, k := fit(img, 512), uint64(i)
		i++
		return c.batch([]func() ([]entry, error){func() ([]entry, error) {
			return family(small, c.variants, seed^k<<20, "image:"+filepath.Base(path)), nil
		}})
	})
}

// fit returns img as RGBA, scaled down to at most limit pixels a side (PDQ reads an image
// larger than 512 px at 512 × 512 anyway; transforms on the full size would only cost time).
func fit(img image.Image, limit int) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if m := max(w, h); m > limit {
		w, h = max(1, w*limit/m), max(1, h*limit/m)
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	return dst
}

// source returns an ffmpeg lavfi graph of one of the synthetic sources, at rate frames a
// second, with its parameters drawn from rng.
func source(rng *rand.Rand, rate float64) string {
	s := fmt.Sprintf("s=%dx%d:r=%g", side, side, rate)
	small := fmt.Sprintf("s=%dx%d:r=%g", side/2, side/2, rate)
	tiny := fmt.Sprintf("s=%dx%d:r=%g", side/4, side/4, rate)
	up := fmt.Sprintf(",scale=%d:%d:flags=bicubic", side, side)
	var g string
	switch rng.IntN(6) {
	case 0:
		// Drawn at half size and scaled up: the fractal's cost is per pixel and iteration.
		g = fmt.Sprintf("mandelbrot=%s:maxiter=192:start_x=%.6f:start_y=%.6f:start_scale=%.3f:end_scale=%.5f:end_pts=%d",
			small, -1.5+rng.Float64()*1.2, -0.8+rng.Float64()*1.6, 0.5+rng.Float64()*3, 0.001+rng.Float64()*0.3, 50+rng.IntN(400)) + up
	case 1:
		g = fmt.Sprintf("life=%s:seed=%d:ratio=%.2f:mold=%d:life_color=#%06x:death_color=#%06x:mold_color=#%06x",
			s, rng.Uint32(), 0.05+rng.Float64()*0.5, rng.IntN(40), rng.IntN(1<<24), rng.IntN(1<<24), rng.IntN(1<<24))
	case 2:
		g = fmt.Sprintf("cellauto=%s:rule=%d:seed=%d:random_fill_ratio=%.2f:scroll=%d",
			s, 18+rng.IntN(200), rng.Uint32(), 0.1+rng.Float64()*0.8, rng.IntN(2))
	case 3:
		// Smooth waves of colour drifting over time (ffmpeg's own gradients source is not
		// reproducible from its seed).
		wave := func() string { // drawn at a quarter size and scaled up: geq is slow
			return fmt.Sprintf("128+127*sin(X/%.1f+Y/%.1f+T*%.2f)", 1+rng.Float64()*15, 1+rng.Float64()*15, rng.Float64())
		}
		g = fmt.Sprintf("nullsrc=%s,format=rgb24,geq=r='%s':g='%s':b='%s'", tiny, wave(), wave(), wave()) + up
	case 4:
		g = fmt.Sprintf("sierpinski=%s:seed=%d:jump=%d:type=%s", s, rng.Uint32(), 1+rng.IntN(50), []string{"carpet", "triangle"}[rng.IntN(2)])
	default:
		g = fmt.Sprintf("testsrc2=%s,drawbox=x=%d:y=%d:w=%d:h=%d:color=#%06x:t=fill", s,
			rng.IntN(side), rng.IntN(side), (20+rng.IntN(150))*side/256, (20+rng.IntN(150))*side/256, rng.IntN(1<<24))
	}
	return g + ",format=rgba," + recolour(float64(rng.IntN(360)), 0.3+rng.Float64()*1.5)
}

// recolour returns ffmpeg's colorchannelmixer turning hues by degrees and scaling saturation by
// sat, as the matrices of CSS's hue-rotate and saturate filters do (luminance kept); the hue
// filter does the same in YUV at six times the cost.
func recolour(degrees, sat float64) string {
	c, s := math.Cos(degrees*math.Pi/180), math.Sin(degrees*math.Pi/180)
	hue := [3][3]float64{
		{0.213 + c*0.787 - s*0.213, 0.715 - c*0.715 - s*0.715, 0.072 - c*0.072 + s*0.928},
		{0.213 - c*0.213 + s*0.143, 0.715 + c*0.285 + s*0.140, 0.072 - c*0.072 - s*0.283},
		{0.213 - c*0.213 - s*0.787, 0.715 - c*0.715 + s*0.715, 0.072 + c*0.928 + s*0.072},
	}
	saturate := [3][3]float64{
		{0.213 + 0.787*sat, 0.715 - 0.715*sat, 0.072 - 0.072*sat},
		{0.213 - 0.213*sat, 0.715 + 0.285*sat, 0.072 - 0.072*sat},
		{0.213 - 0.213*sat, 0.715 - 0.715*sat, 0.072 + 0.928*sat},
	}
	var b strings.Builder
	b.WriteString("colorchannelmixer=")
	for i, out := range "rgb" {
		for j, in := range "rgb" {
			var m float64
			for k := range 3 {
				m += saturate[i][k] * hue[k][j]
			}
			if i+j > 0 {
				b.WriteByte(':')
			}
			fmt.Fprintf(&b, "%c%c=%.4f", out, in, min(2, max(-2, m))) // the filter's range
		}
	}
	return b.String()
}

// frames runs ffmpeg on a lavfi graph for seconds of output and calls fn with each frame, in
// one buffer that fn must not keep.
func frames(graph string, seconds float64, fn func(img *image.RGBA) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", graph,
		"-t", fmt.Sprintf("%g", seconds), "-f", "rawvideo", "-pix_fmt", "rgba", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	r := bufio.NewReaderSize(pipe, 4*side*side)
	img := image.NewRGBA(image.Rect(0, 0, side, side)) // one frame at a time: fn keeps none
	var ferr error
	for ferr == nil {
		if _, err := io.ReadFull(r, img.Pix); err != nil {
			if !errors.Is(err, io.EOF) {
				ferr = err
			}
			break
		}
		ferr = fn(img)
	}
	io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil && ferr == nil {
		return fmt.Errorf("ffmpeg -i %q: %v: %s", graph, err, strings.TrimSpace(stderr.String()))
	}
	return ferr
}

// stills returns images drawn from one synthetic source (a frame every four seconds of it),
// each with its variants: at most stills images.
func stills(seed uint64, i, count, variants int) ([]entry, error) {
	rng := rand.New(rand.NewPCG(seed, 3))
	graph := source(rng, 0.25)
	var es []entry
	k := 0
	err := frames(graph, 4*float64(count), func(img *image.RGBA) error {
		es = append(es, family(img, variants, seed^uint64(k)<<32, fmt.Sprintf("still:%d.%d", i, k))...)
		k++
		return nil
	})
	return es, err
}

// videos returns the frame hashes of len(seeds) videos, numbered from first: each of 3–6 scenes
// of 5–60 s at one frame a second, all drawn by one ffmpeg run (its start costs more than a
// scene's frames).
func videos(seeds []uint64, first int) ([]entry, error) {
	var parts, labels []string
	type scene struct{ video, scene, end int } // end: the frame the scene ends before
	var scenes []scene
	for v, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 4))
		n := 3 + rng.IntN(4)
		for sc := range n {
			graph := source(rng, 1)
			d := 5 + rng.IntN(56)
			label := fmt.Sprintf("[s%d]", len(scenes))
			parts = append(parts, fmt.Sprintf("%s,trim=duration=%d,setpts=PTS-STARTPTS%s", graph, d, label))
			labels = append(labels, label)
			if len(scenes) > 0 {
				d += scenes[len(scenes)-1].end
			}
			scenes = append(scenes, scene{first + v, sc, d})
		}
	}
	graph := strings.Join(parts, ";") + ";" + strings.Join(labels, "") + fmt.Sprintf("concat=n=%d:v=1:a=0", len(scenes))
	var es []entry
	k, sc := 0, 0
	err := frames(graph, float64(scenes[len(scenes)-1].end), func(img *image.RGBA) error {
		for sc < len(scenes)-1 && k >= scenes[sc].end {
			sc++
		}
		h, q := pdq.HashImage(img)
		es = append(es, entry{h, q, fmt.Sprintf("video:%d scene %d", scenes[sc].video, scenes[sc].scene)})
		k++
		return nil
	})
	return es, err
}

// transform applies one to three random transforms to img, and says which.
func transform(rng *rand.Rand, img image.Image) (image.Image, string) {
	var applied []string
	for range 1 + rng.IntN(3) {
		var what string
		img, what = transformOnce(rng, img)
		applied = append(applied, what)
	}
	return img, strings.Join(applied, ",")
}

func transformOnce(rng *rand.Rand, img image.Image) (image.Image, string) {
	b := img.Bounds()
	switch rng.IntN(6) {
	case 0:
		f := 0.35 + rng.Float64()*1.25
		w, h := max(8, int(float64(b.Dx())*f)), max(8, int(float64(b.Dy())*f))
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil) // BiLinear: 1.5× the time of a variant
		return dst, fmt.Sprintf("resize=%.2f", f)
	case 1:
		q := 15 + rng.IntN(81)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
			return img, "jpeg-failed"
		}
		dec, err := jpeg.Decode(&buf)
		if err != nil {
			return img, "jpeg-failed"
		}
		return dec, fmt.Sprintf("jpeg=%d", q)
	case 2:
		dx, dy := b.Dx(), b.Dy()
		r := image.Rect(b.Min.X+rng.IntN(dx*15/100+1), b.Min.Y+rng.IntN(dy*15/100+1),
			b.Max.X-rng.IntN(dx*15/100+1), b.Max.Y-rng.IntN(dy*15/100+1))
		dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
		draw.Draw(dst, dst.Bounds(), img, r.Min, draw.Src)
		return dst, fmt.Sprintf("crop=%dx%d", r.Dx(), r.Dy())
	case 3:
		dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
		captions := []string{"SHARE BEFORE THEY DELETE", "breaking news", "#viral", "repost", "watch till the end", "© 2026"}
		text := captions[rng.IntN(len(captions))]
		col := color.RGBA{255, 255, 255, 255}
		if rng.IntN(2) == 0 {
			col = color.RGBA{0, 0, 0, 255}
		}
		y := 13 + rng.IntN(max(1, b.Dy()-13))
		(&font.Drawer{Dst: dst, Src: image.NewUniform(col), Face: basicfont.Face7x13,
			Dot: fixed.P(rng.IntN(max(1, b.Dx()/3)), y)}).DrawString(text)
		return dst, "caption"
	case 4:
		gain, offset := 0.6+rng.Float64()*0.8, -40+rng.Float64()*80
		return pointwise(img, func(v float64) float64 { return (v-128)*gain + 128 + offset }, false),
			fmt.Sprintf("contrast=%.2f,brightness=%+.0f", gain, offset)
	default:
		return pointwise(img, func(v float64) float64 { return v }, true), "grey"
	}
}

// pointwise maps every channel of every pixel through fn, or makes the image grey.
func pointwise(img image.Image, fn func(float64) float64, grey bool) image.Image {
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
	var lut [256]uint8
	for v := range lut {
		lut[v] = uint8(min(255, max(0, fn(float64(v)))))
	}
	p := dst.Pix
	for i := 0; i+3 < len(p); i += 4 {
		if grey {
			l := uint8((299*int(p[i]) + 587*int(p[i+1]) + 114*int(p[i+2])) / 1000)
			p[i], p[i+1], p[i+2] = l, l, l
		}
		p[i], p[i+1], p[i+2] = lut[p[i]], lut[p[i+1]], lut[p[i+2]]
	}
	return dst
}

func ffmpegVersion() string {
	out, err := exec.Command("ffmpeg", "-version").Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(line, "ffmpeg version ")
}
