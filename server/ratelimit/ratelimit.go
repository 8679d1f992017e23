// Package ratelimit keeps one partner from starving the others. Each partner has two token
// buckets: requests (every call and every message of a client stream counts one) and work (each
// request is charged by what it asks the hub to do: see Cost), and a cap on the streams of each
// kind it may hold open. Limits come from the node's configuration: a default, overridden by
// role, overridden by partner. Work from different partners is then served fairly (see Fair).
package ratelimit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"golang.org/x/time/rate"
)

// Limits bound one partner. A zero field takes the value of the level below it (partner, then
// role, then the node's default, then the built-in default); a negative rate means no limit.
type Limits struct {
	// Requests per second, and the burst: each unary call and each message a client sends on a
	// stream counts one.
	Requests     float64 `yaml:"requests" json:"requests"`
	RequestBurst int     `yaml:"request_burst" json:"request_burst"`
	// Work units per second, and the burst (see Cost): the largest request a partner may send
	// costs at most the burst.
	Work      float64 `yaml:"work" json:"work"`
	WorkBurst int64   `yaml:"work_burst" json:"work_burst"`
	// Streams caps the streams of each method a partner may hold open at once, by method name
	// (WatchNotices, MatchStream, GetEntries, SaveSnapshot).
	Streams map[string]int `yaml:"streams" json:"streams"`
}

// Defaults are the built-in limits: about one core's worth of matching a second per partner,
// bursts that admit the largest batch the API allows (10 000 PDQ hashes), and streams enough for
// several watchers and matchers per partner.
var Defaults = Limits{
	Requests:     200,
	RequestBurst: 400,
	Work:         1_000_000,
	WorkBurst:    2_000_000,
	Streams:      map[string]int{"WatchNotices": 16, "MatchStream": 8, "GetEntries": 8, "SaveSnapshot": 2},
}

// Config is a node's limits: a default, per role (by role name: AUTHORITY, OPERATOR, AUDITOR,
// ADMIN) and per partner id. A partner holding several roles gets, field by field, the most
// generous of its roles' limits.
type Config struct {
	Default  Limits            `yaml:"default" json:"default"`
	Roles    map[string]Limits `yaml:"roles" json:"roles"`
	Partners map[string]Limits `yaml:"partners" json:"partners"`
	// Off disables every limit (tests and benchmarks that measure the node itself).
	Off bool `yaml:"off" json:"off"`
}

// over returns l with o's non-zero fields.
func (l Limits) over(o Limits) Limits {
	if o.Requests != 0 {
		l.Requests = o.Requests
	}
	if o.RequestBurst != 0 {
		l.RequestBurst = o.RequestBurst
	}
	if o.Work != 0 {
		l.Work = o.Work
	}
	if o.WorkBurst != 0 {
		l.WorkBurst = o.WorkBurst
	}
	if len(o.Streams) > 0 {
		s := maps.Clone(l.Streams)
		if s == nil {
			s = map[string]int{}
		}
		maps.Copy(s, o.Streams)
		l.Streams = s
	}
	return l
}

// generous returns, field by field, the more generous of a and b (a negative rate is no limit).
func generous(a, b Limits) Limits {
	more := func(x, y float64) float64 {
		if x < 0 || y < 0 {
			return -1
		}
		return max(x, y)
	}
	out := Limits{Requests: more(a.Requests, b.Requests), RequestBurst: max(a.RequestBurst, b.RequestBurst),
		Work: more(a.Work, b.Work), WorkBurst: max(a.WorkBurst, b.WorkBurst), Streams: maps.Clone(a.Streams)}
	if out.Streams == nil {
		out.Streams = map[string]int{}
	}
	for k, v := range b.Streams {
		out.Streams[k] = max(out.Streams[k], v)
	}
	return out
}

// Check reports a configuration that names an unknown role or stream method, or a burst that
// cannot hold the smallest request.
func (c Config) Check() error {
	check := func(where string, l Limits) error {
		for m := range l.Streams {
			if _, ok := Defaults.Streams[m]; !ok {
				return fmt.Errorf("limits %s: streams: %q is not a streaming method (want one of %s)", where, m, strings.Join(slices.Sorted(maps.Keys(Defaults.Streams)), ", "))
			}
		}
		if l.WorkBurst < 0 || l.RequestBurst < 0 {
			return fmt.Errorf("limits %s: a burst cannot be negative", where)
		}
		if l.WorkBurst > 0 && l.WorkBurst < CostCall {
			return fmt.Errorf("limits %s: work_burst %d is below the cost of a call (%d)", where, l.WorkBurst, CostCall)
		}
		return nil
	}
	if err := check("default", c.Default); err != nil {
		return err
	}
	for r, l := range c.Roles {
		if _, ok := concordv1.Role_value["ROLE_"+r]; !ok || r == "UNSPECIFIED" {
			return fmt.Errorf("limits roles: %q is not a role (want AUTHORITY, OPERATOR, AUDITOR or ADMIN)", r)
		}
		if err := check("role "+r, l); err != nil {
			return err
		}
	}
	for p, l := range c.Partners {
		if err := check("partner "+p, l); err != nil {
			return err
		}
	}
	return nil
}

// Limits returns what binds partner id holding roles.
func (c Config) Limits(id string, roles []concordv1.Role) Limits {
	l := Defaults.over(c.Default)
	var byRole *Limits
	for _, r := range roles {
		rl, ok := c.Roles[strings.TrimPrefix(r.String(), "ROLE_")]
		if !ok {
			continue
		}
		merged := l.over(rl)
		if byRole != nil {
			merged = generous(*byRole, merged)
		}
		byRole = &merged
	}
	if byRole != nil {
		l = *byRole
	}
	if pl, ok := c.Partners[id]; ok {
		l = l.over(pl)
	}
	return l
}

