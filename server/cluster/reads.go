package cluster

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errNoRound is the error of a read whose bound passed before a round answered it.
var errNoRound = errors.New("no read-index round answered in time")

// readBatcher shares read-index rounds between concurrent reads. A round starts after every read
// that joined it arrived, so its answer is valid for all of them; reads that arrive while a
// round is under way join the next one, which starts when it ends.
type readBatcher struct {
	fetch   func(ctx context.Context) (uint64, error)
	timeout time.Duration

	mu      sync.Mutex
	running bool
	next    *readRound
}

type readRound struct {
	done  chan struct{}
	index uint64
	err   error
}

// index returns the read index of a round that started after the call, or errNoRound once
// bound has passed: a read that arrives while a slow round is under way waits for it and for
// its own, and must not wait twice the leader wait.
func (b *readBatcher) index(ctx context.Context, bound time.Time) (uint64, error) {
	b.mu.Lock()
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	timer := time.NewTimer(time.Until(bound))
	defer timer.Stop()
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-timer.C:
		return 0, errNoRound
	}
}

func (b *readBatcher) loop() {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		r.index, r.err = b.fetch(ctx)
		cancel()
		close(r.done)
	}
}
