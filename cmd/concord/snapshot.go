package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	concordv1 "concord/gen/concord/v1"
	"concord/server/backup"
)

func init() {
	register(command{name: "snapshot", summary: "back a cluster up and restore it (snapshot save|restore)", run: runSnapshot})
}

func runSnapshot(ctx context.Context, args []string) error {
	return runGroup(ctx, "snapshot", `
A snapshot is a consistent, checksummed point-in-time copy of a node's state: the registry, the
notices, the action reports and the whole transparency log. 'save' asks any node of a running
cluster for one (ADMIN); 'restore' seeds an empty data directory with it, offline, so that a new
cluster starts from it with the same state and the same log root.`, `
concord snapshot save backup.snap --as hub-ops
concord snapshot restore backup.snap --data-dir /var/lib/concord --node-id node-1 --raft-addr 10.0.0.1:7000`,
		[]subcommand{
			{"save", "save a snapshot of a running cluster to a file", runSnapshotSave},
			{"restore", "seed an empty data directory from a snapshot file (offline)", runSnapshotRestore},
		}, args)
}

func runSnapshotSave(ctx context.Context, args []string) error {
	fs := newFlags("snapshot save", "snapshot save FILE [flags]", `
Asks the node at --addr for a snapshot holding every write acknowledged before the call and
writes it to FILE, which must not exist. The node sends the file's SHA-256 last; the file is
kept only if it matches, and ends with that checksum, which 'snapshot restore' checks again.`, `
concord snapshot save /backups/concord-$(date +%F).snap --as hub-ops --addr 10.0.0.2:7443`)
	var cf clientFlags
	cf.register(fs)
	pos, err := parseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("want FILE (run 'concord snapshot save --help')")
	}
	path := pos[0]
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: choose a new file name", path)
	}
	c, err := cf.dial(false)
	if err != nil {
		return err
	}
	defer c.Close()
	info, sum, size, err := saveSnapshot(ctx, c.Cluster, path)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(os.Stdout, info)
	}
	fmt.Fprintf(os.Stdout, "snapshot saved: %s (%d bytes, sha256 %s)\n", path, size, hex.EncodeToString(sum))
	fmt.Fprintf(os.Stdout, "  taken on %s at %s: raft index %d, log of %d entries with root %x\n",
		info.GetNodeId(), info.GetTakenAt().AsTime().UTC().Format("2006-01-02T15:04:05Z"), info.GetAppliedIndex(), info.GetLogSize(), info.GetLogRootHash())
	return nil
}

// saveSnapshot streams a snapshot into path: a temporary file beside it, checked against the
// node's checksum, synced, then renamed into place.
func saveSnapshot(ctx context.Context, c concordv1.ClusterServiceClient, path string) (*concordv1.SnapshotInfo, []byte, int64, error) {
	stream, err := c.SaveSnapshot(ctx, &concordv1.SaveSnapshotRequest{})
	if err != nil {
		return nil, nil, 0, callError("save snapshot", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, nil, 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	var info *concordv1.SnapshotInfo
	var sum []byte
	var size int64
	for sum == nil {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, nil, 0, errors.New("save snapshot: the node ended the stream before the checksum: the snapshot is incomplete; try again")
		}
		if err != nil {
			return nil, nil, 0, callError("save snapshot", err)
		}
		switch p := msg.GetPart().(type) {
		case *concordv1.SaveSnapshotResponse_Info:
			info = p.Info
		case *concordv1.SaveSnapshotResponse_Chunk:
			if _, err := w.Write(p.Chunk); err != nil {
				return nil, nil, 0, err
			}
			size += int64(len(p.Chunk))
		case *concordv1.SaveSnapshotResponse_Sha256:
			sum = p.Sha256
		}
	}
	if err := w.Flush(); err != nil {
		return nil, nil, 0, err
	}
	if got := h.Sum(nil); !bytes.Equal(got, sum) {
		return nil, nil, 0, fmt.Errorf("save snapshot: the bytes received have SHA-256 %x, the node says %x: the copy is damaged; try again", got, sum)
	}
	if info == nil {
		return nil, nil, 0, errors.New("save snapshot: the node sent no snapshot info")
	}
	if _, err := tmp.Write(sum); err != nil {
		return nil, nil, 0, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, nil, 0, err
	}
	if err := tmp.Close(); err != nil {
		return nil, nil, 0, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, nil, 0, fmt.Errorf("save snapshot: %w", err)
	}
	return info, sum, size + int64(len(sum)), nil
}

func runSnapshotRestore(ctx context.Context, args []string) error {
	fs := newFlags("snapshot restore", "snapshot restore FILE --data-dir DIR [flags]", `
Checks FILE (its SHA-256, then the state it holds: every table, and the transparency log's root
hash rebuilt from its entries against the one recorded when it was taken) and seeds DIR, which
must hold no raft state, with it. A node started on DIR ('concord serve --data-dir DIR' with the
same --node-id and --raft-addr, and the same log key) then starts from the snapshot as the only
member of a new cluster, with the same state and log root as the source had; other nodes join it
with empty data directories. Run it with the node stopped.`, `
concord snapshot restore backup.snap --data-dir /var/lib/concord --node-id node-1 --raft-addr 10.0.0.1:7000
concord snapshot restore backup.snap --data-dir .concord/data   # a node that runs alone`)
	dataDir := fs.String("data-dir", "", "the new node's data directory (empty, or absent)")
	nodeID := fs.String("node-id", "node-1", "the new node's id (its node certificate's)")
	raftAddr := fs.String("raft-addr", "", "the new node's raft address (empty: a node that runs alone)")
	pos, err := parseWithArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dataDir == "" {
		return fmt.Errorf("want FILE and --data-dir (run 'concord snapshot restore --help')")
	}
	info, err := backup.Restore(pos[0], *dataDir, *nodeID, *raftAddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "restored %s into %s: raft index %d, log of %d entries with root %x (taken on %s)\n",
		pos[0], *dataDir, info.GetAppliedIndex(), info.GetLogSize(), info.GetLogRootHash(), info.GetNodeId())
	fmt.Fprintf(os.Stdout, "Start the node on it now; it is the only member of a new cluster, which other nodes join.\n")
	return nil
}
