package atomicfile

import (
	"errors"
	"os"
	"syscall"
)

// Allocate makes f exactly size bytes, every one of them allocated (fallocate).
func Allocate(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > size {
		if err := f.Truncate(size); err != nil {
			return err
		}
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if !errors.Is(err, syscall.EOPNOTSUPP) {
			return err
		}
		// No fallocate on this filesystem: writing the zeros allocates them.
		if fi.Size() < size {
			if _, err := f.WriteAt(make([]byte, size-fi.Size()), fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}
