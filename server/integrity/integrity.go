// Package integrity holds a node's integrity alarms: the conditions under which it must stop
// answering (its state machine met an entry it cannot apply, a data file failed verification,
// its log forked from the majority's) or stop writing (its disk is full). Every read path, every
// signature and every write asks the Guard first, so that a node never serves or signs a state
// its log does not prove.
package integrity

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"concord/server/fault"
)

// Kind is what went wrong.
type Kind int

const (
	// Halted: the state machine stopped at a committed entry it could not apply (an entry that
	// does not decode, a command this version does not know, a failure that is not a rule's
	// refusal). No later entry is applied.
	Halted Kind = iota + 1
	// Corrupt: a data file failed verification, or the state does not match the root its
	// snapshot records.
	Corrupt
	// Forked: the node's log disagrees with the log a majority of the cluster holds.
	Forked
	// NoSpace: the data directory lacks the space the log needs; reads go on, writes are refused.
	NoSpace
)

func (k Kind) String() string {
	switch k {
	case Halted:
		return "HALTED"
	case Corrupt:
		return "CORRUPT"
	case Forked:
		return "FORKED"
	case NoSpace:
		return "NO_SPACE"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// stopsServing reports whether an alarm of this kind stops every answer, not only writes.
func (k Kind) stopsServing() bool { return k != NoSpace }

// Alarm is one raised condition.
type Alarm struct {
	Kind Kind
	// Index is the raft index the condition was found at (0 when none applies).
	Index uint64
	// Detail says what was found and what to do, for operators and for the refused caller.
	Detail string
	Since  time.Time
}

func (a Alarm) String() string {
	if a.Index > 0 {
		return fmt.Sprintf("%s at raft index %d: %s", a.Kind, a.Index, a.Detail)
	}
	return fmt.Sprintf("%s: %s", a.Kind, a.Detail)
}

// Guard holds the alarms currently raised on a node. Its zero value is not usable: call New.
type Guard struct {
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	alarms  map[Kind]Alarm
	changed chan struct{} // closed and replaced when the set of alarms changes
	// stopped mirrors whether an alarm that stops serving is raised, for Serving's fast path
	// (every message of every stream asks).
	stopped atomic.Bool
}

// New returns a guard with no alarm raised.
func New(logger *slog.Logger) *Guard {
	if logger == nil {
		logger = slog.Default()
	}
	return &Guard{logger: logger, now: time.Now, alarms: map[Kind]Alarm{}, changed: make(chan struct{})}
}

// Raise records an alarm. An alarm of the same kind already raised is kept, with the first
// detail: the first cause is the one to investigate. It reports whether the alarm is new.
func (g *Guard) Raise(a Alarm) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.alarms[a.Kind]; ok {
		return false
	}
	if a.Since.IsZero() {
		a.Since = g.now()
	}
	g.alarms[a.Kind] = a
	g.notifyLocked()
	if a.Kind.stopsServing() {
		g.logger.Error("integrity alarm: this node stops serving and signing", "alarm", a.Kind.String(), "raft_index", a.Index, "detail", a.Detail)
	} else {
		g.logger.Warn("alarm: this node refuses writes", "alarm", a.Kind.String(), "detail", a.Detail)
	}
	return true
}

// Clear lowers the alarm of kind k, if raised, and reports whether it was.
func (g *Guard) Clear(k Kind) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.alarms[k]
	if !ok {
		return false
	}
	delete(g.alarms, k)
	g.notifyLocked()
	g.logger.Info("alarm cleared", "alarm", k.String(), "raised", a.Since.Format(time.RFC3339), "detail", a.Detail)
	return true
}

func (g *Guard) notifyLocked() {
	stopped := false
	for k := range g.alarms {
		stopped = stopped || k.stopsServing()
	}
	g.stopped.Store(stopped)
	close(g.changed)
	g.changed = make(chan struct{})
}

// Alarms returns the raised alarms, the most serious first.
func (g *Guard) Alarms() []Alarm {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Alarm, 0, len(g.alarms))
	for _, a := range g.alarms {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alarm) int { return int(a.Kind) - int(b.Kind) })
	return out
}

// Raised reports whether an alarm of kind k is raised.
func (g *Guard) Raised(k Kind) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.alarms[k]
	return ok
}

// Changed returns a channel closed at the next change of the alarms.
func (g *Guard) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

// Serving returns nil while the node may answer, or an Unavailable error that says why it may
// not: an alarm other than NoSpace is raised.
func (g *Guard) Serving() error {
	if g == nil || !g.stopped.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.errLocked(func(k Kind) bool { return k.stopsServing() })
}

// Writable returns nil while the node may take writes, or the error to refuse them with:
// Unavailable while it does not serve at all, ResourceExhausted while its disk lacks space.
func (g *Guard) Writable() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.errLocked(func(k Kind) bool { return k.stopsServing() }); err != nil {
		return err
	}
	if a, ok := g.alarms[NoSpace]; ok {
		return fault.Exhausted("this node refuses writes: %s; nothing was written, retry once space is freed (reads and matching go on)", a.Detail)
	}
	return nil
}

func (g *Guard) errLocked(match func(Kind) bool) error {
	var parts []string
	for _, k := range []Kind{Halted, Corrupt, Forked} {
		if a, ok := g.alarms[k]; ok && match(k) {
			parts = append(parts, a.String())
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return fault.Unavailable("this node stopped serving to protect the log's integrity (%s); it answers nothing until repaired: call another node of the cluster", strings.Join(parts, "; "))
}
