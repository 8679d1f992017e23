package metrics

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources are what the node collector reads at scrape time. Each is optional: a nil source's
// series are left out (a node that runs alone has no log check, say).
type Sources struct {
	Raft       func() Raft
	Log        func() Log
	LogCheck   func() (LogCheck, bool) // false: no round yet
	Witnesses  func() map[string]time.Time
	MatchIndex func() MatchIndex
	Feed       func() Feed
	Compliance func() Compliance
	Disk       func() (Disk, error)
	Alarms     func() map[string]bool // every alarm kind → raised
	Ready      func() bool
}

// MatchIndex is what the match index holds and how it searched.
type MatchIndex struct {
	Hashes map[string]int // hash kind → live hashes
	// ScanFallbacks counts the PDQ searches answered by a scan because their buckets were
	// crowded (near-duplicates), since the index was built.
	ScanFallbacks uint64
	// Families counts the families of near-duplicates the index holds apart from its slots,
	// InFamilies the hashes and frames in them; Bytes is the memory of its arrays.
	Families, InFamilies int
	// Dense counts the hashes and frames set apart from the slots of their table, in a table
	// of their own, because they would have crowded its buckets.
	Dense int
	Bytes int64
}

// Raft is the node's raft state.
type Raft struct {
	State                           string // "leader", "follower", "candidate", "shutdown"
	Term, CommitIndex, AppliedIndex uint64
	LastLogIndex, FSMAppliedIndex   uint64
	LastContact                     time.Time // zero on the leader, or never
	HasLeader                       bool
	Voters                          int
	LastSnapshotIndex               uint64
	LastSnapshotAt                  time.Time // zero: none
}

// Log is the transparency log's size and its latest signed checkpoint.
type Log struct {
	Entries          int64
	CheckpointSize   int64
	CheckpointSigned time.Time // zero: none signed yet
}

// LogCheck is the latest cross-node comparison of the transparency log.
type LogCheck struct {
	At                       time.Time
	Voters                   int
	Agree, Disagree, Unknown int
}

// Feed is the node's live notice feed: its end and its watchers.
type Feed struct {
	Cursor uint64
	// ByPartner is, per partner, how many watchers are open and the largest lag (events
	// written to the feed that the partner's slowest watcher has not read yet).
	ByPartner map[string]Watchers
}

// Watchers are one partner's open feed streams.
type Watchers struct {
	Open   int
	MaxLag uint64
}

// Compliance are the notices and the platforms' removal obligations, as of the scrape.
type Compliance struct {
	// Notices counts notices by state (ACTIVE, WITHDRAWN, SUPERSEDED) and issuing jurisdiction.
	Notices map[[2]string]int
	// Adoptions counts, per jurisdiction, the notices in each adoption status there (ISSUING,
	// RECOGNISED, ENDORSED, PENDING, OBJECTED).
	Adoptions map[[2]string]int // {jurisdiction, status}
	// Open and Overdue count obligations not yet answered, by {platform, jurisdiction}: open
	// ones before their deadline, overdue ones past it.
	Open, Overdue map[[2]string]int
	// Took is how long their last computation took.
	Took time.Duration
}

// Disk is the data directory's filesystem.
type Disk struct {
	Free, Size, Reserved uint64
}

// NodeCollector reads the node's figures at scrape time.
type NodeCollector struct {
	src Sources
}

