package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	nodev1 "concord/gen/concord/node/v1"
	"concord/server/integrity"
	"concord/translog"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/status"
)

// DefaultLogCheckInterval is how often a node compares its transparency log with every other
// voter's.
const DefaultLogCheckInterval = 5 * time.Second

// logCheckTimeout bounds one peer's answer.
const logCheckTimeout = 2 * time.Second

// LogCheck is the outcome of one round of comparisons with the other voters.
type LogCheck struct {
	At time.Time
	// Size and Root are this node's tree when the round started.
	Size int64
	Root translog.Hash
	// Voters is the number of voters, this node included.
	Voters int
	// Agree, Disagree and Unknown are the other voters' node ids, by their answer: a log
	// consistent with this node's (one is a prefix of the other), one that contradicts it, no
	// answer.
	Agree, Disagree, Unknown []string
	// Evidence says, for each disagreeing voter, what it holds.
	Evidence []string
}

// Forked reports whether the round proves that this node's log is not the majority's: a quorum
// of the voters (two of three, three of five) contradicts it. Fewer (one of two, two of four)
// prove nothing about which side forked: each logs the disagreement, neither stops.
func (c *LogCheck) Forked() bool {
	return len(c.Disagree) >= c.Voters/2+1
}

// CompareLog answers another node's comparison: this node's tree, and the proof that the
// caller's is a prefix of it when it is not longer.
func (n *Node) compareLog(req *nodev1.CompareLogRequest) (*nodev1.CompareLogResponse, error) {
	tree := n.fsm.Tree()
	size := tree.Size()
	resp := &nodev1.CompareLogResponse{Size: uint64(size), NodeId: n.ID()}
	if size > 0 {
		root, err := tree.Root(size)
		if err != nil {
			return nil, err
		}
		resp.Root = root[:]
	}
	if theirs := int64(req.GetSize()); theirs > 0 && theirs < size {
		proof, err := tree.ConsistencyProof(theirs, size)
		if err != nil {
			return nil, err
		}
		resp.ConsistencyProof = translog.HashesToBytes(proof)
	}
	return resp, nil
}

// CheckLog compares this node's log with every other voter's, once. A round that proves this
// node's log forked raises the Forked alarm.
func (n *Node) CheckLog(ctx context.Context) (*LogCheck, error) {
	if n.Standalone() {
		return nil, errors.New("cluster: a node that runs alone has no other log to compare with")
	}
	tree := n.fsm.Tree()
	check := &LogCheck{At: time.Now(), Size: tree.Size()}
	if check.Size > 0 {
		root, err := tree.Root(check.Size)
		if err != nil {
			return nil, err
		}
		check.Root = root
	}
	servers, err := n.raft.Configuration()
	if err != nil {
		return nil, err
	}
	n.recordMembers(servers)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		check.Voters++
		if string(s.ID) == n.ID() {
			continue
		}
		wg.Add(1)
		go func(id, addr string) {
			defer wg.Done()
			verdict, evidence := n.comparePeer(ctx, tree, check, addr)
			mu.Lock()
			defer mu.Unlock()
			switch verdict {
			case agree:
				check.Agree = append(check.Agree, id)
			case disagree:
				check.Disagree = append(check.Disagree, id)
				check.Evidence = append(check.Evidence, fmt.Sprintf("%s: %s", id, evidence))
			default:
				check.Unknown = append(check.Unknown, id)
			}
		}(string(s.ID), string(s.Address))
	}
	wg.Wait()
	sort.Strings(check.Agree)
	sort.Strings(check.Disagree)
	sort.Strings(check.Unknown)
	sort.Strings(check.Evidence)
	n.lastCheck.Store(check)
	switch {
	case check.Forked():
		n.raiseForked(check)
	case len(check.Disagree) > 0:
		n.logger.Error("this node's transparency log disagrees with another voter's; the majority has not decided which one forked yet",
			"size", check.Size, "disagree", strings.Join(check.Disagree, ","), "agree", strings.Join(check.Agree, ","),
			"no_answer", strings.Join(check.Unknown, ","), "evidence", strings.Join(check.Evidence, "; "))
	}
	return check, nil
}

type verdict int

const (
	unknown verdict = iota
	agree
	disagree
)

// comparePeer asks the voter at addr for its tree and compares it with this node's.
func (n *Node) comparePeer(ctx context.Context, tree *translog.Tree, mine *LogCheck, addr string) (verdict, string) {
	c, err := n.peers.client(addr)
	if err != nil {
		return unknown, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, logCheckTimeout)
	defer cancel()
	resp, err := c.CompareLog(ctx, &nodev1.CompareLogRequest{Size: uint64(mine.Size), Root: mine.Root[:]})
	if err != nil {
		return unknown, status.Convert(err).Message()
	}
	theirSize := int64(resp.GetSize())
	var theirRoot translog.Hash
	if theirSize > 0 {
		if len(resp.GetRoot()) != len(theirRoot) {
			return disagree, fmt.Sprintf("a root of %d bytes", len(resp.GetRoot()))
		}
		copy(theirRoot[:], resp.GetRoot())
	}
	switch {
	case theirSize == 0 || mine.Size == 0:
		return agree, ""
	case theirSize >= mine.Size:
		if theirSize == mine.Size {
			if theirRoot != mine.Root {
				return disagree, fmt.Sprintf("root %x at size %d, this node's is %x", theirRoot[:8], theirSize, mine.Root[:8])
			}
			return agree, ""
		}
		proof, err := translog.HashesFromBytes(resp.GetConsistencyProof())
		if err == nil {
			err = translog.CheckConsistency(proof, mine.Size, mine.Root, theirSize, theirRoot)
		}
		if err != nil {
			return disagree, fmt.Sprintf("size %d, root %x: not an extension of this node's %d entries (%v)", theirSize, theirRoot[:8], mine.Size, err)
		}
		return agree, ""
	default:
		ours, err := tree.Root(theirSize)
		if err != nil {
			return unknown, err.Error()
		}
		if ours != theirRoot {
			return disagree, fmt.Sprintf("root %x at size %d, this node's first %d entries give %x", theirRoot[:8], theirSize, theirSize, ours[:8])
		}
		return agree, ""
	}
}

// raiseForked raises the Forked alarm: this node stops serving and signing.
func (n *Node) raiseForked(c *LogCheck) {
	if n.integrity == nil {
		return
	}
	n.integrity.Raise(integrity.Alarm{Kind: integrity.Forked, Detail: fmt.Sprintf(
		"its transparency log of %d entries (root %x) is contradicted by %d of the %d voters (%s); the node repairs itself from the others (README: when a node's data is damaged)",
		c.Size, c.Root[:8], len(c.Disagree), c.Voters, strings.Join(c.Evidence, "; "))})
}

// LastLogCheck is the latest round of CheckLog, or nil before the first.
func (n *Node) LastLogCheck() *LogCheck { return n.lastCheck.Load() }

// RunLogChecks compares this node's log with the other voters' every interval, until stop
// closes.
func (n *Node) RunLogChecks(interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval+logCheckTimeout)
		if _, err := n.CheckLog(ctx); err != nil {
			n.logger.Warn("cannot compare the transparency log with the other voters", "err", err)
		}
		cancel()
	}
}
