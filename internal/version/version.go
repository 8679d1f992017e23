// Package version says which Concord a binary is: its release, the commit it was built from,
// and the formats it speaks (the API package, the log's leaf format). Nodes report it to each
// other, so a rolling upgrade can be watched member by member.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Release is stamped at build time (make build: -ldflags "-X concord/internal/version.Release=…",
// from git describe); a plain go build or go run leaves it empty and the module's build
// information speaks instead.
var Release = ""

// API is the protobuf package partners call.
const API = "concord.v1"

// LeafFormat is the version of the transparency log's leaf encoding (a LogEntry, deterministic
// protobuf): a new version may only be introduced by a command that says so in the log.
const LeafFormat = 1

// Info is what a binary knows of itself.
type Info struct {
	Release  string // e.g. v0.4.0-12-gabcdef0, or "(devel)"
	Commit   string // the VCS revision, with "+dirty" when built from modified files
	BuiltAt  string // the commit's time (RFC 3339)
	Go       string
	API      string
	Leaf     int
	Platform string
}

// Get returns this binary's Info.
func Get() Info {
	in := Info{Release: Release, Go: runtime.Version(), API: API, Leaf: LeafFormat, Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if in.Release == "" {
			in.Release = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.BuiltAt = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && in.Commit != "" {
			in.Commit += "+dirty"
		}
	}
	if in.Release == "" {
		in.Release = "(devel)"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

// Short is "release (commit)", as members report it.
func (in Info) Short() string {
	commit := in.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	return fmt.Sprintf("%s (%s)", in.Release, commit)
}