// NewNodeCollector returns the collector of src.
func NewNodeCollector(src Sources) *NodeCollector { return &NodeCollector{src: src} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

var (
	descRaftState        = desc("raft_state", "1 for the raft state the node is in, 0 for the others.", "state")
	descRaftTerm         = desc("raft_term", "The node's current raft term.")
	descRaftCommit       = desc("raft_commit_index", "The highest raft index the node knows committed.")
	descRaftApplied      = desc("raft_applied_index", "The highest raft index raft handed to the state machine.")
	descRaftLastLog      = desc("raft_last_log_index", "The last raft index in the node's log.")
	descFSMApplied       = desc("fsm_applied_index", "The raft index of the last entry the state machine applied.")
	descRaftLastContact  = desc("raft_last_contact_seconds", "Seconds since a follower last heard from its leader (0 on the leader).")
	descRaftHasLeader    = desc("raft_has_leader", "1 if the node knows a raft leader (itself included), 0 if not.")
	descRaftVoters       = desc("raft_voters", "Voters in the raft configuration, this node included.")
	descRaftSnapIndex    = desc("raft_last_snapshot_index", "The raft index of the node's latest snapshot.")
	descRaftSnapTime     = desc("raft_last_snapshot_timestamp_seconds", "When the node's latest snapshot was taken (Unix time; absent without one).")
	descLogEntries       = desc("log_entries", "Entries in the transparency log.")
	descCheckpointSize   = desc("log_checkpoint_entries", "Entries covered by the latest checkpoint this node signed.")
	descCheckpointTime   = desc("log_checkpoint_timestamp_seconds", "When this node signed its latest checkpoint (Unix time; absent before the first).")
	descWitnessCosig     = desc("witness_cosignature_timestamp_seconds", "When each witness last cosigned a checkpoint of this node (Unix time; the node's start for a registered witness not heard from since).", "witness")
	descLogCheckTime     = desc("log_check_timestamp_seconds", "When the node last compared its transparency log with the other voters' (Unix time).")
	descLogCheckVoters   = desc("log_check_voters", "The other voters in the latest log comparison, by verdict (agree, disagree, unknown: no answer).", "verdict")
	descIndexHashes      = desc("match_index_hashes", "Live hashes in the match index, by kind (PDQ_VIDEO counts videos).", "kind")
	descIndexScans       = desc("match_scan_fallbacks_total", "PDQ and vPDQ frame searches the match index answered by a scan because the query's buckets were crowded (near-duplicates), since it was built at the node's start.")
	descIndexFamilies    = desc("match_families", "Families of near-duplicate PDQ hashes and video frames the match index holds apart, each searched through one pivot (see matchindex/BENCHMARKS.md).")
	descIndexInFamilies  = desc("match_family_hashes", "PDQ hashes and video frames held in families of near-duplicates, removed ones included until a merge.")
	descIndexDense       = desc("match_dense_hashes", "PDQ hashes and video frames the match index set apart in tables of their own because they would have crowded its buckets (look-alike pictures; see matchindex/BENCHMARKS.md); a hash set apart from a table set apart itself counts at each level.")
	descIndexBytes       = desc("match_index_bytes", "Memory of the match index's arrays (not Go's allocator overhead).")
	descFeedCursor       = desc("feed_cursor", "The cursor of the last event of the notice feed.")
	descFeedWatchers     = desc("feed_watchers", "Open notice feed streams (WatchNotices), by partner.", "partner")
	descFeedLag          = desc("feed_watcher_lag_events", "Events the partner's slowest open feed stream has yet to read.", "partner")
	descNotices          = desc("notices", "Notices by state and issuing jurisdiction.", "state", "jurisdiction")
	descAdoptions        = desc("notice_adoptions", "Notices by adoption status in each jurisdiction.", "jurisdiction", "status")
	descObligationsOpen  = desc("obligations_open", "Removal obligations a platform has not answered yet and whose deadline has not passed, by platform and jurisdiction.", "platform", "jurisdiction")
	descObligationsLate  = desc("obligations_overdue", "Removal obligations a platform left unanswered past their deadline, by platform and jurisdiction.", "platform", "jurisdiction")
	descDiskFree         = desc("datadir_free_bytes", "Bytes available to the node in its data directory's filesystem.")
	descDiskSize         = desc("datadir_size_bytes", "Size of the data directory's filesystem.")
	descDiskReserved     = desc("datadir_reserved_bytes", "Bytes the node keeps free: below this it refuses writes (the NO_SPACE alarm).")
	descAlarm            = desc("integrity_alarm", "1 while the integrity alarm is raised (HALTED, CORRUPT, FORKED, NO_SPACE), else 0.", "alarm")
	descReady            = desc("node_ready", "1 while the node serves (its state is current and no alarm stops it), else 0.")
	descScrapeCompliance = desc("compliance_compute_duration_seconds", "Time the latest computation of the notice and obligation figures took (a scrape reuses them until the state changes or a deadline passes).")
)

// Describe sends every descriptor the collector may send.
func (c *NodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftTerm, descRaftCommit, descRaftApplied, descRaftLastLog, descFSMApplied,
		descRaftLastContact, descRaftHasLeader, descRaftVoters, descRaftSnapIndex, descRaftSnapTime, descLogEntries, descCheckpointSize,
		descCheckpointTime, descWitnessCosig, descLogCheckTime, descLogCheckVoters, descIndexHashes, descIndexScans, descIndexFamilies, descIndexInFamilies, descIndexDense, descIndexBytes, descFeedCursor, descFeedWatchers,
		descFeedLag, descNotices, descAdoptions, descObligationsOpen, descObligationsLate, descDiskFree, descDiskSize, descDiskReserved,
		descAlarm, descReady, descScrapeCompliance} {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect reads every source once.
func (c *NodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src
	if s.Raft != nil {
		r := s.Raft()
		for _, st := range []string{"leader", "follower", "candidate", "shutdown"} {
			gauge(ch, descRaftState, b2f(r.State == st), st)
		}
		gauge(ch, descRaftTerm, float64(r.Term))
		gauge(ch, descRaftCommit, float64(r.CommitIndex))
		gauge(ch, descRaftApplied, float64(r.AppliedIndex))
		gauge(ch, descRaftLastLog, float64(r.LastLogIndex))
		gauge(ch, descFSMApplied, float64(r.FSMAppliedIndex))
		contact := 0.0
		if r.State != "leader" && !r.LastContact.IsZero() {
			contact = time.Since(r.LastContact).Seconds()
		}
		gauge(ch, descRaftLastContact, contact)
		gauge(ch, descRaftHasLeader, b2f(r.HasLeader))
		gauge(ch, descRaftVoters, float64(r.Voters))
		gauge(ch, descRaftSnapIndex, float64(r.LastSnapshotIndex))
		if !r.LastSnapshotAt.IsZero() {
			gauge(ch, descRaftSnapTime, unix(r.LastSnapshotAt))
		}
	}
	if s.Log != nil {
		l := s.Log()
		gauge(ch, descLogEntries, float64(l.Entries))
		gauge(ch, descCheckpointSize, float64(l.CheckpointSize))
		if !l.CheckpointSigned.IsZero() {
			gauge(ch, descCheckpointTime, unix(l.CheckpointSigned))
		}
	}
	if s.Witnesses != nil {
		for w, at := range s.Witnesses() {
			gauge(ch, descWitnessCosig, unix(at), w)
		}
	}
	if s.LogCheck != nil {
		if lc, ok := s.LogCheck(); ok {
			gauge(ch, descLogCheckTime, unix(lc.At))
			gauge(ch, descLogCheckVoters, float64(lc.Agree), "agree")
			gauge(ch, descLogCheckVoters, float64(lc.Disagree), "disagree")
			gauge(ch, descLogCheckVoters, float64(lc.Unknown), "unknown")
		}
	}
	if s.MatchIndex != nil {
		mi := s.MatchIndex()
		for kind, n := range mi.Hashes {
			gauge(ch, descIndexHashes, float64(n), kind)
		}
		ch <- prometheus.MustNewConstMetric(descIndexScans, prometheus.CounterValue, float64(mi.ScanFallbacks))
		gauge(ch, descIndexFamilies, float64(mi.Families))
		gauge(ch, descIndexInFamilies, float64(mi.InFamilies))
		gauge(ch, descIndexDense, float64(mi.Dense))
		gauge(ch, descIndexBytes, float64(mi.Bytes))
	}
	if s.Feed != nil {
		f := s.Feed()
		gauge(ch, descFeedCursor, float64(f.Cursor))
		for p, w := range f.ByPartner {
			gauge(ch, descFeedWatchers, float64(w.Open), p)
			gauge(ch, descFeedLag, float64(w.MaxLag), p)
		}
	}
	if s.Compliance != nil {
		cs := s.Compliance()
		gauge(ch, descScrapeCompliance, cs.Took.Seconds())
		for k, n := range cs.Notices {
			gauge(ch, descNotices, float64(n), k[0], k[1])
		}
		for k, n := range cs.Adoptions {
			gauge(ch, descAdoptions, float64(n), k[0], k[1])
		}
		// Every {platform, jurisdiction} with an obligation appears in both series, 0 where
		// none is in that state, so that a query on one finds the pair after it drops to 0.
		pairs := map[[2]string]bool{}
		for k := range cs.Open {
			pairs[k] = true
		}
		for k := range cs.Overdue {
			pairs[k] = true
		}
		keys := make([][2]string, 0, len(pairs))
		for k := range pairs {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"\x00"+keys[i][1] < keys[j][0]+"\x00"+keys[j][1] })
		for _, k := range keys {
			gauge(ch, descObligationsOpen, float64(cs.Open[k]), k[0], k[1])
			gauge(ch, descObligationsLate, float64(cs.Overdue[k]), k[0], k[1])
		}
	}
	if s.Disk != nil {
		if d, err := s.Disk(); err == nil {
			gauge(ch, descDiskFree, float64(d.Free))
			gauge(ch, descDiskSize, float64(d.Size))
			gauge(ch, descDiskReserved, float64(d.Reserved))
		} else {
			ch <- prometheus.NewInvalidMetric(descDiskFree, err)
		}
	}
	if s.Alarms != nil {
		for kind, raised := range s.Alarms() {
			gauge(ch, descAlarm, b2f(raised), kind)
		}
	}
	if s.Ready != nil {
		gauge(ch, descReady, b2f(s.Ready()))
	}
}
