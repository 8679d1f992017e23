// Command concord is Concord's single binary: the server (serve, dev), the dev PKI (certs)
// and the client commands. This file only dispatches to subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of the concord binary.
type command struct {
	name    string
	summary string
	// run parses args itself (with newFlags) and does the work.
	run func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("duplicate command " + c.name)
	}
	commands[c.name] = c
}

// newFlags returns a FlagSet whose --help prints usage, a description and an example.
func newFlags(name, usage, description, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: concord %s\n\n%s\n\nFlags:\n", usage, strings.TrimSpace(description))
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExample:\n  %s\n", strings.ReplaceAll(strings.TrimSpace(example), "\n", "\n  "))
	}
	return fs
}

// parseFlags parses args, turning --help into a clean exit.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		return errUsage
	}
	return nil
}

var (
	errHelpShown = errors.New("help shown")
	errUsage     = errors.New("usage error")
)

func usage(w io.Writer) {
	fmt.Fprintf(w, "Concord shares signed hashes of illegal content between partner authorities and platforms.\n\nUsage: concord <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'concord <command> --help' for a command's flags and an example.\n")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "concord: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, args[1:])
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errMatched):
		return 3
	case errors.Is(err, errSplitView):
		return 4
	case errors.Is(err, errAlarm):
		return 5
	default:
		fmt.Fprintf(os.Stderr, "concord %s: %v\n", c.name, err)
		return 1
	}
}
