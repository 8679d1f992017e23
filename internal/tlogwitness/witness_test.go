package tlogwitness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

const (
	testOrigin  = "log.example/concord"
	witnessName = "witness.example/w1"
)

// testKey returns a fresh Ed25519 note key pair named name.
func testKey(t *testing.T, name string) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// testLog is a log: a tree and the key that signs its checkpoints.
type testLog struct {
	t      *testing.T
	tree   *translog.Tree
	signer note.Signer
}

// newTestLog builds a log of n entries signed with skey; the entry at index differAt (if any)
// differs from every other log's, making a second history.
func newTestLog(t *testing.T, skey string, n, differAt int) *testLog {
	t.Helper()
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	tree := translog.NewTree()
	for i := range n {
		entry := fmt.Sprintf("entry %d", i)
		if i == differAt {
			entry = "another " + entry
		}
		if _, err := tree.Append([]byte(entry)); err != nil {
			t.Fatal(err)
		}
	}
	return &testLog{t: t, tree: tree, signer: signer}
}

// checkpoint returns the log's checkpoint of size entries and its signed note.
func (l *testLog) checkpoint(size int64) (translog.Checkpoint, string) {
	l.t.Helper()
	root, err := l.tree.Root(size)
	if err != nil {
		l.t.Fatal(err)
	}
	cp := translog.Checkpoint{Origin: l.signer.Name(), Size: size, Root: root}
	signed, err := cp.Sign(l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return cp, signed
}

// proof is the consistency proof from old to size: empty from 0 and between equal sizes.
func (l *testLog) proof(old, size int64) []translog.Hash {
	l.t.Helper()
	if old == 0 || old == size {
		return nil
	}
	p, err := l.tree.ConsistencyProof(old, size)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

// body is the add-checkpoint request growing the log from old to size.
func (l *testLog) body(old, size int64) []byte {
	_, signed := l.checkpoint(size)
	return FormatAddCheckpoint(old, l.proof(old, size), signed)
}

// syncBuffer collects log output written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testWitness is a witness served over HTTP.
type testWitness struct {
	*Witness
	url  string // of add-checkpoint
	logs *syncBuffer
}

// startWitness opens a witness in dir and serves it under a prefix.
func startWitness(t *testing.T, dir, skey string, logKeys ...string) *testWitness {
	t.Helper()
	logs := &syncBuffer{}
	w, err := New(dir, skey, logKeys, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return &testWitness{Witness: w, url: srv.URL + "/witness/add-checkpoint", logs: logs}
}

// response is an HTTP answer, read whole.
type response struct {
	status      int
	contentType string
	body        string
}

// do sends a request and reads the answer; failures are reported with t.Error, so that client
// goroutines may call it.
func do(t *testing.T, method, url string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return response{}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return response{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b)}
}

// post sends an add-checkpoint body.
func post(t *testing.T, url string, body []byte) response {
	t.Helper()
	return do(t, http.MethodPost, url, body)
}

// wantStatus fails the test unless the answer has the status.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d (%q), want %d", r.status, r.body, status)
	}
}

// wantConflict checks a 409 answer naming the latest cosigned size.
func wantConflict(t *testing.T, r response, latest int64) {
	t.Helper()
	wantStatus(t, r, http.StatusConflict)
	if r.contentType != ContentTypeSize || r.body != fmt.Sprintf("%d\n", latest) {
		t.Fatalf("409 answer %q of type %q, want %q of type %q", r.body, r.contentType, fmt.Sprintf("%d\n", latest), ContentTypeSize)
	}
}

// wantLatest checks the size of the latest checkpoint cosigned for the test log.
func wantLatest(t *testing.T, w *Witness, size int64) {
	t.Helper()
	cp, ok := w.Latest(testOrigin)
	if !ok || cp.Size != size {
		t.Fatalf("latest cosigned: size %d (%v), want %d", cp.Size, ok, size)
	}
}

// openCosigned verifies the witness's answer as a client would: appended to the checkpoint.
func openCosigned(t *testing.T, w *Witness, signed, lines string) *note.Note {
	t.Helper()
	v, err := formats.NewVerifierForCosignatureV1(w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(signed+lines), note.VerifierList(v))
	if err != nil {
		t.Fatalf("cosignature %q does not verify: %v", lines, err)
	}
	return n
}

