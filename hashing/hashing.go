// Package hashing computes, in one pass over a file's bytes, every hash Concord shares for it:
// SHA-256 and MD5 always, and PDQ when the bytes are a JPEG, PNG, GIF or WebP image. The
// server, the Go client and the CLI all hash through it, so they agree on every value.
//
// The content is read once, from the reader given, and nothing else is read or written. The
// digests are fed as the bytes stream past; an image is kept in memory for the decoder only
// while it may still be one (the first bytes must carry an image signature) and only up to
// MaxImageBytes, so a large video or archive costs no more memory than a small one.
//
// The sub-packages hold the hash functions themselves: pdq (images), vpdq (videos) and urlhash
// (URLs).
package hashing

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing/pdq"
)

// MaxImageBytes is the largest file, 64 MiB, for which a PDQ hash is computed. Larger files
// still get SHA-256 and MD5; their PDQ is skipped rather than holding them in memory. No
// camera photo comes near it.
const MaxImageBytes = 64 << 20

// ErrImageTooLarge: the content is larger than MaxImageBytes, so no PDQ was computed.
var ErrImageTooLarge = errors.New("file too large for a PDQ hash")

// Hash is one hash of the content, in the form Concord's API carries it.
type Hash struct {
	Kind  concordv1.HashKind
	Value []byte
	// Quality is the PDQ quality (0 to 100) for HASH_KIND_PDQ, and 0 otherwise.
	Quality int
}

// Proto returns the hash as the API message.
func (h Hash) Proto() *concordv1.Hash {
	return &concordv1.Hash{Kind: h.Kind, Value: h.Value, Quality: int32(h.Quality)}
}

// Result lists the hashes of one piece of content.
type Result struct {
	// Size is the number of bytes read.
	Size int64
	// Hashes holds SHA-256, then MD5, then PDQ when one could be computed (see PDQErr). A PDQ
	// of low quality is listed too, with its Quality; Shareable leaves it out.
	Hashes []Hash
	// Format is the image format ("jpeg", "png", "gif" or "webp") when the content decoded as
	// an image, and "" otherwise.
	Format string
	// PDQErr says why there is no PDQ hash, or is nil when there is one. It wraps
	// pdq.ErrUnsupportedFormat when the content is not an image in an accepted format,
	// ErrImageTooLarge or pdq.ErrTooLarge when it is too large, and the decoder's error when
	// the image is corrupt.
	PDQErr error
}

// Get returns the hash of the given kind, if the result holds one.
func (r *Result) Get(kind concordv1.HashKind) (Hash, bool) {
	for _, h := range r.Hashes {
		if h.Kind == kind {
			return h, true
		}
	}
	return Hash{}, false
}

// Shareable returns the hashes Concord accepts in a notice: all of them except a PDQ hash of
// quality below pdq.MinQuality, which would match unrelated flat pictures.
func (r *Result) Shareable() []Hash {
	out := make([]Hash, 0, len(r.Hashes))
	for _, h := range r.Hashes {
		if h.Kind == concordv1.HashKind_HASH_KIND_PDQ && h.Quality < pdq.MinQuality {
			continue
		}
		out = append(out, h)
	}
	return out
}

// Content reads r to its end once and returns its hashes. The error is non-nil only when
// reading fails; not being an image is not an error (see Result.PDQErr).
func Content(r io.Reader) (*Result, error) {
	sha, md := sha256.New(), md5.New()
	img := &imageBuffer{}
	n, err := io.Copy(io.MultiWriter(sha, md, img), r)
	if err != nil {
		return nil, fmt.Errorf("hash content: read after %d bytes: %w", n, err)
	}
	res := &Result{
		Size: n,
		Hashes: []Hash{
			{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sha.Sum(nil)},
			{Kind: concordv1.HashKind_HASH_KIND_MD5, Value: md.Sum(nil)},
		},
	}
	if res.PDQErr = img.verdict(n); res.PDQErr != nil {
		return res, nil
	}
	decoded, format, err := pdq.Decode(bytes.NewReader(img.data))
	if err != nil {
		res.PDQErr = fmt.Errorf("no PDQ hash: %w", err)
		return res, nil
	}
	h, quality := pdq.HashImage(decoded)
	res.Format = format
	res.Hashes = append(res.Hashes, Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ, Value: h[:], Quality: quality})
	return res, nil
}

// imageBuffer keeps the content for the image decoder while it may be an image: it checks
// the signature once enough bytes have arrived, and gives up (freeing what it holds) on a
// non-image or past MaxImageBytes.
type imageBuffer struct {
	data    []byte
	sniffed bool
	dropped error // why the content is not kept
}

// sniffLen is enough bytes to recognise every accepted signature (WebP's is the longest).
const sniffLen = 16

func (b *imageBuffer) Write(p []byte) (int, error) {
	if b.dropped != nil {
		return len(p), nil
	}
	if !b.sniffed && len(b.data)+len(p) >= sniffLen {
		// Decide before buffering anything large: most non-images are refused here.
		var head [sniffLen]byte
		copy(head[copy(head[:], b.data):], p)
		b.sniffed = true
		if !isImage(head[:]) {
			b.drop(pdq.ErrUnsupportedFormat)
			return len(p), nil
		}
	}
	need := len(b.data) + len(p)
	if need > MaxImageBytes {
		b.drop(ErrImageTooLarge)
		return len(p), nil
	}
	if need > cap(b.data) {
		// Grow geometrically, but never beyond the limit.
		grown := make([]byte, len(b.data), min(max(need, 2*cap(b.data), 64<<10), MaxImageBytes))
		copy(grown, b.data)
		b.data = grown
	}
	b.data = append(b.data, p...)
	return len(p), nil
}

func (b *imageBuffer) drop(why error) {
	b.data, b.dropped = nil, why
}

// verdict is nil when the buffered content should go to the decoder, else the reason why not.
func (b *imageBuffer) verdict(size int64) error {
	switch {
	case errors.Is(b.dropped, ErrImageTooLarge):
		return fmt.Errorf("no PDQ hash: %w: %d bytes, the limit is %d", ErrImageTooLarge, size, MaxImageBytes)
	case b.dropped != nil:
		return fmt.Errorf("no PDQ hash: %w", b.dropped)
	case !b.sniffed && !isImage(b.data): // shorter than sniffLen
		return fmt.Errorf("no PDQ hash: %w", pdq.ErrUnsupportedFormat)
	}
	return nil
}

// isImage reports whether data starts with the signature of an accepted image format.
func isImage(data []byte) bool {
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8")): // JPEG
		return true
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return true
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return true
	case len(data) >= 15 && string(data[:4]) == "RIFF" && string(data[8:15]) == "WEBPVP8":
		return true
	}
	return false
}
