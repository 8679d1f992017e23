package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"concord/internal/version"
	"concord/server/fsm"
)

func init() {
	register(command{name: "version", summary: "which Concord this is: release, commit, API and formats", run: runVersion})
}

func runVersion(_ context.Context, args []string) error {
	fs := newFlags("version", "version [--json]", `
Prints this binary's release and the commit it was built from, the Go release that built it, the
API package partners call, the log's leaf format and the newest raft command type it applies.
'concord cluster list' shows what each member of a cluster runs.`, `concord version --json`)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	in := version.Get()
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"release": in.Release, "commit": in.Commit, "commit_time": in.BuiltAt, "go": in.Go, "platform": in.Platform,
			"api": in.API, "log_leaf_format": in.Leaf, "newest_command": uint8(fsm.NewestCommand),
		})
	}
	fmt.Printf("concord %s\ncommit          %s %s\ngo              %s %s\napi             %s\nlog leaf format %d\nnewest command  %d (%v)\n",
		in.Release, in.Commit, in.BuiltAt, in.Go, in.Platform, in.API, in.Leaf, uint8(fsm.NewestCommand), fsm.NewestCommand)
	return nil
}
