package translog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a tree head: the C2SP tlog-checkpoint body, before signing.
type Checkpoint struct {
	// Origin names the log, e.g. "concord.example/log"; it is also the name of the log's key.
	Origin string
	Size   int64
	Root   Hash
}

// Text is the checkpoint's body: origin, size and base64 root hash, one per line.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpoint reads a checkpoint body (extension lines after the root are allowed and
// ignored).
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root hash lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint: size %q is not a decimal number", lines[1])
	}
	// Only the canonical encoding: the decoder also takes non-zero padding bits and carriage
	// returns, and two texts must not stand for one tree head.
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(Hash{}) || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return Checkpoint{}, fmt.Errorf("checkpoint: root hash %q is not 32 bytes of base64", lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// Sign returns the checkpoint as a signed note.
func (c Checkpoint) Sign(signers ...note.Signer) (string, error) {
	b, err := note.Sign(&note.Note{Text: c.Text()}, signers...)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return string(b), nil
}

// OpenCheckpoint verifies a signed checkpoint with the log's verifier key and parses it. The
// note's other signatures (witnesses' cosignatures) are kept, unverified, in the returned note.
func OpenCheckpoint(signed string, logKey note.Verifier) (Checkpoint, *note.Note, error) {
	n, err := note.Open([]byte(signed), note.VerifierList(logKey))
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint signature: %w", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != logKey.Name() {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint origin %q is not the log key's name %q", c.Origin, logKey.Name())
	}
	return c, n, nil
}

// AddSignatures merges the signatures of other onto signed, which must carry the same text (a
// witness's cosignature onto the hub's checkpoint).
func AddSignatures(signed string, others ...string) (string, error) {
	base, err := parseUnverified(signed)
	if err != nil {
		return "", err
	}
	seen := map[string]bool{}
	for _, s := range base.Sigs {
		seen[s.Name+" "+s.Base64] = true
	}
	for _, o := range others {
		on, err := parseUnverified(o)
		if err != nil {
			return "", err
		}
		if on.Text != base.Text {
			return "", errors.New("cosignature is for another checkpoint")
		}
		for _, s := range on.Sigs {
			if !seen[s.Name+" "+s.Base64] {
				base.Sigs = append(base.Sigs, s)
				seen[s.Name+" "+s.Base64] = true
			}
		}
	}
	var buf bytes.Buffer
	buf.WriteString(base.Text)
	buf.WriteString("\n")
	for _, s := range base.Sigs {
		fmt.Fprintf(&buf, "— %s %s\n", s.Name, s.Base64)
	}
	return buf.String(), nil
}

// parseUnverified splits a signed note into its text and signature lines without verifying.
func parseUnverified(signed string) (*note.Note, error) {
	text, sigs, ok := strings.Cut(signed, "\n\n")
	if !ok {
		return nil, errors.New("signed note: no blank line before the signatures")
	}
	n := &note.Note{Text: text + "\n"}
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "— ")
		if !ok {
			return nil, fmt.Errorf("signed note: malformed signature line %q", line)
		}
		name, b64, ok := strings.Cut(rest, " ")
		if !ok {
			return nil, fmt.Errorf("signed note: malformed signature line %q", line)
		}
		n.Sigs = append(n.Sigs, note.Signature{Name: name, Base64: b64})
	}
	return n, nil
}

// OpenCosignedCheckpoint verifies a checkpoint signed by the log key and cosigned by at least
// quorum of the witnesses (C2SP tlog-cosignature verifiers), each counted once.
func OpenCosignedCheckpoint(signed string, logKey note.Verifier, witnesses []note.Verifier, quorum int) (Checkpoint, error) {
	cp, _, err := OpenCheckpoint(signed, logKey)
	if err != nil {
		return Checkpoint{}, err
	}
	if quorum <= 0 {
		return cp, nil
	}
	n, err := note.Open([]byte(signed), note.VerifierList(witnesses...))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint of %d entries: no cosignature of a trusted witness verifies (%d required): %w", cp.Size, quorum, err)
	}
	names := map[string]bool{}
	for _, s := range n.Sigs {
		names[s.Name] = true
	}
	if len(names) < quorum {
		return Checkpoint{}, fmt.Errorf("checkpoint of %d entries: %d trusted witnesses cosigned it, %d required", cp.Size, len(names), quorum)
	}
	return cp, nil
}
