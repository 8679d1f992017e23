package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReservedReplacesWithoutAllocating(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := Reserved{Path: filepath.Join(dir, "checkpoint"), Size: 512}
	for i, content := range []string{"first\n", "second, longer\n", "third\n"} {
		if err := r.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := ReadReserved(r.Path)
		if err != nil || string(got) != content {
			t.Fatalf("write %d: read %q, %v; want %q", i, got, err, content)
		}
		fi, err := os.Stat(r.Path)
		if err != nil || fi.Size() != 512 {
			t.Fatalf("write %d: the file is %v bytes, want the reserved 512 (%v)", i, fi.Size(), err)
		}
	}
	// After the first write the spare exists, allocated: later writes need no new block.
	if fi, err := os.Stat(r.Path + spareSuffix); err != nil || fi.Size() != 512 {
		t.Fatalf("spare: %v, %v", fi, err)
	}
	// A crash between the renames left the old file as .old and no spare: the next write
	// takes it back as its spare.
	if err := os.Rename(r.Path+spareSuffix, r.Path+oldSuffix); err != nil {
		t.Fatal(err)
	}
	if err := r.Write([]byte("fourth\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadReserved(r.Path); string(got) != "fourth\n" {
		t.Fatalf("after recovery: %q", got)
	}
	if _, err := os.Stat(r.Path + oldSuffix); !os.IsNotExist(err) {
		t.Fatalf(".old still there: %v", err)
	}
	// Content that does not fit grows the reservation.
	big := make([]byte, 1500)
	for i := range big {
		big[i] = 'x'
	}
	if err := r.Write(big); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadReserved(r.Path); len(got) != 1500 {
		t.Fatalf("grown content: %d bytes", len(got))
	}
	if err := r.Write([]byte("ends with zero\x00")); err == nil {
		t.Fatal("content ending with a zero byte was accepted")
	}
}
