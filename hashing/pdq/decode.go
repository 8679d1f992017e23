package pdq

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"slices"

	// Registered with image.Decode: the formats a PDQ hash can be computed from.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/webp"
)

// MaxPixels is the largest image, in pixels (width × height), that Decode accepts: 2²⁶, about
// 67 megapixels, beyond any camera photo yet small enough that a few concurrent decodes fit in
// memory. A file is checked against it before its pixels are decoded, so a tiny file that
// claims a huge size (a decompression bomb) costs nothing.
const MaxPixels = 1 << 26

// Errors from Decode, for errors.Is.
var (
	// ErrUnsupportedFormat: the bytes are not an image in one of the accepted formats.
	ErrUnsupportedFormat = errors.New("unsupported image format: PDQ accepts JPEG, PNG, GIF and WebP")
	// ErrTooLarge: the image has more than MaxPixels pixels.
	ErrTooLarge = errors.New("image too large to hash")
)

// formats are the image.Decode names of the accepted formats. Another package linked into the
// same binary may register more (BMP, TIFF…); they are refused so that every Concord program
// hashes the same set of files.
var formats = []string{"jpeg", "png", "gif", "webp"}

// Decode decodes a JPEG, PNG, GIF (first frame) or WebP image from r, reading r once.
// It refuses other formats with ErrUnsupportedFormat and images of more than MaxPixels with
// ErrTooLarge, before decoding any pixel. The format name is "jpeg", "png", "gif" or "webp".
func Decode(r io.Reader) (image.Image, string, error) {
	// Read the header through a tee so the full decode can replay it: r is read only once.
	var head bytes.Buffer
	cfg, format, err := image.DecodeConfig(io.TeeReader(r, &head))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return nil, "", ErrUnsupportedFormat
		}
		return nil, format, fmt.Errorf("decode %s header: %w", format, err)
	}
	if !slices.Contains(formats, format) {
		return nil, format, fmt.Errorf("%w (got %s)", ErrUnsupportedFormat, format)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, format, fmt.Errorf("decode %s header: the image is %d×%d: it has no pixels to hash", format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > MaxPixels {
		return nil, format, fmt.Errorf("%w: %d×%d is %d pixels, the limit is %d: downscale it before hashing",
			ErrTooLarge, cfg.Width, cfg.Height, px, MaxPixels)
	}
	img, _, err := image.Decode(io.MultiReader(&head, r))
	if err != nil {
		return nil, format, fmt.Errorf("decode %s image: %w", format, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		// A decoder that disagrees with its own header (JPEG's height 0, "defined later"): the
		// pixels are not the image the header describes.
		return nil, format, fmt.Errorf("decode %s image: %d×%d pixels where the header says %d×%d", format, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	return img, format, nil
}