// checkCosignature verifies a cosignature line from the spec alone (C2SP tlog-cosignature,
// Ed25519 cosignature/v1), and returns its timestamp.
func checkCosignature(t *testing.T, vkey, text, line string) uint64 {
	t.Helper()
	name, rest, _ := strings.Cut(vkey, "+")
	hash16, key64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != 0x04 {
		t.Fatalf("verifier key %q: want base64(0x04 || 32-byte Ed25519 key)", vkey)
	}
	id := sha256.Sum256(append([]byte(name+"\n"), key...))
	if hash16 != hex.EncodeToString(id[:4]) {
		t.Fatalf("verifier key %q: key hash %s, want %x", vkey, hash16, id[:4])
	}
	sigLine, ok := strings.CutPrefix(line, "— ")
	if !ok {
		t.Fatalf("signature line %q does not start with an em dash and a space", line)
	}
	sigName, sig64, _ := strings.Cut(sigLine, " ")
	if sigName != name {
		t.Fatalf("signature by %q, want %q", sigName, name)
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil || len(sig) != 4+8+ed25519.SignatureSize {
		t.Fatalf("signature %q: want base64 of key ID, timestamp and Ed25519 signature (76 bytes)", sig64)
	}
	if !bytes.Equal(sig[:4], id[:4]) {
		t.Fatalf("signature key ID %x, want %x", sig[:4], id[:4])
	}
	timestamp := binary.BigEndian.Uint64(sig[4:12])
	msg := "cosignature/v1\ntime " + strconv.FormatUint(timestamp, 10) + "\n" + text
	if !ed25519.Verify(key[1:], []byte(msg), sig[12:]) {
		t.Fatalf("Ed25519 signature does not verify over %q", msg)
	}
	return timestamp
}

func TestCosignFirstCheckpoint(t *testing.T) {
	t.Parallel()
	skey, vkey := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	w := startWitness(t, t.TempDir(), skey, logVkey)
	log := newTestLog(t, logSkey, 5, -1)
	cp, signed := log.checkpoint(5)

	if w.Name() != witnessName {
		t.Errorf("name %q, want %q", w.Name(), witnessName)
	}
	before := time.Now().Unix()
	r := post(t, w.url, FormatAddCheckpoint(0, nil, signed))
	after := time.Now().Unix()
	wantStatus(t, r, http.StatusOK)
	wantLatest(t, w.Witness, 5)

	n := openCosigned(t, w.Witness, signed, r.body)
	if len(n.Sigs) != 1 || n.Sigs[0].Name != witnessName {
		t.Fatalf("verified signatures %v, want one by %s", n.Sigs, witnessName)
	}
	if !strings.HasSuffix(r.body, "\n") || strings.Count(r.body, "\n") != 1 {
		t.Fatalf("answer %q: want one signature line", r.body)
	}
	ts := checkCosignature(t, w.VerifierKey(), cp.Text(), strings.TrimSuffix(r.body, "\n"))
	if int64(ts) < before || int64(ts) > after {
		t.Errorf("timestamp %d, want between %d and %d", ts, before, after)
	}
	// The cosigning key is the witness key's Ed25519 key, under another signature type.
	_, wrest, _ := strings.Cut(w.VerifierKey(), "+")
	_, vrest, _ := strings.Cut(vkey, "+")
	_, wkey, _ := strings.Cut(wrest, "+")
	_, okey, _ := strings.Cut(vrest, "+")
	wpub, _ := base64.StdEncoding.DecodeString(wkey)
	opub, _ := base64.StdEncoding.DecodeString(okey)
	if !bytes.Equal(wpub[1:], opub[1:]) {
		t.Errorf("verifier key %s is not the public key of %s", w.VerifierKey(), vkey)
	}
}

func TestCosignExtensionLines(t *testing.T) {
	t.Parallel()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	w := startWitness(t, t.TempDir(), skey, logVkey)
	log := newTestLog(t, logSkey, 3, -1)
	cp, _ := log.checkpoint(3)
	text := cp.Text() + "extension line\n"
	signed, err := note.Sign(&note.Note{Text: text}, log.signer)
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, w.url, FormatAddCheckpoint(0, nil, string(signed)))
	wantStatus(t, r, http.StatusOK)
	// The cosignature covers the whole note text, extension lines included.
	openCosigned(t, w.Witness, string(signed), r.body)
	checkCosignature(t, w.VerifierKey(), text, strings.TrimSuffix(r.body, "\n"))
}

