package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing"
	"concord/hashing/pdq"
	"concord/hashing/urlhash"
)

func init() {
	register(command{name: "hash", summary: "hash files and URLs locally, as Concord shares them", run: runHash})
}

// fileResult is one file's hashes, as `concord hash --json` prints them and `notice submit
// --list` reads them back.
type fileResult struct {
	File     string     `json:"file,omitempty"`
	URL      string     `json:"url,omitempty"`
	Size     int64      `json:"size,omitempty"`
	Format   string     `json:"format,omitempty"`
	Hashes   []jsonHash `json:"hashes"`
	PDQError string     `json:"pdq_error,omitempty"`
	Error    string     `json:"error,omitempty"`
}

type jsonHash struct {
	Kind    string `json:"kind"`
	Hex     string `json:"hex"`
	Quality int    `json:"quality,omitempty"`
}

func runHash(ctx context.Context, args []string) error {
	fs := newFlags("hash", "hash [flags] FILE|DIR...", `
Computes, on this machine, the hashes Concord shares for each file: SHA-256, MD5, PDQ with its
quality for images (JPEG, PNG, GIF, WebP), and vPDQ (PDQ_VIDEO: one frame a second, through
ffmpeg, which must be installed) for videos. Nothing is sent anywhere. Directories are walked.
--url hashes a URL (normalised, then SHA-256) for blocking lists. --json output can be given
back to 'concord notice submit --list'.`, `
concord hash photo.jpg clips/
concord hash --url 'https://Example.org:443/a/../b#frag' --json`)
	var urls repeatFlag
	fs.Var(&urls, "url", "a URL to hash as URL_SHA256 (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 && len(urls) == 0 {
		fs.Usage()
		return errUsage
	}
	var results []fileResult
	for _, u := range urls {
		results = append(results, hashURL(u))
	}
	files, err := expandPaths(fs.Args())
	if err != nil {
		return err
	}
	failed := 0
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := hashFile(f)
		if r.Error != "" {
			failed++
		}
		results = append(results, r)
	}
	for _, r := range results {
		if r.URL != "" && r.Error != "" {
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		printHashes(os.Stdout, results)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d inputs could not be hashed", failed, len(results))
	}
	return nil
}

// expandPaths lists the files named, walking directories in lexical order.
func expandPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func hashFile(path string) fileResult {
	r := fileResult{File: path, Hashes: []jsonHash{}}
	f, err := os.Open(path)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer f.Close()
	res, err := hashing.Content(f)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Size, r.Format = res.Size, res.Format
	for _, h := range res.Hashes {
		r.Hashes = append(r.Hashes, jsonHash{Kind: kindName(h.Kind), Hex: hex.EncodeToString(h.Value), Quality: h.Quality})
	}
	if res.PDQErr != nil && !errors.Is(res.PDQErr, pdq.ErrUnsupportedFormat) {
		r.PDQError = res.PDQErr.Error()
	}
	if isVideo(path) {
		if v, err := videoHash(context.Background(), path); err == nil {
			r.Hashes = append(r.Hashes, jsonHash{Kind: kindName(v.GetKind()), Hex: hex.EncodeToString(v.GetValue()), Quality: int(v.GetQuality())})
		} else {
			r.PDQError = videoNote(path, err)
		}
	}
	return r
}

func hashURL(u string) fileResult {
	r := fileResult{URL: u, Hashes: []jsonHash{}}
	sum, err := urlhash.Hash(u)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Hashes = append(r.Hashes, jsonHash{Kind: kindName(concordv1.HashKind_HASH_KIND_URL_SHA256), Hex: hex.EncodeToString(sum[:])})
	return r
}

func printHashes(w io.Writer, results []fileResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, r := range results {
		name := r.File
		if name == "" {
			name = r.URL
		}
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\terror\t%s\n", name, r.Error)
			continue
		}
		for _, h := range r.Hashes {
			extra := ""
			if h.Kind == "pdq" {
				extra = fmt.Sprintf("quality %d", h.Quality)
				if h.Quality < pdq.MinQuality {
					extra += " (below 50: not shareable)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, h.Kind, h.Hex, extra)
		}
		if r.PDQError != "" {
			fmt.Fprintf(tw, "%s\tpdq\t-\t%s\n", name, r.PDQError)
		}
	}
	tw.Flush()
}

// fileHashes hashes a local file for a notice: every shareable hash (SHA-256, MD5, and PDQ of an
// image of quality ≥ 50). The file never leaves the machine, only its hashes do.
func fileHashes(path string) ([]*concordv1.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := hashing.Content(f)
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	if h, ok := res.Get(concordv1.HashKind_HASH_KIND_PDQ); ok && h.Quality < pdq.MinQuality {
		fmt.Fprintf(os.Stderr, "%s: PDQ quality %d is below %d, so its PDQ hash is left out (the exact hashes are kept)\n", path, h.Quality, pdq.MinQuality)
	}
	var out []*concordv1.Hash
	for _, h := range res.Shareable() {
		out = append(out, h.Proto())
	}
	return withVideoHash(path, out), nil
}
