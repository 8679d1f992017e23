package server

import (
	"strings"
	"time"

	"concord/matchindex"
	"concord/server/action"
	"concord/server/integrity"
	"concord/server/metrics"
	"concord/server/notice"
	"concord/server/transparency"

	"github.com/hashicorp/raft"
)

// metricSources are what a scrape reads from the node (see metrics.NodeCollector).
func (s *Server) metricSources(pub *transparency.Publisher, notices *notice.Service, actions *action.Service) metrics.Sources {
	src := metrics.Sources{
		Raft: s.raftFigures,
		Log: func() metrics.Log {
			size, at := pub.LastSigned()
			return metrics.Log{Entries: s.fsm.Tree().Size(), CheckpointSize: size, CheckpointSigned: at}
		},
		Witnesses: func() map[string]time.Time { return s.witnessFigures(pub) },
		MatchIndex: func() metrics.MatchIndex {
			st := s.index.Current().Stats()
			out := metrics.MatchIndex{Hashes: map[string]int{}, ScanFallbacks: st.ScanFallbacks,
				Families: st.Families, InFamilies: st.InFamilies, Dense: st.Dense, Bytes: st.Bytes}
			for _, k := range []matchindex.Kind{matchindex.SHA256, matchindex.MD5, matchindex.PDQ, matchindex.PDQVideo, matchindex.URLSHA256} {
				out.Hashes[metrics.KindName(int(k))] = st.Hashes[k]
			}
			return out
		},
		Feed: func() metrics.Feed {
			end, by := notices.Watchers()
			f := metrics.Feed{Cursor: end, ByPartner: map[string]metrics.Watchers{}}
			for p, w := range by {
				f.ByPartner[p] = metrics.Watchers{Open: w.Open, MaxLag: w.MaxLag}
			}
			return f
		},
		Compliance: func() metrics.Compliance {
			f, err := actions.Figures(s.cfg.MetricsInterval)
			if err != nil {
				s.cfg.Logger.Warn("metrics: cannot compute the notice and obligation figures", "err", err)
			}
			return metrics.Compliance{Notices: f.Notices, Adoptions: f.Adoptions, Open: f.Open, Overdue: f.Overdue, Took: f.Took}
		},
		Disk: func() (metrics.Disk, error) {
			free, size, reserved, err := s.space.Usage()
			return metrics.Disk{Free: free, Size: size, Reserved: reserved}, err
		},
		Alarms: func() map[string]bool {
			out := map[string]bool{}
			for _, k := range []integrity.Kind{integrity.Halted, integrity.Corrupt, integrity.Forked, integrity.NoSpace} {
				out[k.String()] = s.guard.Raised(k)
			}
			return out
		},
		Ready: func() bool {
			s.healthMu.Lock()
			defer s.healthMu.Unlock()
			select {
			case <-s.stopping:
				return false
			default:
			}
			return s.current && s.guard.Serving() == nil
		},
	}
	if s.port != nil {
		src.LogCheck = func() (metrics.LogCheck, bool) {
			c := s.cluster.LastLogCheck()
			if c == nil {
				return metrics.LogCheck{}, false
			}
			return metrics.LogCheck{At: c.At, Voters: c.Voters, Agree: len(c.Agree), Disagree: len(c.Disagree), Unknown: len(c.Unknown)}, true
		}
	}
	return src
}

// raftFigures reads raft's state.
func (s *Server) raftFigures() metrics.Raft {
	n := s.node
	r := metrics.Raft{
		State: strings.ToLower(n.State().String()), Term: n.Term(), CommitIndex: n.CommitIndex(), AppliedIndex: n.AppliedIndex(),
		LastLogIndex: n.LastIndex(), FSMAppliedIndex: s.fsm.Applied(), LastContact: n.LastContact(),
	}
	_, leader := n.Leader()
	r.HasLeader = leader != ""
	if servers, err := n.Configuration(); err == nil {
		for _, sv := range servers {
			if sv.Suffrage == raft.Voter {
				r.Voters++
			}
		}
	}
	r.LastSnapshotIndex, r.LastSnapshotAt = n.LatestSnapshot()
	return r
}

// witnessFigures is when each registered witness last cosigned: the node's start for one not
// heard from since, so that a witness that stays silent across a restart still ages.
func (s *Server) witnessFigures(pub *transparency.Publisher) map[string]time.Time {
	out := pub.Cosignatures()
	partners, err := s.fsm.State().Partners(nil)
	if err != nil {
		return out
	}
	for _, p := range partners {
		if p.GetWitnessKey() == "" {
			continue
		}
		if _, ok := out[p.GetId()]; !ok {
			out[p.GetId()] = s.started
		}
	}
	return out
}