func TestCosignGrowth(t *testing.T) {
	t.Parallel()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	w := startWitness(t, t.TempDir(), skey, logVkey)
	log := newTestLog(t, logSkey, 20, -1)

	for _, step := range []struct{ old, size int64 }{{0, 1}, {1, 2}, {2, 7}, {7, 8}, {8, 16}, {16, 16}, {16, 20}} {
		r := post(t, w.url, log.body(step.old, step.size))
		wantStatus(t, r, http.StatusOK)
		_, signed := log.checkpoint(step.size)
		openCosigned(t, w.Witness, signed, r.body)
		wantLatest(t, w.Witness, step.size)
	}
}

func TestWrongOldSize(t *testing.T) {
	t.Parallel()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	w := startWitness(t, t.TempDir(), skey, logVkey)
	log := newTestLog(t, logSkey, 12, -1)

	// Never cosigned: the latest size is 0.
	wantConflict(t, post(t, w.url, log.body(3, 9)), 0)
	wantStatus(t, post(t, w.url, log.body(0, 5)), http.StatusOK)
	for _, old := range []int64{0, 3, 4, 6, 9} {
		wantConflict(t, post(t, w.url, log.body(old, 9)), 5)
	}
	// A client that learns the size from the 409 then succeeds.
	wantStatus(t, post(t, w.url, log.body(5, 9)), http.StatusOK)
	// An older checkpoint is refused, whatever old size it claims.
	wantConflict(t, post(t, w.url, log.body(5, 7)), 9)
	wantLatest(t, w.Witness, 9)
}

func TestProofFromAnotherHistory(t *testing.T) {
	t.Parallel()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	w := startWitness(t, t.TempDir(), skey, logVkey)
	log := newTestLog(t, logSkey, 9, -1)
	fork := newTestLog(t, logSkey, 9, 2) // same key, entry 2 differs
	wantStatus(t, post(t, w.url, log.body(0, 5)), http.StatusOK)
	_, signedBefore := log.checkpoint(5)

	// The fork's checkpoint with the fork's own (valid) proof from its size 5.
	r := post(t, w.url, fork.body(5, 9))
	wantStatus(t, r, http.StatusUnprocessableEntity)
	// The right checkpoint with a wrong proof.
	_, signed := log.checkpoint(9)
	bad := log.proof(5, 9)
	bad[0][0] ^= 1
	wantStatus(t, post(t, w.url, FormatAddCheckpoint(5, bad, signed)), http.StatusUnprocessableEntity)

	cp, ok := w.Latest(testOrigin)
	want, _ := log.checkpoint(5)
	if !ok || cp != want {
		t.Fatalf("latest cosigned %v, want %v unchanged", cp, want)
	}
	logs := w.logs.String()
	if strings.Count(logs, "possible evidence of log misbehaviour") != 2 {
		t.Fatalf("want both refused checkpoints logged as evidence, got:\n%s", logs)
	}
	_, forkSigned := fork.checkpoint(9)
	if !strings.Contains(logs, strconv.Quote(forkSigned)) || !strings.Contains(logs, strconv.Quote(signedBefore)) {
		t.Errorf("the evidence lacks the fork's checkpoint or the one cosigned before:\n%s", logs)
	}
	// The right proof still succeeds.
	wantStatus(t, post(t, w.url, log.body(5, 9)), http.StatusOK)
}

