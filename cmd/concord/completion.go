package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"concord/internal/pki"
)

func init() {
	register(command{name: "completion", summary: "shell completion for bash, zsh or fish", run: runCompletion})
	register(command{name: "__complete", run: runComplete, hidden: true})
}

func runCompletion(ctx context.Context, args []string) error {
	fs := newFlags("completion", "completion bash|zsh|fish", `
Prints a script that completes concord's commands, their flags, partner ids after --as (from the
dev PKI) and file names, for your shell. Load it in your shell's start-up file.`, `
source <(concord completion bash)        # in ~/.bashrc
source <(concord completion zsh)         # in ~/.zshrc, after compinit
concord completion fish | source         # in ~/.config/fish/config.fish`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	script, ok := completionScripts[fs.Arg(0)]
	if !ok {
		return usageErrorf("no completion for the shell %q: bash, zsh or fish", fs.Arg(0))
	}
	_, err := io.WriteString(os.Stdout, script)
	return err
}

// completionScripts ask `concord __complete WORD...` for the candidates of the last word, and
// complete file names when it has none.
var completionScripts = map[string]string{
	"bash": `# concord completion for bash: source <(concord completion bash)
_concord() {
	local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n' out
	out=$(concord __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
	if [ -n "$out" ]; then
		COMPREPLY=($(compgen -W "$out" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -o filenames -F _concord concord
`,
	"zsh": `#compdef concord
# concord completion for zsh: source <(concord completion zsh), after compinit
_concord() {
	local -a out
	out=("${(@f)$(concord __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ -n "${out[1]}" ]]; then
		compadd -a out
	else
		_files
	fi
}
compdef _concord concord
`,
	"fish": `# concord completion for fish: concord completion fish | source
function __concord_candidates
	set -l words (commandline -opc) (commandline -ct)
	concord __complete $words[2..-1] 2>/dev/null
end
function __concord_has_candidates
	test -n "$(__concord_candidates)"
end
complete -c concord -f -n __concord_has_candidates -a '(__concord_candidates)'
complete -c concord -F -n 'not __concord_has_candidates'
`,
}

// runComplete prints the candidates for the last of args (the word being completed, maybe
// empty), one a line: commands, a group's commands, a command's flags, or partner ids after
// --as. Nothing: complete a file name.
func runComplete(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return nil
	}
	cur, before := args[len(args)-1], args[:len(args)-1]
	var out []string
	switch {
	case len(before) > 0 && (before[len(before)-1] == "--as" || before[len(before)-1] == "-as"):
		out = devPartners(before)
	case len(before) == 0:
		for name, c := range commands {
			if !c.hidden {
				out = append(out, name)
			}
		}
	default:
		c, ok := commands[before[0]]
		if !ok {
			return nil
		}
		help := helpOf(ctx, c, before[1:])
		if verbs := helpCommands(help); len(verbs) > 0 && len(before) == 1 {
			out = verbs // a group: its commands
		} else if strings.HasPrefix(cur, "-") {
			out = helpFlags(help)
		}
	}
	slices.Sort(out)
	for _, o := range out {
		if strings.HasPrefix(o, cur) {
			fmt.Println(o)
		}
	}
	return nil
}

// helpOf is what `concord NAME [VERB] --help` prints.
func helpOf(ctx context.Context, c command, rest []string) string {
	var buf bytes.Buffer
	helpOutput = &buf
	defer func() { helpOutput = nil }()
	args := []string{"--help"}
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		args = []string{rest[0], "--help"} // a group's command
	}
	_ = c.run(ctx, args)
	return buf.String()
}

var (
	helpFlagLine    = regexp.MustCompile(`^  -([a-zA-Z0-9][a-zA-Z0-9-]*)`)
	helpCommandLine = regexp.MustCompile(`^  ([a-z][a-z-]*) +\S`)
)

// helpFlags are the flags a command's help lists, as --name.
func helpFlags(help string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		if m := helpFlagLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, "--"+m[1])
		}
	}
	return append(out, "--help")
}

// helpCommands are the commands a group's help lists under "Commands:".
func helpCommands(help string) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "Commands:":
			in = true
		case in && line == "":
			return out
		case in:
			if m := helpCommandLine.FindStringSubmatch(line); m != nil {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// devPartners are the partner ids of the dev PKI the command line names (--pki) or the
// environment does.
func devPartners(words []string) []string {
	dir := envOr("CONCORD_PKI", ".concord/certs")
	for i, w := range words {
		if (w == "--pki" || w == "-pki") && i+1 < len(words) {
			dir = words[i+1]
		} else if v, ok := strings.CutPrefix(w, "--pki="); ok {
			dir = v
		}
	}
	entries, err := os.ReadDir(filepath.Dir(pki.Layout{Dir: dir}.PartnerDir("x")))
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids
}