// Limiter holds each partner's buckets and open streams.
type Limiter struct {
	cfg Config

	// OnRefuse, if set before use, is told of each refusal: the partner and the limit ("rate":
	// its request or work rate; "streams": its open streams).
	OnRefuse func(partner, limit string)

	mu       sync.Mutex
	partners map[string]*partner
}

type partner struct {
	roles    []concordv1.Role // the roles the limits were worked out for
	limits   Limits
	requests *rate.Limiter // nil: no limit
	work     *rate.Limiter
	open     map[string]int
}

// New returns a limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return &Limiter{cfg: cfg, partners: map[string]*partner{}}, nil
}

// Caller is who a charge is for: a partner id and its roles.
type Caller struct {
	ID    string
	Roles []concordv1.Role
}

func bucket(perSecond float64, burst int) *rate.Limiter {
	if perSecond < 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
}

// state returns c's buckets, built again if its roles changed. l.mu is held.
func (l *Limiter) state(c Caller) *partner {
	p, ok := l.partners[c.ID]
	if ok && slices.Equal(p.roles, c.Roles) {
		return p
	}
	lim := l.cfg.Limits(c.ID, c.Roles)
	np := &partner{roles: slices.Clone(c.Roles), limits: lim, requests: bucket(lim.Requests, lim.RequestBurst),
		work: bucket(lim.Work, int(lim.WorkBurst)), open: map[string]int{}}
	if ok {
		np.open = p.open // streams open stay counted
	}
	l.partners[c.ID] = np
	return np
}

// MaxStreamWait bounds how long a stream message waits for its partner's buckets: a stream
// that sends faster than its partner's limits is slowed down to them (its sender blocks on flow
// control); one that would wait longer is ended with ResourceExhausted.
const MaxStreamWait = 5 * time.Second

// Charge takes requests request tokens and work work units from c's buckets at once, or refuses
// with ResourceExhausted saying when to retry (a RetryInfo detail). A request that costs more
// than c's work burst can never pass and is refused with InvalidArgument.
func (l *Limiter) Charge(c Caller, requests int, work int64) error {
	delay, err := l.reserve(c, requests, work, 0)
	if err != nil {
		return err
	}
	if delay > 0 {
		return l.exhausted(c, delay)
	}
	return nil
}

// Wait is Charge for a stream message: it waits (up to MaxStreamWait, or until ctx ends) for
// the buckets to hold enough, rather than refusing at once.
func (l *Limiter) Wait(ctx context.Context, c Caller, requests int, work int64) error {
	delay, err := l.reserve(c, requests, work, MaxStreamWait)
	if err != nil {
		return err
	}
	if delay > MaxStreamWait {
		return l.exhausted(c, delay)
	}
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reserve takes the tokens if they are there or will be within wait, and returns how long until
// they are; a delay over wait takes nothing.
func (l *Limiter) reserve(c Caller, requests int, work int64, wait time.Duration) (time.Duration, error) {
	if l == nil || l.cfg.Off {
		return 0, nil
	}
	l.mu.Lock()
	p := l.state(c)
	l.mu.Unlock()
	if p.work != nil && work > int64(p.work.Burst()) {
		return 0, fault.Invalid("this request costs %d work units, more than the %d partner %q may spend at once: split it into smaller batches", work, p.work.Burst(), c.ID)
	}
	now := time.Now()
	var rs []*rate.Reservation
	var delay time.Duration
	for _, take := range []struct {
		b *rate.Limiter
		n int
	}{{p.requests, requests}, {p.work, int(work)}} {
		if take.b == nil || take.n <= 0 {
			continue
		}
		r := take.b.ReserveN(now, take.n)
		if !r.OK() {
			return 0, fault.Invalid("this request needs %d tokens, more than the burst of %d of partner %q", take.n, take.b.Burst(), c.ID)
		}
		rs = append(rs, r)
		delay = max(delay, r.DelayFrom(now))
	}
	if delay > wait {
		for _, r := range rs {
			r.CancelAt(now)
		}
	}
	return delay, nil
}

func (l *Limiter) exhausted(c Caller, delay time.Duration) error {
	if l.OnRefuse != nil {
		l.OnRefuse(c.ID, "rate")
	}
	l.mu.Lock()
	lim := l.state(c).limits
	l.mu.Unlock()
	return fault.ExhaustedFor(max(delay, time.Millisecond),
		"partner %q is over its rate limits (%g requests/s, burst %d; %g work units/s, burst %d): retry in %v or spread the work",
		c.ID, lim.Requests, lim.RequestBurst, lim.Work, lim.WorkBurst, delay.Round(time.Millisecond))
}

// Open counts a new stream of method (its name, e.g. "WatchNotices") for c, or refuses with
// ResourceExhausted when c holds as many as its limit. release ends the count.
func (l *Limiter) Open(c Caller, method string) (release func(), err error) {
	if l == nil || l.cfg.Off {
		return func() {}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.state(c)
	limit, ok := p.limits.Streams[method]
	if ok && limit >= 0 && p.open[method] >= limit {
		if l.OnRefuse != nil {
			l.OnRefuse(c.ID, "streams")
		}
		return nil, fault.ExhaustedFor(time.Second, "partner %q has %d %s streams open, its limit: close one before opening another", c.ID, p.open[method], method)
	}
	p.open[method]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if q := l.partners[c.ID]; q != nil {
				q.open[method]--
			}
		})
	}, nil
}