func TestSameSizeOtherRoot(t *testing.T) {
	t.Parallel()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	w := startWitness(t, t.TempDir(), skey, logVkey)
	log := newTestLog(t, logSkey, 5, -1)
	fork := newTestLog(t, logSkey, 5, 2)
	wantStatus(t, post(t, w.url, log.body(0, 5)), http.StatusOK)

	wantConflict(t, post(t, w.url, fork.body(5, 5)), 5)
	want, _ := log.checkpoint(5)
	if cp, _ := w.Latest(testOrigin); cp != want {
		t.Fatalf("latest cosigned %v, want %v unchanged", cp, want)
	}
	if !strings.Contains(w.logs.String(), "two roots") {
		t.Errorf("the second root is not logged as evidence:\n%s", w.logs.String())
	}
	// The same checkpoint again is cosigned again.
	wantStatus(t, post(t, w.url, log.body(5, 5)), http.StatusOK)
	// Between equal sizes the proof is empty.
	_, signed := log.checkpoint(5)
	wantStatus(t, post(t, w.url, FormatAddCheckpoint(5, []translog.Hash{{}}, signed)), http.StatusUnprocessableEntity)
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	otherSkey, _ := testKey(t, testOrigin)            // the right origin, a key the witness does not trust
	unknownSkey, _ := testKey(t, "log.example/other") // a log the witness does not follow
	w := startWitness(t, t.TempDir(), skey, logVkey)
	log := newTestLog(t, logSkey, 5, -1)
	_, signed := log.checkpoint(5)
	_, forged := newTestLog(t, otherSkey, 5, -1).checkpoint(5)
	_, unknown := newTestLog(t, unknownSkey, 5, -1).checkpoint(5)
	cp, _ := log.checkpoint(5)
	unsigned := cp.Text() + "\n— " + testOrigin + " AAAAAAAA\n"
	altered := strings.Replace(signed, "\n5\n", "\n4\n", 1) // the log key's signature no longer verifies

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		status int
	}{
		{"unknown origin", http.MethodPost, "", FormatAddCheckpoint(0, nil, unknown), http.StatusNotFound},
		{"signed by another key", http.MethodPost, "", FormatAddCheckpoint(0, nil, forged), http.StatusForbidden},
		{"signature by no known key", http.MethodPost, "", FormatAddCheckpoint(0, nil, unsigned), http.StatusForbidden},
		{"bad signature by the log key", http.MethodPost, "", FormatAddCheckpoint(0, nil, altered), http.StatusForbidden},
		{"old beyond size", http.MethodPost, "", FormatAddCheckpoint(6, nil, signed), http.StatusBadRequest},
		{"proof from size 0", http.MethodPost, "", FormatAddCheckpoint(0, log.proof(3, 5), signed), http.StatusUnprocessableEntity},
		{"GET", http.MethodGet, "", nil, http.StatusMethodNotAllowed},
		{"PUT", http.MethodPut, "", FormatAddCheckpoint(0, nil, signed), http.StatusMethodNotAllowed},
		{"other path", http.MethodPost, "/witness/add-checkpoints", FormatAddCheckpoint(0, nil, signed), http.StatusNotFound},
		{"garbage", http.MethodPost, "", []byte("garbage"), http.StatusBadRequest},
		{"empty", http.MethodPost, "", nil, http.StatusBadRequest},
		{"no empty line", http.MethodPost, "", []byte("old 0\n" + signed), http.StatusBadRequest},
		{"leading zero", http.MethodPost, "", []byte("old 00\n\n" + signed), http.StatusBadRequest},
		{"negative old", http.MethodPost, "", []byte("old -1\n\n" + signed), http.StatusBadRequest},
		{"bad proof line", http.MethodPost, "", []byte("old 0\nnot base64\n\n" + signed), http.StatusBadRequest},
		{"64 proof lines", http.MethodPost, "", FormatAddCheckpoint(0, make([]translog.Hash, 64), signed), http.StatusBadRequest},
		{"not a note", http.MethodPost, "", FormatAddCheckpoint(0, nil, cp.Text()), http.StatusBadRequest},
		{"not a checkpoint", http.MethodPost, "", FormatAddCheckpoint(0, nil, "hello\n\n"+strings.SplitN(signed, "\n\n", 2)[1]), http.StatusBadRequest},
		{"too large", http.MethodPost, "", append(FormatAddCheckpoint(0, nil, signed), bytes.Repeat([]byte("x"), 64<<10)...), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := w.url
			if tc.path != "" {
				url = strings.TrimSuffix(w.url, "/witness/add-checkpoint") + tc.path
			}
			wantStatus(t, do(t, tc.method, url, tc.body), tc.status)
		})
	}
	if _, ok := w.Latest(testOrigin); ok {
		t.Fatal("a refused request changed the state")
	}
	if w.logs.String() != "" {
		t.Errorf("refusals without a proof logged as evidence:\n%s", w.logs.String())
	}
}

