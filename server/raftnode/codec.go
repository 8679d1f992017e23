package raftnode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/hashicorp/raft"
)

// Every entry of a node's raft log carries its own checksum: the CRC-32C of its index, term,
// type, data, extensions and append time, kept at the front of its Extensions (raft leaves them
// to the application) behind the marker entryChecksumMarker, and removed again when the entry
// is read. raft-wal checksums only its last write, at recovery; with this every entry is checked
// each time it is read, and at start for the whole retained log, and an entry read from the
// wrong place is caught by its index.
var entryChecksumMarker = []byte("CCK1")

const entryChecksumLen = 4 + 4 // marker, CRC

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrEntryChecksum marks an entry whose bytes do not match its checksum.
var ErrEntryChecksum = errors.New("checksum mismatch")

// entryChecksum is the CRC-32C of everything raft-wal stores of an entry.
func entryChecksum(l *raft.Log, ext []byte) uint32 {
	var hdr [8 + 8 + 1 + 8]byte
	binary.LittleEndian.PutUint64(hdr[0:], l.Index)
	binary.LittleEndian.PutUint64(hdr[8:], l.Term)
	hdr[16] = byte(l.Type)
	binary.LittleEndian.PutUint64(hdr[17:], uint64(len(l.Data)))
	sum := crc32.Update(0, castagnoli, hdr[:])
	sum = crc32.Update(sum, castagnoli, l.Data)
	var tail [8 + 8]byte
	binary.LittleEndian.PutUint64(tail[0:], uint64(len(ext)))
	sum = crc32.Update(sum, castagnoli, tail[:8])
	sum = crc32.Update(sum, castagnoli, ext)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	binary.LittleEndian.PutUint64(tail[8:], uint64(at))
	return crc32.Update(sum, castagnoli, tail[8:])
}

// sealEntry returns a copy of l that carries its checksum (l itself is raft's and stays as is).
func sealEntry(l *raft.Log) *raft.Log {
	c := *l
	ext := make([]byte, 0, entryChecksumLen+len(l.Extensions))
	ext = append(ext, entryChecksumMarker...)
	ext = binary.LittleEndian.AppendUint32(ext, entryChecksum(l, l.Extensions))
	c.Extensions = append(ext, l.Extensions...)
	return &c
}

// openEntry checks a stored entry's checksum and removes it, leaving the entry as raft stored it.
func openEntry(l *raft.Log) error {
	if len(l.Extensions) < entryChecksumLen || !bytes.Equal(l.Extensions[:4], entryChecksumMarker) {
		return fmt.Errorf("%w: entry %d carries no checksum", ErrEntryChecksum, l.Index)
	}
	want := binary.LittleEndian.Uint32(l.Extensions[4:8])
	ext := l.Extensions[entryChecksumLen:]
	if len(ext) == 0 {
		ext = nil
	}
	if got := entryChecksum(l, ext); got != want {
		return fmt.Errorf("%w: CRC-32C %08x, the entry records %08x", ErrEntryChecksum, got, want)
	}
	l.Extensions = ext
	return nil
}
