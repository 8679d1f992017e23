// Package tlogwitness is the witness side of the C2SP tlog-witness protocol
// (https://c2sp.org/tlog-witness): a log POSTs each new checkpoint with a consistency proof from
// the last checkpoint the witness cosigned for it, and the witness answers with its cosignature
// (C2SP tlog-cosignature: cosignature/v1, Ed25519, timestamped).
//
// The witness keeps the latest checkpoint it cosigned for each log in a file, written before the
// cosignature leaves: as long as that directory survives, it never cosigns two inconsistent
// checkpoints of one log, nor a smaller tree after a larger one.
package tlogwitness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"concord/internal/atomicfile"
	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// maxBodySize bounds an add-checkpoint body: 63 proof lines and a checkpoint with a few
// signatures take a few KiB.
const maxBodySize = 64 << 10

// Signature types of note keys (C2SP signed-note, tlog-cosignature).
const (
	algEd25519              = 0x01
	algEd25519CosignatureV1 = 0x04
)

// stateSuffix ends the name of a file holding a log's latest cosigned checkpoint.
const stateSuffix = ".checkpoint"

// maxFileName is the longest file name most file systems take.
const maxFileName = 255

// Witness cosigns the checkpoints of the logs it trusts (see the package comment). It is an
// http.Handler for add-checkpoint; requests for different logs proceed in parallel.
type Witness struct {
	signer *formats.Signer
	vkey   string
	logs   map[string]*witnessedLog // by origin
	logger *slog.Logger
}

// witnessedLog is a log the witness trusts and the latest checkpoint it cosigned for it.
type witnessedLog struct {
	origin string
	keys   []note.Verifier // any one of them signing a checkpoint is enough
	path   string

	// mu is held from the old size check to the write of the new checkpoint: two requests checked
	// against the same state could otherwise be stored in either order, rolling the log back.
	mu     sync.Mutex
	latest *cosigned // nil until the first cosignature
}

// cosigned is a checkpoint the witness cosigned.
type cosigned struct {
	checkpoint translog.Checkpoint
	text       string // the note text, extension lines included: what the cosignature covers
	signed     string // the note as the log sent it, with the log's signature
}

