package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"concord/internal/atomicfile"
	"concord/server/cluster"
	"concord/server/integrity"
	"concord/server/transparency"
)

// A node of a cluster whose data is damaged, or whose log forked from the majority's, repairs
// itself from the other members: it sets its raft state aside in QuarantineDir (evidence, for
// an operator to examine and delete), asks the cluster to remove its old membership and add it
// back, and catches up from the leader's snapshot, ending with the leader's log. A node that runs
// alone has nobody to repair from: it refuses to start, naming the damaged file.

// RepairFile marks a data directory whose node must be repaired before it serves again: a node
// that finds its log forked while it runs writes it, with the reason, and restarts.
const RepairFile = "REPAIR"

// QuarantineDir, in the data directory, holds the raft state of every repair, one directory
// per repair named after its time.
const QuarantineDir = "quarantine"

// ErrRepair is what Done reports for a node that must restart to repair itself from its
// cluster (see RepairFile); `concord serve` restarts it at once.
var ErrRepair = errors.New("this node must repair itself from its cluster: restart it")

// repairReason is why the node in dataDir must be repaired, from RepairFile, if it must.
func repairReason(dataDir string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, RepairFile))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// quarantine moves the named files or directories of dataDir into a new directory of
// QuarantineDir and returns its path.
func quarantine(dataDir string, names ...string) (string, error) {
	dst := filepath.Join(dataDir, QuarantineDir, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", fmt.Errorf("quarantine %v: %w", names, err)
	}
	for _, name := range names {
		err := os.Rename(filepath.Join(dataDir, name), filepath.Join(dst, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("quarantine %s: %w", name, err)
		}
	}
	if err := syncDir(dst); err != nil {
		return "", err
	}
	if err := syncDir(filepath.Join(dataDir, QuarantineDir)); err != nil {
		return "", err
	}
	return dst, syncDir(dataDir)
}

// checkpointFiles are the node's signed checkpoint and its cosignatures, with the spares of
// their reserved space.
var checkpointFiles = []string{transparency.CheckpointFile, transparency.CheckpointFile + ".spare",
	transparency.CosignedFile, transparency.CosignedFile + ".spare"}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// beginRepair sets the node's raft state aside before it opens an empty one, and asks the cluster
// to take it back: it must be out of the configuration before its raft runs with an empty log.
func (s *Server) beginRepair(ctx context.Context, id, reason string) error {
	dataDir := s.cfg.DataDir
	known := cluster.ReadMembers(dataDir)
	// The mark first, durably: a crash before the cluster has taken the node back must not leave
	// an empty raft directory that a restart would bootstrap, or join as if it were new.
	if _, marked := repairReason(dataDir); !marked {
		if err := atomicfile.WriteFile(filepath.Join(dataDir, RepairFile), []byte(reason+"\n")); err != nil {
			return fmt.Errorf("mark the data directory for repair: %w", err)
		}
	}
	dst, err := quarantine(dataDir, "raft")
	if err != nil {
		return err
	}
	s.cfg.Logger.Error("repairing this node from its cluster: its raft state is set aside", "reason", reason, "quarantine", dst)
	s.repairing = reason
	if err := s.resetState(); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	return cluster.Rejoin(rctx, s.port, id, known, s.cfg.Cluster.Join, s.cfg.Logger)
}

// endRepair confirms, once the node caught up, that its log agrees with the other voters', and
// clears the repair mark.
func (s *Server) endRepair(ctx context.Context) error {
	check, err := s.cluster.CheckLog(ctx)
	if err != nil {
		return fmt.Errorf("repair: compare the log with the cluster's: %w", err)
	}
	if check.Forked() || len(check.Agree) == 0 {
		return fmt.Errorf("repair: after catching up, this node's log still does not agree with the cluster's (agree %v, disagree %v, no answer %v)",
			check.Agree, check.Disagree, check.Unknown)
	}
	if err := os.Remove(filepath.Join(s.cfg.DataDir, RepairFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.cfg.Logger.Info("node repaired from its cluster: its log agrees with the other voters'", "reason", s.repairing,
		"log_size", check.Size, "root", fmt.Sprintf("%x", check.Root[:]), "agree", strings.Join(check.Agree, ","))
	return nil
}

// requestRepair marks the data directory for repair and asks `concord serve` to restart the
// node, once: its log forked from the majority's, or a data file failed verification, while it
// ran. Until then the integrity guard keeps it from serving or signing.
func (s *Server) requestRepair(a integrity.Alarm) {
	if s.port == nil || s.repairRequested.Swap(true) {
		return
	}
	reason := a.String()
	if err := atomicfile.WriteFile(filepath.Join(s.cfg.DataDir, RepairFile), []byte(reason+"\n")); err != nil {
		// Without the mark a restart would serve the damaged state until the next comparison:
		// the node stays as it is, serving and signing nothing.
		s.cfg.Logger.Error("cannot mark the data directory for repair: this node stays stopped; free space and restart it", "err", err, "reason", reason)
		return
	}
	s.cfg.Logger.Error("this node will restart to repair itself from its cluster", "reason", reason)
	select {
	case s.errc <- ErrRepair:
	default:
	}
}
