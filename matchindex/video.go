package matchindex

import (
	"cmp"
	"slices"
)

// Video matching follows vPDQ (github.com/facebook/ThreatExchange, vpdq/README.md): a video
// hash is a list of frame PDQ hashes; frames match when within VideoFrameRadius; a stored
// video matches a query video when at least VideoMatchPercent % of the query's unique frames
// match some frame of the stored video. Both percentages are reported, so a caller wanting
// vPDQ's symmetric rule (both sides ≥ 80 %) applies it to StoredPercent too.
//
// Frames are indexed in their own PDQ table, apart from image PDQs, so an image query never
// returns a frame and a video query never returns an image. Repeated frames of a video are
// stored once (vPDQ dedupes by exact hash on both sides), so a stored video's frame count
// is its unique frames.
//
// vPDQ also drops frames of quality below 50 on both sides before matching. The index does
// not see qualities: the caller drops low-quality frames from a notice's video hash before
// Add, and from a query before MatchVideo.

// videoAcc tallies one stored video's matches against the query.
type videoAcc struct {
	handle    uint32
	pos       int
	lastQuery int                 // last query frame counted, so each counts once
	queryHits int                 // unique query frames matching some frame of the video
	stored    map[uint32]struct{} // the video's frames matching some query frame
}

// MatchVideo matches a query video (the concatenation of its 32-byte frame PDQ hashes, frames
// of quality < 50 already removed) against the stored PDQ_VIDEO hashes by vPDQ's rule and
// returns the stored videos that match, best query percentage first.
func (v View) MatchVideo(frames []byte) ([]VideoHit, error) {
	if err := checkValue(PDQVideo, frames); err != nil {
		return nil, err
	}
	query := uniqueFrames(frames)
	var hits []VideoHit
	mb := matchBuf.Get().(*[]pdqMatch)
	for _, s := range v.v.segs {
		if s.frames.len() == 0 {
			continue
		}
		videos := map[uint32]*videoAcc{}
		for qi := range query {
			ms := s.frames.search(&query[qi], VideoFrameRadius, (*mb)[:0])
			for _, m := range ms {
				e := s.videoOf(m.id)
				a := videos[e]
				if a == nil {
					h, pos := s.cols[PDQVideo].owner(e)
					a = &videoAcc{handle: h, pos: pos, lastQuery: -1, stored: map[uint32]struct{}{}}
					videos[e] = a
				}
				if v.v.dead.has(a.handle) {
					continue
				}
				if a.lastQuery != qi {
					a.lastQuery = qi
					a.queryHits++
				}
				a.stored[m.id] = struct{}{}
			}
			*mb = ms
		}
		for e, a := range videos {
			if a.queryHits == 0 || a.queryHits*100 < VideoMatchPercent*len(query) {
				continue // integer test: exactly 80 % matches, 79.9 % does not
			}
			stored := int(s.frameStart[e+1] - s.frameStart[e])
			hits = append(hits, VideoHit{
				NoticeID:      v.v.names[a.handle],
				Position:      a.pos,
				QueryFrames:   len(query),
				QueryMatched:  a.queryHits,
				StoredFrames:  stored,
				StoredMatched: len(a.stored),
				QueryPercent:  100 * float64(a.queryHits) / float64(len(query)),
				StoredPercent: 100 * float64(len(a.stored)) / float64(stored),
			})
		}
	}
	matchBuf.Put(mb)
	slices.SortFunc(hits, func(a, b VideoHit) int {
		if c := cmp.Compare(b.QueryPercent, a.QueryPercent); c != 0 {
			return c
		}
		if c := cmp.Compare(a.NoticeID, b.NoticeID); c != 0 {
			return c
		}
		return cmp.Compare(a.Position, b.Position)
	})
	return hits, nil
}

// uniqueFrames decodes a video hash's frames, dropping repeats (first occurrence kept).
func uniqueFrames(v []byte) [][4]uint64 {
	seen := make(map[[4]uint64]struct{}, len(v)/PDQSize)
	out := make([][4]uint64, 0, len(v)/PDQSize)
	for i := 0; i < len(v); i += PDQSize {
		f := pdqWords(v[i:])
		if _, dup := seen[f]; !dup {
			seen[f] = struct{}{}
			out = append(out, f)
		}
	}
	return out
}