// New opens a witness that keeps its state (the latest checkpoint it cosigned for each log, one
// file per origin) in dir, cosigns with the note signer key skey (PRIVATE+KEY+name+hash+base64,
// Ed25519), and trusts the logs whose verifier keys (note vkeys "name+hash+base64", Ed25519) are
// given: a log's origin is its key's name, and several keys may share one origin (a key rotation).
// It creates dir if needed and reads the existing state: a stored checkpoint that no longer
// verifies with its log's keys is an error. A nil logger means slog.Default().
func New(dir, skey string, logKeys []string, logger *slog.Logger) (*Witness, error) {
	if logger == nil {
		logger = slog.Default()
	}
	signer, vkey, err := cosigner(skey)
	if err != nil {
		return nil, err
	}
	if len(logKeys) == 0 {
		return nil, errors.New("tlog witness: no log keys: a witness cosigns only the logs it trusts")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlog witness: %w", err)
	}
	w := &Witness{signer: signer, vkey: vkey, logs: map[string]*witnessedLog{}, logger: logger}
	seen := map[string]bool{}
	for _, k := range logKeys {
		if seen[k] {
			return nil, fmt.Errorf("tlog witness: log key %q given twice", k)
		}
		seen[k] = true
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("tlog witness: log key %q is not an Ed25519 note verifier key (name+hash+base64): %w", k, err)
		}
		l := w.logs[v.Name()]
		if l == nil {
			l = &witnessedLog{origin: v.Name(), path: filepath.Join(dir, stateFileName(v.Name()))}
			w.logs[v.Name()] = l
		}
		l.keys = append(l.keys, v)
	}
	for _, origin := range slices.Sorted(maps.Keys(w.logs)) {
		if err := w.logs[origin].load(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// cosigner reads the witness key and derives its cosignature/v1 verifier key, which skey does not
// carry: the Ed25519 public key comes from the seed.
func cosigner(skey string) (*formats.Signer, string, error) {
	signer, err := formats.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, "", fmt.Errorf("tlog witness: witness key is not a note signer key (PRIVATE+KEY+name+hash+base64): %w", err)
	}
	// NewSignerForCosignatureV1 checked the syntax and the name; it ignores the key hash.
	parts := strings.SplitN(skey, "+", 5)
	key, _ := base64.StdEncoding.DecodeString(parts[4])
	if len(key) != 1+ed25519.SeedSize || (key[0] != algEd25519 && key[0] != algEd25519CosignatureV1) {
		return nil, "", fmt.Errorf("tlog witness: witness key %s is not an Ed25519 key", signer.Name())
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	// A key hash that does not match is a key damaged in copying, or the half of another pair.
	hash, err := strconv.ParseUint(parts[3], 16, 32)
	if err != nil || uint32(hash) != keyHash(signer.Name(), key[0], pub) {
		return nil, "", fmt.Errorf("tlog witness: witness key %s: the key hash %q does not match the key", signer.Name(), parts[3])
	}
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, "", fmt.Errorf("tlog witness: witness key %s: %w", signer.Name(), err)
	}
	vkey, err = formats.VKeyToCosignatureV1(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("tlog witness: witness key %s: %w", signer.Name(), err)
	}
	return signer, vkey, nil
}

// keyHash is the key ID of a note key: SHA-256(name || "\n" || alg || public key)[:4].
func keyHash(name string, alg byte, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{alg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// stateFileName is the file holding the latest checkpoint cosigned for origin: the origin,
// escaped, or its SHA-256 when that would be too long a name. The file's content names the origin
// in any case.
func stateFileName(origin string) string {
	name := url.PathEscape(origin) + stateSuffix
	if len(name) > maxFileName {
		sum := sha256.Sum256([]byte(origin))
		name = hex.EncodeToString(sum[:]) + stateSuffix
	}
	return name
}

// Name is the witness key's name, the name on its cosignatures.
func (w *Witness) Name() string { return w.signer.Name() }

// VerifierKey is the witness's cosignature/v1 verifier key (name+hash+base64(0x04 || Ed25519
// public key)), for formats.NewVerifierForCosignatureV1.
func (w *Witness) VerifierKey() string { return w.vkey }

// Latest returns the latest checkpoint the witness cosigned for the log with this origin, and
// false when it never cosigned one or does not know the log.
func (w *Witness) Latest(origin string) (translog.Checkpoint, bool) {
	l := w.logs[origin]
	if l == nil {
		return translog.Checkpoint{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest == nil {
		return translog.Checkpoint{}, false
	}
	return l.latest.checkpoint, true
}

// load reads the latest checkpoint cosigned for the log, if any.
func (l *witnessedLog) load() error {
	b, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tlog witness: %w", err)
	}
	n, err := parseNote(b)
	if err != nil {
		return fmt.Errorf("tlog witness: %s: %w", l.path, err)
	}
	cp, err := translog.ParseCheckpoint(n.Text)
	if err != nil {
		return fmt.Errorf("tlog witness: %s: %w", l.path, err)
	}
	if cp.Origin != l.origin {
		return fmt.Errorf("tlog witness: %s holds a checkpoint of %q, not of %q", l.path, cp.Origin, l.origin)
	}
	if !l.signed(n) {
		return fmt.Errorf("tlog witness: %s: the checkpoint of %s last cosigned does not verify with the log's keys", l.path, l.origin)
	}
	l.latest = &cosigned{checkpoint: cp, text: n.Text, signed: string(b)}
	return nil
}

// parseNote splits a signed note into its text and signatures, all of them unverified.
func parseNote(signed []byte) (*note.Note, error) {
	// With no verifiers, Open only parses: a well-formed note comes back inside the error.
	_, err := note.Open(signed, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("%w: the checkpoint is not a signed note", errMalformed)
	}
	return unverified.Note, nil
}

// signed reports whether one of the note's signatures verifies with one of the log's keys. Other
// signatures, by unknown keys or not verifying, are ignored: note.Open would fail on a bad one.
func (l *witnessedLog) signed(n *note.Note) bool {
	for _, sig := range n.UnverifiedSigs {
		raw, err := base64.StdEncoding.DecodeString(sig.Base64)
		if err != nil || len(raw) < 4 {
			continue
		}
		for _, k := range l.keys {
			if k.Name() == sig.Name && k.KeyHash() == sig.Hash && k.Verify([]byte(n.Text), raw[4:]) {
				return true
			}
		}
	}
	return false
}

// refusal is a request the witness turns down, with the HTTP status the spec sets for it.
type refusal struct {
	status int
	latest int64 // for 409 Conflict: the size of the latest checkpoint cosigned
	err    error
}

// Error is the reason, told to the client.
func (r *refusal) Error() string { return r.err.Error() }

// Unwrap returns the reason.
func (r *refusal) Unwrap() error { return r.err }

// refuse makes a refusal with status and a reason.
func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status: status, err: fmt.Errorf(format, args...)}
}

// ServeHTTP serves POST <prefix>/add-checkpoint: it answers with the witness's cosignature lines,
// or with the status the spec sets for the first check that fails.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/add-checkpoint") {
		http.NotFound(rw, r)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "add-checkpoint takes a POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxBodySize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(rw, fmt.Sprintf("an add-checkpoint body takes at most %d bytes", maxBodySize), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "read the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	sigs, err := w.addCheckpoint(body)
	var ref *refusal
	switch {
	case errors.As(err, &ref) && ref.status == http.StatusConflict:
		rw.Header().Set("Content-Type", ContentTypeSize)
		rw.Header().Set("X-Content-Type-Options", "nosniff")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", ref.latest)
	case errors.As(err, &ref):
		http.Error(rw, ref.Error(), ref.status)
	case err != nil:
		w.logger.Error("tlog witness: add-checkpoint failed", "err", err)
		http.Error(rw, "the witness could not record the checkpoint", http.StatusInternalServerError)
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(sigs)
	}
}

// addCheckpoint checks an add-checkpoint request and returns the cosignature lines, or a
// *refusal.
func (w *Witness) addCheckpoint(body []byte) ([]byte, error) {
	oldSize, proof, signed, err := ParseAddCheckpoint(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	n, err := parseNote([]byte(signed))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	cp, err := translog.ParseCheckpoint(n.Text)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	l := w.logs[cp.Origin]
	if l == nil {
		return nil, refuse(http.StatusNotFound, "this witness does not follow the log %q", cp.Origin)
	}
	if !l.signed(n) {
		return nil, refuse(http.StatusForbidden, "no signature of the checkpoint verifies with a key of %s", cp.Origin)
	}
	if oldSize > cp.Size {
		return nil, refuse(http.StatusBadRequest, "old size %d is beyond the checkpoint's size %d", oldSize, cp.Size)
	}
	return w.cosign(l, oldSize, proof, signed, cp, n.Text)
}

// cosign checks the request against the latest checkpoint cosigned for the log, records the new
// one durably, and cosigns it, all under the log's lock.
func (w *Witness) cosign(l *witnessedLog, oldSize int64, proof []translog.Hash, signed string, cp translog.Checkpoint, text string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var latest cosigned // the empty tree until the first cosignature
	if l.latest != nil {
		latest = *l.latest
	}
	if oldSize != latest.checkpoint.Size {
		return nil, &refusal{status: http.StatusConflict, latest: latest.checkpoint.Size,
			err: fmt.Errorf("old size %d is not %d, the size of the latest checkpoint cosigned", oldSize, latest.checkpoint.Size)}
	}
	switch {
	case oldSize == cp.Size:
		// Without a checkpoint cosigned, an empty tree has no root to compare with.
		if l.latest != nil && cp.Root != latest.checkpoint.Root {
			err := fmt.Errorf("the log signed two roots for the tree of size %d", cp.Size)
			w.evidence(l, oldSize, proof, signed, err)
			return nil, &refusal{status: http.StatusConflict, latest: latest.checkpoint.Size, err: err}
		}
		if len(proof) != 0 {
			return nil, refuse(http.StatusUnprocessableEntity, "the consistency proof between trees of one size is empty, not %d hashes", len(proof))
		}
	case oldSize == 0:
		if len(proof) != 0 {
			return nil, refuse(http.StatusUnprocessableEntity, "the consistency proof from size 0 is empty, not %d hashes", len(proof))
		}
	default:
		if err := translog.CheckConsistency(proof, latest.checkpoint.Size, latest.checkpoint.Root, cp.Size, cp.Root); err != nil {
			w.evidence(l, oldSize, proof, signed, err)
			return nil, refuse(http.StatusUnprocessableEntity, "%v", err)
		}
	}
	// Recorded before the cosignature leaves: it promises never to cosign an older or another tree.
	if l.latest == nil || l.latest.text != text {
		if err := atomicfile.WriteFile(l.path, []byte(signed)); err != nil {
			return nil, fmt.Errorf("record the checkpoint of %s: %w", l.origin, err)
		}
		l.latest = &cosigned{checkpoint: cp, text: text, signed: signed}
	}
	// Signed under the lock too: the timestamp says no larger tree was cosigned before it.
	b, err := note.Sign(&note.Note{Text: text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("cosign the checkpoint of %s: %w", l.origin, err)
	}
	w.logger.Debug("tlog witness: cosigned", "origin", l.origin, "old_size", oldSize, "size", cp.Size)
	return b[len(text)+1:], nil
}

// evidence logs a checkpoint the log signed that does not fit the one cosigned before: the pair
// may prove that the log shows different histories to different parties.
func (w *Witness) evidence(l *witnessedLog, oldSize int64, proof []translog.Hash, signed string, reason error) {
	var cosignedBefore string
	if l.latest != nil {
		cosignedBefore = l.latest.signed
	}
	hashes := make([]string, len(proof))
	for i, h := range proof {
		hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	w.logger.Warn("tlog witness: refused a checkpoint signed by the log: possible evidence of log misbehaviour",
		"origin", l.origin, "reason", reason.Error(), "old_size", oldSize, "proof", hashes,
		"checkpoint", signed, "cosigned_before", cosignedBefore)
}
