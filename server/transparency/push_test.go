package transparency

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/tlogwitness"
	"concord/server/statetest"
	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// pushSetup is a publisher over a small log, and a witness key pair.
type pushSetup struct {
	pub        *Publisher
	logKey     note.Verifier
	skey, vkey string // the witness's signer key and cosignature/v1 verifier key
}

func newPushSetup(t *testing.T) *pushSetup {
	t.Helper()
	n := statetest.New(t)
	n.SubmitNotice(t)
	tree := translog.NewTree()
	if err := syncTestTree(tree, n); err != nil {
		t.Fatal(err)
	}
	logSigner, logKey := statetest.LogKey(t)
	pub, err := Open(t.TempDir(), logSigner, logKey, func() *translog.Tree { return tree }, n.State)
	if err != nil {
		t.Fatal(err)
	}
	skey, v, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := formats.VKeyToCosignatureV1(v)
	if err != nil {
		t.Fatal(err)
	}
	return &pushSetup{pub: pub, logKey: logKey, skey: skey, vkey: vkey}
}

// pusher pushes to the one witness at url.
func (s *pushSetup) pusher(url string) *Pusher {
	partners := func() ([]*concordv1.Partner, error) {
		return []*concordv1.Partner{{Id: "w1", WitnessKey: s.vkey, WitnessUrl: url}}, nil
	}
	return NewPusher(s.pub, partners, slog.New(slog.DiscardHandler))
}

// pushOnce runs one round and returns the witness's result.
func pushOnce(t *testing.T, p *Pusher) PushStatus {
	t.Helper()
	p.round(context.Background())
	status, _ := p.Observe()
	return status["w1"]
}

// fakeWitness answers add-checkpoint requests with answer, after recording the old sizes asked.
type fakeWitness struct {
	mu     sync.Mutex
	olds   []int64
	answer func(old int64, checkpoint string) (code int, body string)
}

func (f *fakeWitness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := make([]byte, 64<<10)
	n, _ := r.Body.Read(body)
	for n < len(body) {
		m, err := r.Body.Read(body[n:])
		n += m
		if err != nil {
			break
		}
	}
	old, _, checkpoint, err := tlogwitness.ParseAddCheckpoint(body[:n])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.olds = append(f.olds, old)
	f.mu.Unlock()
	code, answer := f.answer(old, checkpoint)
	if code == http.StatusConflict {
		w.Header().Set("Content-Type", tlogwitness.ContentTypeSize)
	}
	w.WriteHeader(code)
	fmt.Fprint(w, answer)
}

// TestPusherTakesOnlyVerifiedCosignatures: a witness's answer is kept only when a line verifies
// with its registered key; a line by another key under its name, or a forged one, is refused
// and nothing is merged into the checkpoint served.
func TestPusherTakesOnlyVerifiedCosignatures(t *testing.T) {
	s := newPushSetup(t)
	impostor, _, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := formats.NewSignerForCosignatureV1(impostor)
	if err != nil {
		t.Fatal(err)
	}
	for name, answer := range map[string]func(string) string{
		"another key under its name": func(cp string) string {
			text, _, _ := strings.Cut(cp, "\n\n")
			signed, _ := note.Sign(&note.Note{Text: text + "\n"}, signer)
			_, lines, _ := strings.Cut(string(signed), "\n\n")
			return lines
		},
		"a forged line": func(string) string {
			return "— witness.example/w1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
		},
		"no line": func(string) string { return "" },
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeWitness{answer: func(_ int64, cp string) (int, string) { return http.StatusOK, answer(cp) }}
			srv := httptest.NewServer(f)
			defer srv.Close()
			if st := pushOnce(t, s.pusher(srv.URL)); st.Result != PushFailed {
				t.Fatalf("result %+v, want failed", st)
			}
			if got, err := s.pub.cosigned(1); err == nil {
				t.Fatalf("a checkpoint with a cosignature is served: %s", got.Note)
			}
		})
	}
	// The real thing: a witness that cosigns.
	w, err := tlogwitness.New(t.TempDir(), s.skey, []string{statetest.LogVerifierKey(t)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	defer srv.Close()
	if st := pushOnce(t, s.pusher(srv.URL)); st.Result != PushCosigned {
		t.Fatalf("result %+v, want cosigned", st)
	}
	if _, err := s.pub.cosigned(1); err != nil {
		t.Fatalf("no cosigned checkpoint served: %v", err)
	}
}

// TestPusherAnswersConflicts: a 409 gives the witness's size, and the push is made again from
// there; a 409 at this very size (another root) is a split view; a witness that says it is
// ahead is "behind" and asked again from what this node knows next round; a redirect is not
// followed.
func TestPusherAnswersConflicts(t *testing.T) {
	s := newPushSetup(t)
	latest, err := s.pub.Latest(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	size := latest.Checkpoint.Size

	t.Run("split view at an equal size", func(t *testing.T) {
		f := &fakeWitness{answer: func(int64, string) (int, string) { return http.StatusConflict, fmt.Sprintf("%d\n", size) }}
		srv := httptest.NewServer(f)
		defer srv.Close()
		st := pushOnce(t, s.pusher(srv.URL))
		if st.Result != PushSplitView || st.WitnessSize != size {
			t.Fatalf("result %+v, want a split view at %d", st, size)
		}
		if fmt.Sprint(f.olds) != fmt.Sprintf("[0 %d]", size) {
			t.Fatalf("the pusher sent old sizes %v, want 0 then %d", f.olds, size)
		}
	})
	t.Run("split view on a refused proof", func(t *testing.T) {
		f := &fakeWitness{answer: func(old int64, _ string) (int, string) {
			if old == 0 {
				return http.StatusConflict, "1\n"
			}
			return http.StatusUnprocessableEntity, "consistency proof does not verify"
		}}
		srv := httptest.NewServer(f)
		defer srv.Close()
		if st := pushOnce(t, s.pusher(srv.URL)); st.Result != PushSplitView || st.WitnessSize != 1 {
			t.Fatalf("result %+v, want a split view from 1", st)
		}
	})
	t.Run("a witness ahead", func(t *testing.T) {
		f := &fakeWitness{answer: func(int64, string) (int, string) { return http.StatusConflict, "1000000\n" }}
		srv := httptest.NewServer(f)
		defer srv.Close()
		p := s.pusher(srv.URL)
		for range 2 {
			if st := pushOnce(t, p); st.Result != PushBehind || st.WitnessSize != 1000000 {
				t.Fatalf("result %+v, want behind a witness at 1000000", st)
			}
		}
		if fmt.Sprint(f.olds) != "[0 0]" {
			t.Fatalf("the pusher sent old sizes %v: a size above its own log must not be remembered", f.olds)
		}
	})
	t.Run("a redirect", func(t *testing.T) {
		var hit atomic.Bool
		elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit.Store(true) }))
		defer elsewhere.Close()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/admin", http.StatusTemporaryRedirect)
		}))
		defer srv.Close()
		if st := pushOnce(t, s.pusher(srv.URL)); st.Result != PushFailed || !strings.Contains(st.Detail, "not followed") {
			t.Fatalf("result %+v, want failed, not followed", st)
		}
		if hit.Load() {
			t.Fatal("the pusher followed the redirect")
		}
	})
}
