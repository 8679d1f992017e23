package raftnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// legacyMetaFile is the bolt database in which raft-wal kept its metadata before Concord
// checksummed its raft log.
const legacyMetaFile = "wal-meta.db"

// migrateLegacyWAL rewrites, once, a raft log written by a Concord without log checksums
// (raft-wal's bolt metadata and plain codec) into the checksummed format: same entries, same
// term and vote. It works in a sibling directory and swaps it in by renames, so a crash at any
// point leaves either the old log or the new one; a rerun finishes the job.
func migrateLegacyWAL(dir string, logger hclog.Logger) error {
	next, done := dir+".migrating", dir+".migrating/DONE"
	if _, err := os.Stat(done); err == nil {
		// The new log is complete: the crash came between the renames.
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("migrate the raft log: %w", err)
		}
		return finishMigration(dir, next, done)
	}
	if err := os.RemoveAll(next); err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyMetaFile)); err != nil {
		return nil // nothing to migrate
	}
	if _, err := os.Stat(filepath.Join(dir, MetaFile)); err == nil {
		return nil // already migrated; the bolt file is a leftover
	}
	logger.Info("converting the raft log to the checksummed format", "dir", dir)
	old, err := wal.Open(dir, wal.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("open the raft log in %s to convert it: %w", dir, err)
	}
	defer old.Close()
	if err := os.MkdirAll(next, 0o700); err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	w, err := openLogStore(next, logger, 0)
	if err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	defer w.Close()
	first, err := old.FirstIndex()
	if err != nil {
		return err
	}
	last, err := old.LastIndex()
	if err != nil {
		return err
	}
	batch := make([]*raft.Log, 0, 256)
	for i := first; last > 0 && i <= last; i++ {
		l := new(raft.Log)
		if err := old.GetLog(i, l); err != nil {
			return fmt.Errorf("migrate the raft log: read entry %d: %w", i, err)
		}
		batch = append(batch, l)
		if len(batch) == cap(batch) || i == last {
			if err := w.StoreLogs(batch); err != nil {
				return fmt.Errorf("migrate the raft log: %w", err)
			}
			batch = batch[:0]
		}
	}
	for _, key := range []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"} {
		v, err := old.Get([]byte(key))
		if err != nil {
			return fmt.Errorf("migrate the raft log: %w", err)
		}
		if v != nil {
			if err := w.Set([]byte(key), v); err != nil {
				return fmt.Errorf("migrate the raft log: %w", err)
			}
		}
	}
	if err := errors.Join(w.wal.Close(), old.Close()); err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	if err := syncDir(next); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	if err := finishMigration(dir, next, done); err != nil {
		return err
	}
	logger.Info("raft log converted", "dir", dir, "entries", max(last+1, first)-first)
	return nil
}

func finishMigration(dir, next, done string) error {
	if err := os.Rename(next, dir); err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, filepath.Base(done))); err != nil {
		return fmt.Errorf("migrate the raft log: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}
