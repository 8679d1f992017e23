package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	concordv1 "concord/gen/concord/v1"
	"concord/hashing/vpdq"
)

// videoExtensions are the files `concord hash`, `match` and `notice submit --file` also hash
// with vPDQ (frames decoded by ffmpeg).
var videoExtensions = map[string]bool{".mp4": true, ".m4v": true, ".mov": true, ".mkv": true, ".webm": true, ".avi": true, ".mpg": true, ".mpeg": true, ".ts": true, ".flv": true, ".3gp": true}

func isVideo(path string) bool { return videoExtensions[strings.ToLower(filepath.Ext(path))] }

// videoHash computes a video's PDQ_VIDEO hash: the PDQ hashes of its frames sampled at one per
// second, frames below quality 50 left out. Its quality is the lowest of the frames kept. It
// returns (nil, reason) when there is none: ffmpeg missing, no usable frame.
func videoHash(ctx context.Context, path string) (*concordv1.Hash, error) {
	frames, err := vpdq.HashFile(ctx, path, vpdq.Options{})
	if err != nil {
		return nil, err
	}
	value, err := vpdq.Encode(frames)
	if err != nil {
		return nil, err
	}
	quality := 100
	for _, f := range frames {
		if f.Quality >= vpdq.MinQuality {
			quality = min(quality, f.Quality)
		}
	}
	return &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_PDQ_VIDEO, Value: value, Quality: int32(quality)}, nil
}

// videoNote explains, once, why a video got no vPDQ hash.
func videoNote(path string, err error) string {
	if errors.Is(err, vpdq.ErrFFmpegNotFound) {
		return fmt.Sprintf("%s: no vPDQ hash (the exact hashes are kept): concord decodes videos with ffmpeg, which is not on "+
			"PATH; install it (Debian/Ubuntu: apt-get install ffmpeg; Fedora: dnf install ffmpeg; macOS: brew install ffmpeg; "+
			"Windows: winget install ffmpeg)", path)
	}
	return fmt.Sprintf("%s: no vPDQ hash: %v", path, err)
}

// withVideoHash adds the vPDQ hash of a video file to hashes, or says on standard error why there
// is none; other files are left as they are.
func withVideoHash(path string, hashes []*concordv1.Hash) []*concordv1.Hash {
	if !isVideo(path) {
		return hashes
	}
	v, err := videoHash(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, videoNote(path, err))
		return hashes
	}
	return append(hashes, v)
}