func TestSignaturesOfUnknownKeysIgnored(t *testing.T) {
	t.Parallel()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	newSkey, newVkey := testKey(t, testOrigin) // a rotated key: both are trusted
	otherSkey, _ := testKey(t, "cosigner.example")
	w := startWitness(t, t.TempDir(), skey, logVkey, newVkey)
	log := newTestLog(t, logSkey, 5, -1)
	other, err := note.NewSigner(otherSkey)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := log.checkpoint(5)
	signed, err := cp.Sign(other, log.signer)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, post(t, w.url, FormatAddCheckpoint(0, nil, signed)), http.StatusOK)

	rotated := newTestLog(t, newSkey, 7, -1)
	_, signed = rotated.checkpoint(7)
	wantStatus(t, post(t, w.url, FormatAddCheckpoint(5, rotated.proof(5, 7), signed)), http.StatusOK)
}

func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	log := newTestLog(t, logSkey, 12, -1)
	w := startWitness(t, dir, skey, logVkey)
	wantStatus(t, post(t, w.url, log.body(0, 9)), http.StatusOK)

	again := startWitness(t, dir, skey, logVkey)
	want, _ := log.checkpoint(9)
	if cp, ok := again.Latest(testOrigin); !ok || cp != want {
		t.Fatalf("after a restart, latest cosigned %v (%v), want %v", cp, ok, want)
	}
	wantConflict(t, post(t, again.url, log.body(0, 12)), 9)
	wantStatus(t, post(t, again.url, log.body(9, 12)), http.StatusOK)

	// A stored checkpoint that the log's key no longer verifies stops the witness.
	_, otherVkey := testKey(t, testOrigin)
	if _, err := New(dir, skey, []string{otherVkey}, nil); err == nil {
		t.Fatal("New accepted a stored checkpoint the log's key does not verify")
	}
	// Logs without a stored checkpoint start from nothing.
	_, newVkey := testKey(t, "log.example/new")
	fresh, err := New(dir, skey, []string{logVkey, newVkey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.Latest("log.example/new"); ok {
		t.Fatal("a new log has a latest checkpoint")
	}
	wantLatest(t, fresh, 12)
}

func TestConcurrentRequestsNeverRollBack(t *testing.T) {
	t.Parallel()
	const (
		clients = 8
		rounds  = 5
		size    = clients * rounds
	)
	dir := t.TempDir()
	skey, _ := testKey(t, witnessName)
	logSkey, logVkey := testKey(t, testOrigin)
	w := startWitness(t, dir, skey, logVkey)
	log := newTestLog(t, logSkey, size, -1)
	checkpoints := make([]string, size+1)
	for n := int64(1); n <= size; n++ {
		_, checkpoints[n] = log.checkpoint(n)
	}

	// A watcher checks that the stored size only grows while the clients post.
	done := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		var last int64
		for {
			select {
			case <-done:
				watched <- nil
				return
			default:
			}
			cp, _ := w.Latest(testOrigin)
			if cp.Size < last {
				watched <- fmt.Errorf("stored size went from %d back to %d", last, cp.Size)
				return
			}
			last = cp.Size
			runtime.Gosched()
		}
	}()

	// Each client posts growing checkpoints, learning the witness's size from its 409s; a
	// checkpoint older than the witness's is given up.
	var wg sync.WaitGroup
	for c := 1; c <= clients; c++ {
		wg.Go(func() {
			var old int64
			for target := int64(c); target <= size; target += clients {
				for old <= target {
					r := post(t, w.url, FormatAddCheckpoint(old, log.proof(old, target), checkpoints[target]))
					if r.status == http.StatusOK {
						if _, err := note.Open([]byte(checkpoints[target]+r.body), note.VerifierList(mustVerifier(t, w.VerifierKey()))); err != nil {
							t.Errorf("cosignature of size %d: %v", target, err)
						}
						old = target
						break
					}
					if r.status != http.StatusConflict {
						t.Errorf("size %d from %d: status %d (%q)", target, old, r.status, r.body)
						return
					}
					latest, err := strconv.ParseInt(strings.TrimSuffix(r.body, "\n"), 10, 64)
					if err != nil {
						t.Errorf("409 body %q: %v", r.body, err)
						return
					}
					old = latest
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	wantLatest(t, w.Witness, size)
	again, err := New(dir, skey, []string{logVkey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantLatest(t, again, size)
}

// mustVerifier is the cosignature verifier of a witness verifier key.
func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := formats.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Error(err)
	}
	return v
}

func TestNewRejectsBadKeys(t *testing.T) {
	t.Parallel()
	skey, vkey := testKey(t, witnessName)
	_, logVkey := testKey(t, testOrigin)
	otherSkey, _ := testKey(t, witnessName)
	// The key hash of skey on the seed of another key.
	mixed := skey[:strings.LastIndex(skey, "+")] + otherSkey[strings.LastIndex(otherSkey, "+"):]
	mldsaSkey, _, err := formats.GenerateMLDSAKey(witnessName)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		skey    string
		logKeys []string
	}{
		{"no logs", skey, nil},
		{"verifier key as witness key", vkey, []string{logVkey}},
		{"mismatched key hash", mixed, []string{logVkey}},
		{"ML-DSA witness key", mldsaSkey, []string{logVkey}},
		{"bad log key", skey, []string{"log.example+00000000+AAAA"}},
		{"log key twice", skey, []string{logVkey, logVkey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(t.TempDir(), tc.skey, tc.logKeys, nil); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestStateFileName(t *testing.T) {
	t.Parallel()
	for _, origin := range []string{"log.example/concord", "..", "a/../../b", strings.Repeat("x", 300)} {
		name := stateFileName(origin)
		if strings.ContainsAny(name, `/\`) || name == "." || name == ".." || len(name) > maxFileName {
			t.Errorf("origin %q: file name %q", origin, name)
		}
	}
	if stateFileName("a/b") == stateFileName("a%2Fb") {
		t.Error("two origins share a file")
	}
}

func TestAddCheckpointBodyRoundTrip(t *testing.T) {
	t.Parallel()
	logSkey, _ := testKey(t, testOrigin)
	log := newTestLog(t, logSkey, 9, -1)
	_, signed := log.checkpoint(9)
	for _, tc := range []struct {
		old   int64
		proof []translog.Hash
	}{{0, nil}, {5, log.proof(5, 9)}, {9, nil}} {
		body := FormatAddCheckpoint(tc.old, tc.proof, signed)
		old, proof, got, err := ParseAddCheckpoint(body)
		if err != nil || old != tc.old || len(proof) != len(tc.proof) || got != signed {
			t.Fatalf("parse(%q) = %d, %d hashes, %q, %v", body, old, len(proof), got, err)
		}
		for i := range proof {
			if proof[i] != tc.proof[i] {
				t.Fatalf("proof hash %d differs", i)
			}
		}
	}
	// The spec's example body.
	example := "old 20852014\n" +
		"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" +
		"jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n" +
		"5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n" +
		"/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n" +
		"\n" +
		"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n" +
		"— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
	old, proof, cp, err := ParseAddCheckpoint([]byte(example))
	if err != nil || old != 20852014 || len(proof) != 4 || !strings.HasPrefix(cp, "example.com/behind-the-sofa\n") {
		t.Fatalf("spec example: %d, %d hashes, %q, %v", old, len(proof), cp, err)
	}
	if got := FormatAddCheckpoint(old, proof, cp); string(got) != example {
		t.Fatalf("spec example formats as %q", got)
	}
}
