package transparency

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	concordv1 "concord/gen/concord/v1"
	"concord/internal/atomicfile"
	"concord/server/fault"
	"concord/server/signed"
	"concord/translog"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Witnesses (C2SP tlog-witness, tlog-cosignature) are partners that follow the log, check that
// every checkpoint is consistent with the previous ones they saw, and cosign it. A client that
// requires k of n cosignatures knows that k independent parties saw the same log: the hub could
// not show it one history and others another.

// CosignedFile keeps the newest checkpoint that carries cosignatures, so that it survives a
// restart.
const CosignedFile = "cosigned"

// recentCheckpoints is how many signed checkpoints accept cosignatures: a witness cosigns one it
// fetched a moment ago, by then perhaps no longer the latest.
const recentCheckpoints = 256

// cosignatures holds the cosignatures of the recent checkpoints.
type cosignatures struct {
	mu     sync.Mutex
	order  []string                     // checkpoint texts, oldest first
	byText map[string]*Signed           // the hub-signed checkpoint
	sigs   map[string]map[string]string // text → witness name → signature line
	path   string
	// latest is when each witness (its partner id) last cosigned, since the node started.
	latest map[string]time.Time
}

func newCosignatures(dataDir string, verifier note.Verifier) *cosignatures {
	cs := &cosignatures{byText: map[string]*Signed{}, sigs: map[string]map[string]string{}, path: filepath.Join(dataDir, CosignedFile),
		latest: map[string]time.Time{}}
	// The newest cosigned checkpoint from before a restart. Its witness signatures were checked
	// when they came; the hub's own is checked again now.
	if b, err := atomicfile.ReadReserved(cs.path); err == nil {
		if cp, n, err := translog.OpenCheckpoint(string(b), verifier); err == nil {
			s := &Signed{Checkpoint: cp, Note: string(b)}
			cs.remember(s)
			for _, sig := range n.UnverifiedSigs {
				cs.sigs[n.Text][sig.Name] = "— " + sig.Name + " " + sig.Base64
			}
		}
	}
	return cs
}

// remember records a checkpoint the hub signed.
func (cs *cosignatures) remember(s *Signed) {
	text := s.Checkpoint.Text()
	if _, ok := cs.byText[text]; ok {
		return
	}
	cs.byText[text] = s
	cs.sigs[text] = map[string]string{}
	cs.order = append(cs.order, text)
	for len(cs.order) > recentCheckpoints {
		old := cs.order[0]
		cs.order = cs.order[1:]
		delete(cs.byText, old)
		delete(cs.sigs, old)
	}
}

// merged returns a checkpoint's note with every cosignature held for it, and how many.
func (cs *cosignatures) merged(text string) (*Signed, int) {
	s := cs.byText[text]
	if s == nil {
		return nil, 0
	}
	sigs := cs.sigs[text]
	if len(sigs) == 0 {
		return s, 0
	}
	names := make([]string, 0, len(sigs))
	for name := range sigs {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(s.Note, "\n"))
	b.WriteString("\n")
	for _, name := range names {
		b.WriteString(sigs[name])
		b.WriteString("\n")
	}
	return &Signed{Checkpoint: s.Checkpoint, Note: b.String()}, len(sigs)
}

// keep writes the newest cosigned checkpoint, so that it survives a restart. The caller holds
// cs.mu.
func (cs *cosignatures) keep(s *Signed) error {
	if err := (atomicfile.Reserved{Path: cs.path, Size: 16 << 10}).Write([]byte(s.Note)); err != nil {
		return fmt.Errorf("keep the cosigned checkpoint: %w", err)
	}
	return nil
}

// AddCosignature records a witness's cosignature of one of the hub's recent checkpoints.
func (s *Service) AddCosignature(ctx context.Context, req *concordv1.AddCosignatureRequest) (*concordv1.AddCosignatureResponse, error) {
	c, err := signed.Caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.state().Partner(nil, c.PartnerID)
	if err != nil {
		return nil, err
	}
	if p.GetWitnessKey() == "" {
		return nil, fault.Denied("partner %q has no registered witness key: the hub's operations team sets witness_key in the registry", c.PartnerID)
	}
	v, err := formats.NewVerifierForCosignatureV1(p.GetWitnessKey())
	if err != nil {
		return nil, fmt.Errorf("partner %s: registered witness key: %w", c.PartnerID, err)
	}
	n, err := note.Open([]byte(req.GetCosignedCheckpoint()), note.VerifierList(v))
	if err != nil {
		return nil, fault.Invalid("cosigned_checkpoint carries no valid cosignature by the witness key %s of %s: %v", v.Name(), c.PartnerID, err)
	}
	cs := s.pub.cosigs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.byText[n.Text] == nil {
		return nil, fault.Precondition("cosigned_checkpoint is not one of the %d checkpoints this hub signed last: fetch a fresh one with GetCheckpoint and cosign it", recentCheckpoints)
	}
	for _, sig := range n.Sigs {
		cs.sigs[n.Text][sig.Name] = "— " + sig.Name + " " + sig.Base64
	}
	cs.latest[c.PartnerID] = time.Now()
	merged, count := cs.merged(n.Text)
	if err := cs.keep(merged); err != nil {
		return nil, err
	}
	return &concordv1.AddCosignatureResponse{Checkpoint: merged.Proto(), Cosignatures: uint32(count)}, nil
}

// Cosignatures returns when each witness (by partner id) last cosigned a checkpoint, since the
// node started.
func (p *Publisher) Cosignatures() map[string]time.Time {
	cs := p.cosigs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[string]time.Time, len(cs.latest))
	for w, at := range cs.latest {
		out[w] = at
	}
	return out
}

// cosigned returns the newest checkpoint with at least min cosignatures.
func (p *Publisher) cosigned(min int) (*Signed, error) {
	cs := p.cosigs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := len(cs.order) - 1; i >= 0; i-- {
		if s, n := cs.merged(cs.order[i]); n >= min {
			return s, nil
		}
	}
	return nil, fault.Precondition("no recent checkpoint carries %d witness cosignatures yet: retry later, or ask for fewer", min)
}

// withCosignatures returns s merged with the cosignatures held for it.
func (p *Publisher) withCosignatures(s *Signed) *Signed {
	cs := p.cosigs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if m, _ := cs.merged(s.Checkpoint.Text()); m != nil {
		return m
	}
	return s
}
