package transparency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/tlogwitness"
	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// The results of a push, as PushStatus and the metrics name them.
const (
	PushCosigned  = "cosigned"   // the witness cosigned the checkpoint
	PushBehind    = "behind"     // the witness holds a larger checkpoint (another node's): nothing to add
	PushSplitView = "split_view" // the witness's record of the log contradicts this node's: two histories
	PushRefused   = "refused"    // the witness does not take this log (404, 403): its configuration
	PushFailed    = "failed"     // unreachable, a 5xx, an answer that does not verify: retried
)

// PushStatus is what the last push to one witness gave.
type PushStatus struct {
	Partner string
	URL     string
	Result  string
	// Size is the checkpoint pushed; WitnessSize the witness's latest, as it last said.
	Size, WitnessSize int64
	Detail            string
	At                time.Time
}

// Pusher sends each new checkpoint this node signs to the witnesses the registry lists with a
// witness_url (C2SP tlog-witness add-checkpoint, with a consistency proof from the witness's
// latest checkpoint of this log), and keeps the cosignatures they answer with the checkpoint,
// so that GetCheckpoint serves them. A witness that answers 409 says its latest size: the push
// is made again from there. A witness whose record contradicts this node's log (a 422 on the
// consistency proof, or a 409 at an equal size) has seen another history signed with the log
// key: that is reported as a split view, loudly, and never papered over.
type Pusher struct {
	pub      *Publisher
	partners func() ([]*concordv1.Partner, error)
	client   *http.Client
	logger   *slog.Logger
	// Interval is the least time between two rounds (default 1 s): a busy log is witnessed at
	// that pace, not once per entry. Retry is how soon a round runs again when a witness
	// failed and nothing new was logged (default 30 s).
	Interval, Retry time.Duration
	// OnResult, if set, is told each push's result (a metric).
	OnResult func(partner, result string)

	mu     sync.Mutex
	sizes  map[string]int64 // witness URL → its latest size, as it last said (never above this node's checkpoints)
	status map[string]PushStatus
	rounds chan struct{} // closed and replaced after each round (tests wait on it)
	done   chan struct{} // closed when Run returns
}

// NewPusher returns a pusher of pub's checkpoints to the witnesses partners lists.
func NewPusher(pub *Publisher, partners func() ([]*concordv1.Partner, error), logger *slog.Logger) *Pusher {
	// Redirects are not followed: the registry names the witness's URL, and a witness that
	// answers with another must not make the hub send its checkpoints (or GETs) elsewhere.
	httpClient := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Pusher{pub: pub, partners: partners, logger: logger, client: httpClient,
		Interval: time.Second, Retry: 30 * time.Second, sizes: map[string]int64{}, status: map[string]PushStatus{},
		rounds: make(chan struct{}), done: make(chan struct{})}
}

// Done is closed when Run has returned: nothing is pushed or written after it.
func (p *Pusher) Done() <-chan struct{} { return p.done }

// Observe returns the last push's result for each witness and a channel closed when the round
// under way (or, between rounds, the next) ends: results newer than the map are signalled.
func (p *Pusher) Observe() (map[string]PushStatus, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]PushStatus, len(p.status))
	for k, v := range p.status {
		out[k] = v
	}
	return out, p.rounds
}

// Run pushes until ctx ends: a round when the log grows or is replaced by a snapshot (at most
// one every Interval), and again after Retry while a witness did not take what this node
// signed. It closes the idle connections to witnesses and Done when it returns.
func (p *Pusher) Run(ctx context.Context) {
	defer close(p.done)
	defer p.client.CloseIdleConnections()
	for {
		grown, replaced := p.pub.tree().Grown(), p.pub.entries().AbandonCh()
		failed := p.round(ctx)
		p.mu.Lock()
		close(p.rounds)
		p.rounds = make(chan struct{})
		p.mu.Unlock()
		var retry <-chan time.Time
		if failed {
			retry = time.After(p.Retry)
		}
		select {
		case <-ctx.Done():
			return
		case <-grown:
		case <-replaced:
		case <-retry:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.Interval):
		}
	}
}

