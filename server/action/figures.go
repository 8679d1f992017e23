package action

import (
	"strings"
	"sync"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/state"
)

// Figures are the notices and the platforms' obligations as monitoring counts them.
type Figures struct {
	// Notices counts notices by {state, issuing jurisdiction}.
	Notices map[[2]string]int
	// Adoptions counts notices by {jurisdiction, adoption status there}.
	Adoptions map[[2]string]int
	// Open and Overdue count the obligations in force that a platform has not answered, by
	// {platform, jurisdiction}: before their deadline, and past it. Every pair with an
	// obligation in force is in both maps, 0 where none is in that state.
	Open, Overdue map[[2]string]int
	// Took is how long their last computation took (they may come from the cache).
	Took time.Duration
}

// figuresCache keeps the last figures until the state changes or the next deadline passes, and
// computes them at most once per interval: a scrape of a large hub reads every notice.
type figuresCache struct {
	mu       sync.Mutex
	st       *state.Store
	change   uint64
	at, next time.Time
	figures  Figures
}

// Figures returns the current figures, computed again only when the state changed or a
// deadline passed since the last computation, and not more than once per minInterval.
func (s *Service) Figures(minInterval time.Duration) (Figures, error) {
	c := &s.figures
	c.mu.Lock()
	defer c.mu.Unlock()
	st, now := s.state(), s.now()
	fresh := c.st == st && c.change == st.LastChange() && (c.next.IsZero() || now.Before(c.next))
	if c.st != nil && (fresh || time.Since(c.at) < minInterval) {
		return c.figures, nil
	}
	change := st.LastChange()
	start := time.Now()
	f, next, err := s.computeFigures(st, now)
	if err != nil {
		return Figures{}, err
	}
	f.Took = time.Since(start)
	c.st, c.change, c.at, c.next, c.figures = st, change, time.Now(), next, f
	return f, nil
}

// computeFigures walks every notice once. An obligation in force is the running one of
// GetCompliance's items (see noticeItems): answered by any report of the platform that answers
// it there, overdue once its deadline has passed unanswered. It reads the notice's current
// jurisdiction states and its reports, not its events: a scrape of a large hub stays cheap. next
// is the earliest deadline still to pass, when an open obligation becomes overdue (zero: none).
func (s *Service) computeFigures(st *state.Store, now time.Time) (Figures, time.Time, error) {
	f := Figures{Notices: map[[2]string]int{}, Adoptions: map[[2]string]int{}, Open: map[[2]string]int{}, Overdue: map[[2]string]int{}}
	var next time.Time
	partners, err := st.Partners(nil)
	if err != nil {
		return f, next, err
	}
	var visitErr error
	err = st.Notices(func(rec *concordv1.NoticeRecord) bool {
		f.Notices[[2]string{strings.TrimPrefix(rec.GetState().String(), "NOTICE_STATE_"), rec.GetNotice().GetJurisdiction()}]++
		var inForce []*concordv1.JurisdictionState
		for _, js := range rec.GetJurisdictions() {
			if js.GetStatus() != concordv1.AdoptionStatus_ADOPTION_STATUS_NOT_COVERED {
				f.Adoptions[[2]string{js.GetJurisdiction(), adoptionName(js.GetStatus())}]++
			}
			if js.GetActionable() && rec.GetState() == concordv1.NoticeState_NOTICE_STATE_ACTIVE {
				inForce = append(inForce, js)
			}
		}
		if len(inForce) == 0 {
			return true
		}
		actions, err := st.ActionsOfNotice(rec.GetNotice().GetNoticeId())
		if err != nil {
			visitErr = err
			return false
		}
		for _, p := range platformsSeeing(partners, rec) {
			for _, js := range inForce {
				key := [2]string{p, js.GetJurisdiction()}
				f.Open[key] += 0
				f.Overdue[key] += 0
				if answered(actions, p, js.GetJurisdiction()) {
					continue
				}
				d := js.GetActionDeadline()
				if d != nil && now.After(d.AsTime()) {
					f.Overdue[key]++
					continue
				}
				f.Open[key]++
				if d != nil && (next.IsZero() || d.AsTime().Before(next)) {
					next = d.AsTime()
				}
			}
		}
		return true
	})
	if err == nil {
		err = visitErr
	}
	return f, next, err
}

// answered reports whether platform filed a report among actions that answers its obligation in
// jurisdiction j.
func answered(actions []*concordv1.ActionRecord, platform, j string) bool {
	for _, a := range actions {
		if r := a.GetReport(); r.GetReporter() == platform && answers(r, j) {
			return true
		}
	}
	return false
}

func adoptionName(s concordv1.AdoptionStatus) string {
	return strings.TrimPrefix(s.String(), "ADOPTION_STATUS_")
}
