package server

import (
	"runtime/debug"
	"sync"
)

// startGCPercent is the collector's target (GOGC) while a node starts. A start builds the
// node's largest structures at once (the state from a snapshot, the match index of every
// notice in force) and drops their temporary buffers as it goes; at Go's default of 100 the heap
// may reach twice what was live at the last collection before the collector runs again. Side by
// side at 10 M hashes, 25 brought the start's resident peak from 1.66× to 1.46× the steady state
// on mildly skewed hashes and from 1.42× to 1.29× on uniform ones, with no slower a start
// (matchindex/BENCHMARKS.md).
const startGCPercent = 25

// startGC counts the nodes starting in this process (tests start several): the first lowers the
// target, the last puts back the one it found.
var startGC struct {
	sync.Mutex
	starting int
	prev     int
}

// collectOftenWhileStarting lowers the collector's target to startGCPercent until the returned
// function is called. A target the operator set lower, or GOGC=off (a memory limit alone), is
// left as it is.
func collectOftenWhileStarting() (restore func()) {
	startGC.Lock()
	defer startGC.Unlock()
	if startGC.starting == 0 {
		startGC.prev = debug.SetGCPercent(startGCPercent)
		if startGC.prev < startGCPercent {
			debug.SetGCPercent(startGC.prev)
		}
	}
	startGC.starting++
	var once sync.Once
	return func() {
		once.Do(func() {
			startGC.Lock()
			defer startGC.Unlock()
			if startGC.starting--; startGC.starting == 0 {
				debug.SetGCPercent(startGC.prev)
			}
		})
	}
}
