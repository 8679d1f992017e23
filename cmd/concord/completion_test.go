package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// shell finds bash, zsh or fish on PATH: `make test` installs them (Debian's zsh and fish,
// 'make debian-tools'), so a missing one fails the test.
func shell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: run 'make debian-tools' (the test command installs Debian's zsh and fish)", name)
	}
	return p
}

// TestShellCompletion loads each shell's completion script into that shell, as a user's
// start-up file would, and asks it to complete command lines: commands, a group's commands,
// flags, partner ids after --as, and file names where concord has nothing to offer.
func TestShellCompletion(t *testing.T) {
	pkiDir := filepath.Join(t.TempDir(), "certs")
	runConcord(t, "certs", "init", "--dir", pkiDir)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "photo.jpg"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The scripts call `concord`: put the test binary first on PATH.
	path := filepath.Dir(concordBinary) + string(os.PathListSeparator) + os.Getenv("PATH")
	cases := []struct {
		line []string // the words typed, the last being completed
		want []string
	}{
		{[]string{"no"}, []string{"notice"}},
		{[]string{"notice", "su"}, []string{"submit"}},
		{[]string{"cluster", ""}, []string{"join", "list", "recover", "remove"}},
		{[]string{"notice", "submit", "--ba"}, []string{"--basis"}},
		{[]string{"match", "--dih"}, []string{"--dihedral"}},
		{[]string{"notice", "list", "--pki", pkiDir, "--as", "fr"}, []string{"fr-pharos"}},
		{[]string{"match", "pho"}, []string{"photo.jpg"}},
	}
	scripts := map[string]func(line []string) string{
		"bash": func(line []string) string {
			return "source <(concord completion bash)\nCOMP_WORDS=(concord " + quoteWords(line) + ")\nCOMP_CWORD=" +
				strconv.Itoa(len(line)) + "\n_concord\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		},
		// zsh completes only inside its line editor: compadd and _files are stood in for by
		// functions that print what they are given, and the completion function is called
		// with words and CURRENT set as the editor would set them.
		"zsh": func(line []string) string {
			return "compdef() {}\ncompadd() { shift; print -l -- ${(P)1} }\n_files() { print -l -- *(N) }\n" +
				"source <(concord completion zsh)\nwords=(concord " + quoteWords(line) + ")\nCURRENT=" + strconv.Itoa(len(line)+1) +
				"\n_concord | grep -- '^" + line[len(line)-1] + "'\n"
		},
		"fish": func(line []string) string {
			return "concord completion fish | source\ncomplete -C " + quoteWords([]string{"concord " + strings.Join(line, " ")}) + "\n"
		},
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			bin := shell(t, sh)
			for _, tc := range cases {
				cmd := exec.Command(bin, "-c", scripts[sh](tc.line))
				cmd.Dir = work
				cmd.Env = append(os.Environ(), "PATH="+path)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%q: %v\n%s", tc.line, err, out)
				}
				var got []string
				for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					if l = strings.TrimSpace(strings.SplitN(l, "\t", 2)[0]); l != "" {
						got = append(got, l)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s completes %q to %q, want %q", sh, strings.Join(tc.line, " "), got, tc.want)
				}
			}
		})
	}
}

// quoteWords quotes each word for a POSIX-like shell (bash, zsh and fish agree on single quotes
// around words without quotes in them).
func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}
