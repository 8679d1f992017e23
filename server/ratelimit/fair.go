package ratelimit

import (
	"context"
	"runtime"
	"sync"
)

// Fair shares the node's cores among partners: work (a slice of a match batch) runs holding a
// slot, there are as many slots as cores, and when partners wait, a freed slot goes to the next
// waiting partner in turn, not to the next waiter. A partner with eight streams of large batches
// waits in one queue, so another partner's single lookup waits for at most one slice of work
// per core, not behind the whole flood.
type Fair struct {
	mu    sync.Mutex
	free  int
	queue map[string][]chan struct{} // waiting, by partner, in arrival order
	turn  []string                   // partners with waiters, in the order they are served
	// queued, if set (tests), is told of each waiter as it joins the queue.
	queued func(partner string)
}

// NewFair returns a scheduler with slots slots (0: one per core).
func NewFair(slots int) *Fair {
	if slots <= 0 {
		slots = runtime.GOMAXPROCS(0)
	}
	return &Fair{free: slots, queue: map[string][]chan struct{}{}}
}

// Acquire waits for a slot for partner's work, or for ctx to end. Every successful Acquire must
// be followed by Release.
func (f *Fair) Acquire(ctx context.Context, partner string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	if f.free > 0 && len(f.turn) == 0 {
		f.free--
		f.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if len(f.queue[partner]) == 0 {
		f.turn = append(f.turn, partner)
	}
	f.queue[partner] = append(f.queue[partner], ch)
	queued := f.queued
	f.mu.Unlock()
	if queued != nil {
		queued(partner)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		select {
		case <-ch: // handed a slot meanwhile: pass it on
			f.releaseLocked()
		default:
			f.dropLocked(partner, ch)
		}
		return ctx.Err()
	}
}

// Release frees a slot, handing it to the partner whose turn it is.
func (f *Fair) Release() {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.releaseLocked()
	f.mu.Unlock()
}

func (f *Fair) releaseLocked() {
	if len(f.turn) == 0 {
		f.free++
		return
	}
	p := f.turn[0]
	waiters := f.queue[p]
	ch := waiters[0]
	if len(waiters) == 1 {
		delete(f.queue, p)
		f.turn = f.turn[1:]
	} else {
		f.queue[p] = waiters[1:]
		f.turn = append(f.turn[1:], p) // the partner goes to the back of the turn
	}
	close(ch)
}

func (f *Fair) dropLocked(partner string, ch chan struct{}) {
	waiters := f.queue[partner]
	for i, w := range waiters {
		if w == ch {
			waiters = append(waiters[:i:i], waiters[i+1:]...)
			break
		}
	}
	if len(waiters) > 0 {
		f.queue[partner] = waiters
		return
	}
	delete(f.queue, partner)
	for i, p := range f.turn {
		if p == partner {
			f.turn = append(f.turn[:i:i], f.turn[i+1:]...)
			break
		}
	}
}
