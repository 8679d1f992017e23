package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// subcommand is one verb of a command group ("notice submit").
type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

// runGroup dispatches `concord <group> <verb> ...` to a verb, and answers --help (or no verb)
// with the list of verbs and an example.
func runGroup(ctx context.Context, group, description, example string, verbs []subcommand, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: concord %s <command> [flags]\n\n%s\n\nCommands:\n", group, strings.TrimSpace(description))
		for _, v := range verbs {
			fmt.Fprintf(w, "  %-10s %s\n", v.name, v.summary)
		}
		fmt.Fprintf(w, "\nRun 'concord %s <command> --help' for a command's flags.\n\nExample:\n  %s\n", group,
			strings.ReplaceAll(strings.TrimSpace(example), "\n", "\n  "))
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(helpWriter(os.Stdout))
		if len(args) == 0 {
			return errUsage
		}
		return errHelpShown
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(ctx, args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "concord %s: unknown command %q\n\n", group, args[0])
	usage(os.Stderr)
	return errUsage
}