// round pushes the latest checkpoint to every witness with an endpoint; it says whether one
// failed in a way worth retrying.
func (p *Pusher) round(ctx context.Context) (failed bool) {
	partners, err := p.partners()
	if err != nil {
		p.logger.Warn("witness push: the registry's partners", "error", err)
		return true
	}
	var witnesses []*concordv1.Partner
	for _, w := range partners {
		if w.GetWitnessUrl() != "" && w.GetWitnessKey() != "" {
			witnesses = append(witnesses, w)
		}
	}
	if len(witnesses) == 0 || p.pub.tree().Size() == 0 {
		return false
	}
	s, err := p.pub.Latest(ctx, 0)
	if err != nil {
		// An integrity alarm or a node still catching up: nothing to sign, so nothing to push.
		p.logger.Debug("witness push: no checkpoint to push", "error", err)
		return true
	}
	// Each witness in its own goroutine: one that does not answer delays no other.
	results := make([]PushStatus, len(witnesses))
	var wg sync.WaitGroup
	for i, w := range witnesses {
		wg.Go(func() { results[i] = p.push(ctx, w, s) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false // shutting down: what was cut short is neither counted nor logged
	}
	for i, w := range witnesses {
		st := results[i]
		p.mu.Lock()
		p.status[w.GetId()] = st
		p.mu.Unlock()
		if p.OnResult != nil {
			p.OnResult(w.GetId(), st.Result)
		}
		switch st.Result {
		case PushSplitView:
			p.logger.Error("SPLIT VIEW: a witness's record of the log contradicts this node's: another history was shown to it under the log key; "+
				"find where it came from (a node forked, or the log key is used elsewhere) and do not rotate the witness away",
				"witness", w.GetId(), "url", w.GetWitnessUrl(), "size", st.Size, "witness_size", st.WitnessSize, "detail", st.Detail)
		case PushBehind:
			// Legitimate on a node behind the leader, for a moment; a witness that stays ahead of
			// the whole cluster has seen a longer history than this log's.
			p.logger.Warn("witness push: the witness holds a larger checkpoint than this node signed",
				"witness", w.GetId(), "url", w.GetWitnessUrl(), "size", st.Size, "witness_size", st.WitnessSize)
			failed = true
		case PushRefused, PushFailed:
			p.logger.Warn("witness push: not cosigned", "witness", w.GetId(), "url", w.GetWitnessUrl(), "result", st.Result, "detail", st.Detail)
			failed = true
		}
	}
	return failed
}

// push sends s to witness w, answering 409s, and returns what came of it.
func (p *Pusher) push(ctx context.Context, w *concordv1.Partner, s *Signed) PushStatus {
	url := strings.TrimSuffix(w.GetWitnessUrl(), "/")
	st := PushStatus{Partner: w.GetId(), URL: url, Size: s.Checkpoint.Size, At: time.Now()}
	fail := func(result, format string, args ...any) PushStatus {
		st.Result, st.Detail = result, fmt.Sprintf(format, args...)
		return st
	}
	verifier, err := formats.NewVerifierForCosignatureV1(w.GetWitnessKey())
	if err != nil {
		return fail(PushRefused, "the registry's witness_key: %v", err)
	}
	p.mu.Lock()
	old := p.sizes[url]
	p.mu.Unlock()
	// A 409 says the witness's size; two tries from there, then the next round.
	for range 3 {
		st.WitnessSize = old
		if old > s.Checkpoint.Size {
			// Not remembered: the next round asks again, from what this node knows.
			st.Result = PushBehind
			return st
		}
		var proof []translog.Hash
		if old > 0 && old < s.Checkpoint.Size {
			if proof, err = p.pub.tree().ConsistencyProof(old, s.Checkpoint.Size); err != nil {
				return fail(PushFailed, "consistency proof %d → %d: %v", old, s.Checkpoint.Size, err)
			}
		}
		body := tlogwitness.FormatAddCheckpoint(old, proof, s.Note)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/add-checkpoint", bytes.NewReader(body))
		if err != nil {
			return fail(PushRefused, "%v", err)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return fail(PushFailed, "%v", err)
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return fail(PushFailed, "read the answer: %v", err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			if err := p.keep(w.GetId(), s, verifier, answer); err != nil {
				return fail(PushFailed, "%v", err)
			}
			p.setSize(url, s.Checkpoint.Size)
			st.Result, st.WitnessSize = PushCosigned, s.Checkpoint.Size
			return st
		case http.StatusConflict:
			size, err := strconv.ParseInt(strings.TrimSpace(string(answer)), 10, 64)
			if err != nil || size < 0 {
				return fail(PushFailed, "409 without a tree size (%q)", answer)
			}
			if size == old {
				// The witness holds a checkpoint of this very size with another root.
				st.WitnessSize = size
				return fail(PushSplitView, "the witness cosigned another root for %d entries", size)
			}
			old = size
			if size <= s.Checkpoint.Size {
				p.setSize(url, size)
			}
		case http.StatusUnprocessableEntity:
			return fail(PushSplitView, "the witness's checkpoint of %d entries is not a prefix of this log (consistency proof refused): %s", old, bytes.TrimSpace(answer))
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			return fail(PushFailed, "%s to %q: not followed; register the witness's own URL", resp.Status, resp.Header.Get("Location"))
		case http.StatusNotFound, http.StatusForbidden:
			return fail(PushRefused, "%s: the witness does not take this log (origin %s, key %s): its operator adds the log's verifier key; %s",
				resp.Status, s.Checkpoint.Origin, p.pub.Verifier().Name(), bytes.TrimSpace(answer))
		default:
			return fail(PushFailed, "%s: %s", resp.Status, bytes.TrimSpace(answer))
		}
	}
	return fail(PushFailed, "the witness's size kept moving (last %d)", old)
}

func (p *Pusher) setSize(url string, size int64) {
	p.mu.Lock()
	p.sizes[url] = size
	p.mu.Unlock()
}

// keep checks the witness's answer (note signature lines) with its key and records the
// cosignatures that verify with s. An answer with none is an error: the spec says it carries at
// least one.
func (p *Pusher) keep(partner string, s *Signed, verifier note.Verifier, answer []byte) error {
	text := s.Checkpoint.Text()
	signed := text + "\n" + string(answer)
	if !strings.HasSuffix(signed, "\n") {
		signed += "\n"
	}
	n, err := note.Open([]byte(signed), note.VerifierList(verifier))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return fmt.Errorf("the witness answered no cosignature by its registered key %s", verifier.Name())
		}
		return fmt.Errorf("the witness's answer: %v", err)
	}
	cs := p.pub.cosigs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.sigs[text] == nil {
		return nil // no longer among the recent checkpoints: nothing to serve it with
	}
	for _, sig := range n.Sigs {
		cs.sigs[text][sig.Name] = "— " + sig.Name + " " + sig.Base64
	}
	cs.latest[partner] = time.Now()
	merged, _ := cs.merged(text)
	return cs.keep(merged)
}
