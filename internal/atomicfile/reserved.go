package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Reserved replaces a small file without allocating disk space, so that it can be written on a
// full disk: the file and a spare beside it (Path + ".spare") are both kept allocated at Size
// bytes. A write goes into the spare, padded with zeros, is synced, and the two swap names (a hard
// link keeps the old file as the next spare): a crash leaves the old content or the new, and no
// step needs a new block. Content must not end with zero bytes: ReadReserved trims them.
type Reserved struct {
	Path string
	// Size is the allocated size of the file and of its spare (default 4 KiB). Content that
	// does not fit grows both, which allocates.
	Size int64
}

const spareSuffix, oldSuffix = ".spare", ".old"

// ReadReserved reads a file written by Reserved.Write (or WriteFile), without its padding.
func ReadReserved(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(b, "\x00"), nil
}

// Write replaces the file's content with data.
func (r Reserved) Write(data []byte) error {
	if len(data) > 0 && data[len(data)-1] == 0 {
		return fmt.Errorf("write %s: content ends with a zero byte, which reads as padding", r.Path)
	}
	size := r.Size
	if size <= 0 {
		size = 4 << 10
	}
	for size < int64(len(data)) {
		size *= 2
	}
	spare, old := r.Path+spareSuffix, r.Path+oldSuffix
	// A crash between the two renames of an earlier write left the old file under .old.
	if _, err := os.Stat(spare); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(old, spare); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write %s: %w", r.Path, err)
		}
	}
	f, err := os.OpenFile(spare, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", r.Path, err)
	}
	if err := Allocate(f, size); err != nil {
		f.Close()
		return fmt.Errorf("write %s: reserve %d bytes: %w", r.Path, size, err)
	}
	padded := make([]byte, size)
	copy(padded, data)
	if _, err := f.WriteAt(padded, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", r.Path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", r.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", r.Path, err)
	}
	_ = os.Remove(old)
	hadOld := false
	if err := os.Link(r.Path, old); err == nil {
		hadOld = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("write %s: %w", r.Path, err)
	}
	if err := os.Rename(spare, r.Path); err != nil {
		return fmt.Errorf("write %s: %w", r.Path, err)
	}
	if hadOld {
		if err := os.Rename(old, spare); err != nil {
			return fmt.Errorf("write %s: %w", r.Path, err)
		}
	}
	return syncDir(filepath.Dir(r.Path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
