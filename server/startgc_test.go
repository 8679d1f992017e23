package server

import (
	"runtime/debug"
	"testing"
)

// gcPercent is the collector's current target.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestCollectOftenWhileStarting(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	// Two nodes start in one process, their starts overlapping: the target stays low until the
	// last is up, then returns to the operator's.
	debug.SetGCPercent(150)
	first := collectOftenWhileStarting()
	if got := gcPercent(); got != startGCPercent {
		t.Fatalf("while starting: GOGC %d, want %d", got, startGCPercent)
	}
	second := collectOftenWhileStarting()
	first()
	first() // twice is once
	if got := gcPercent(); got != startGCPercent {
		t.Fatalf("one node still starting: GOGC %d, want %d", got, startGCPercent)
	}
	second()
	if got := gcPercent(); got != 150 {
		t.Fatalf("every node started: GOGC %d, want the 150 it was", got)
	}
	// A lower target, or none, is the operator's choice and stays.
	for _, set := range []int{10, -1} {
		debug.SetGCPercent(set)
		restore := collectOftenWhileStarting()
		if got := gcPercent(); got != set {
			t.Fatalf("GOGC %d while starting, want the operator's %d", got, set)
		}
		restore()
		if got := gcPercent(); got != set {
			t.Fatalf("GOGC %d after starting, want the operator's %d", got, set)
		}
	}
}
