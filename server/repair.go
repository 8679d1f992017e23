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

// quarantine moves the raft state of dataDir (and, with checkpoint, the node's last signed
// checkpoint) into a new directory of QuarantineDir and returns its path.
func quarantine(dataDir string, checkpoint bool) (string, error) {
	dst := filepath.Join(dataDir, QuarantineDir, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", fmt.Errorf("quarantine the damaged raft state: %w", err)
	}
	moves := []string{"raft"}
	if checkpoint {
		moves = append(moves, transparency.CheckpointFile, transparency.CosignedFile)
	}
	for _, name := range moves {
		err := os.Rename(filepath.Join(dataDir, name), filepath.Join(dst, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("quarantine %s: %w", name, err)
		}
	}
	return dst, syncDir(dataDir)
}

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
	dst, err := quarantine(dataDir, false)
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
		s.cfg.Logger.Error("cannot mark the data directory for repair: restart the node to repair it", "err", err)
	}
	s.cfg.Logger.Error("this node will restart to repair itself from its cluster", "reason", reason)
	select {
	case s.errc <- ErrRepair:
	default:
	}
}
