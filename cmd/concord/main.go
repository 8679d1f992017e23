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
	// hidden: not listed in the help (the shell completion's helper).
	hidden bool
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
	if helpOutput != nil {
		fs.SetOutput(helpOutput)
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: concord %s\n\n%s\n\nFlags:\n", usage, strings.TrimSpace(description))
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExample:\n  %s\n", strings.ReplaceAll(strings.TrimSpace(example), "\n", "\n  "))
	}
	return fs
}

// parseFlags parses args, flags and arguments in any order, as gh and kubectl take them
// ("--" ends the flags: what follows is arguments even if it starts with a dash); fs.Args() then
// holds the arguments. --help is a clean exit.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return errHelpShown
			}
			return errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	_ = fs.Parse(append([]string{"--"}, pos...)) // cannot fail: no flags to parse
	return nil
}

// parseNoArgs is parseFlags for a command that takes no arguments: a stray one is a usage error
// that names it.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "concord %s: unexpected argument %q: this command takes flags only (see 'concord %s --help')\n", fs.Name(), fs.Arg(0), fs.Name())
		return errUsage
	}
	return nil
}

// helpOutput, when set, receives the help commands print (the shell completion reads it).
var helpOutput io.Writer

// helpWriter is helpOutput if set, else w.
func helpWriter(w io.Writer) io.Writer {
	if helpOutput != nil {
		return helpOutput
	}
	return w
}

var (
	errHelpShown = errors.New("help shown")
	errUsage     = errors.New("usage error")
)

// usageError is a usage error that says what is wrong: exit status 2, with the message.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == errUsage }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Concord shares signed hashes of illegal content between partner authorities and platforms.\n\nUsage: concord <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !commands[n].hidden {
			fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
		}
	}
	fmt.Fprintf(w, "\nRun 'concord <command> --help' for a command's flags and an example. Flags go before or after\n"+
		"arguments; '--' ends them.\n\nExit status: 0 done; 1 the hub refused or failed (the message says why); 2 a usage\n"+
		"error (a bad flag or argument: nothing was sent); 3 match --fail-on-match found a match; 4 witness\n"+
		"saw a split view; 5 cluster list: a member raised an alarm.\n")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
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
		if u := (usageError{}); errors.As(err, &u) {
			fmt.Fprintf(os.Stderr, "concord %s: %v\n", c.name, err)
		}
		return 2
	case errors.Is(err, errMatched):
		return 3
	case errors.Is(err, errSplitView):
		return 4
	case errors.Is(err, errAlarm):
		return 5
	default:
		fmt.Fprintf(os.Stderr, "concord %s: %v\n", c.name, unreachable(err))
		return 1
	}
}
