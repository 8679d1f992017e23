package raftnode

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"concord/internal/atomicfile"

	"github.com/hashicorp/raft-wal/types"
)

// MetaFile is the file in the raft log's directory that lists its segment files and holds raft's
// stable values (term, vote). It replaces raft-wal's bolt database: bolt checksums only its meta
// pages, and a damaged data page can crash the process that reads it, where this file is one
// JSON document with its SHA-256, rewritten atomically on each (rare) change, into space
// reserved beforehand (see atomicfile.Reserved), so that a full disk never stops it.
const MetaFile = "wal-meta.json"

// metaReserve is the space kept for MetaFile (and its spare): room for a few hundred segments.
const metaReserve = 64 << 10

// metaTrailer starts the file's last line: the SHA-256 of everything before it, in hex.
const metaTrailer = "sha256 "

// metaDoc is the content of MetaFile.
type metaDoc struct {
	Format int                   `json:"format"`
	State  types.PersistentState `json:"state"`
	Stable map[string][]byte     `json:"stable"`
}

// fileMetaStore is raft-wal's MetaStore kept in MetaFile.
type fileMetaStore struct {
	path string

	mu  sync.Mutex
	doc metaDoc
}

var _ types.MetaStore = (*fileMetaStore)(nil)

// ErrMetaChecksum marks a MetaFile whose content does not match its checksum.
var ErrMetaChecksum = errors.New("checksum mismatch")

// readMetaFile reads and checks path. It returns os.ErrNotExist if there is none.
func readMetaFile(path string) (metaDoc, error) {
	b, err := atomicfile.ReadReserved(path)
	if err != nil {
		return metaDoc{}, err
	}
	cut := bytes.LastIndex(b, []byte("\n"+metaTrailer))
	if cut < 0 || !bytes.HasSuffix(b, []byte("\n")) {
		return metaDoc{}, fmt.Errorf("%w: %s has no checksum line", ErrMetaChecksum, path)
	}
	body, sum := b[:cut+1], bytes.TrimSuffix(b[cut+1+len(metaTrailer):], []byte("\n"))
	want := sha256.Sum256(body)
	if hex.EncodeToString(want[:]) != string(sum) {
		return metaDoc{}, fmt.Errorf("%w: %s", ErrMetaChecksum, path)
	}
	var doc metaDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return metaDoc{}, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Format != 1 {
		return metaDoc{}, fmt.Errorf("%s: format %d, this Concord reads format 1", path, doc.Format)
	}
	if doc.Stable == nil {
		doc.Stable = map[string][]byte{}
	}
	return doc, nil
}

// writeMetaFile replaces path with doc, durably and atomically (a crash leaves the old file or
// the new one), in reserved space.
func writeMetaFile(path string, doc metaDoc) error {
	body, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return err
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	b := append(body, []byte(metaTrailer+hex.EncodeToString(sum[:])+"\n")...)
	return atomicfile.Reserved{Path: path, Size: metaReserve}.Write(b)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load reads MetaFile in dir, or creates it empty.
func (m *fileMetaStore) Load(dir string) (types.PersistentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.path = filepath.Join(dir, MetaFile)
	doc, err := readMetaFile(m.path)
	if errors.Is(err, os.ErrNotExist) {
		doc = metaDoc{Format: 1, Stable: map[string][]byte{}}
		if err := writeMetaFile(m.path, doc); err != nil {
			return types.PersistentState{}, fmt.Errorf("create %s: %w", m.path, err)
		}
	} else if err != nil {
		return types.PersistentState{}, err
	}
	m.doc = doc
	return doc.State, nil
}

func (m *fileMetaStore) CommitState(st types.PersistentState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	doc := m.doc
	doc.State = st
	if err := writeMetaFile(m.path, doc); err != nil {
		return fmt.Errorf("write %s: %w", m.path, err)
	}
	m.doc = doc
	return nil
}

func (m *fileMetaStore) GetStable(key []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.doc.Stable[string(key)]
	if !ok {
		return nil, nil
	}
	return bytes.Clone(v), nil
}

func (m *fileMetaStore) SetStable(key, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	stable := make(map[string][]byte, len(m.doc.Stable)+1)
	for k, v := range m.doc.Stable {
		stable[k] = v
	}
	stable[string(key)] = bytes.Clone(value)
	doc := m.doc
	doc.Stable = stable
	if err := writeMetaFile(m.path, doc); err != nil {
		return fmt.Errorf("write %s: %w", m.path, err)
	}
	m.doc = doc
	return nil
}

func (m *fileMetaStore) Close() error { return nil }
