package cluster

import (
	"context"
	"sync"
	"time"
)

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

func (b *readBatcher) index(ctx context.Context) (uint64, error) {
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
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
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
