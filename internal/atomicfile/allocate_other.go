//go:build !linux

package atomicfile

import "os"

// Allocate makes f exactly size bytes; writing the zeros allocates them.
func Allocate(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > size {
		return f.Truncate(size)
	}
	_, err = f.WriteAt(make([]byte, size-fi.Size()), fi.Size())
	return err
}
