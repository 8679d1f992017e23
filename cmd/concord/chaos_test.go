package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"concord/client"
	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/internal/pki"
	"concord/translog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The fault suite: real `concord serve` processes killed (SIGKILL) or frozen (SIGSTOP) under
// sustained writes, then audited as an auditor would. `go test` runs short versions; `make
// chaos` runs long ones through these variables:
//
//	CONCORD_CHAOS_DURATION  upper bound of a test's fault phase (default 30s)
//	CONCORD_CHAOS_KILLS     how many faults (kill -9, or freezes) a test makes at most
//	                        (default 5 kills, 2 freezes)
//	CONCORD_CHAOS_SEED      replays a run's choices (which node, when)

// chaosSettings are a fault test's bounds, from the environment.
type chaosSettings struct {
	duration time.Duration
	kills    int
	seed     uint64
}

// chaosFromEnv reads the settings; faults is the short version's number of faults.
func chaosFromEnv(t *testing.T, faults int) chaosSettings {
	t.Helper()
	s := chaosSettings{duration: 30 * time.Second, kills: faults, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv("CONCORD_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CONCORD_CHAOS_DURATION=%q: %v", v, err)
		}
		s.duration = d
	}
	if v := os.Getenv("CONCORD_CHAOS_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CONCORD_CHAOS_KILLS=%q: %v", v, err)
		}
		s.kills = n
	}
	if v := os.Getenv("CONCORD_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CONCORD_CHAOS_SEED=%q: %v", v, err)
		}
		s.seed = n
	}
	t.Logf("up to %d faults within %v; CONCORD_CHAOS_SEED=%d replays the choices", s.kills, s.duration, s.seed)
	return s
}

// authorities are the example registry's authorities, each with a provision of its own.
var authorities = []struct{ partner, basis string }{
	{"fr-pharos", "fr.cp.421-2-5"}, {"de-bka", "de.stgb.140"}, {"be-fedpol", "be.cp.140bis"}, {"gb-ctiru", "gb.ta2006.s1"},
}

// noticeSizes are the hash counts the writers cycle through, from one hash to a bulk list.
var noticeSizes = []int{1, 10, 100, 1000}

// workload is several authorities writing notices through the Go client, each on its own
// connection to every node given, and what the client told each of them.
type workload struct {
	mu sync.Mutex
	// acked: committed by the client's word (success, or UnverifiedReceiptError); id → hashes.
	acked      map[string]int
	unverified int
	// unknown: OutcomeUnknownError, committed or not.
	unknown map[string]bool
	// refused: any other error, which says the notice is not committed.
	refused map[string]error
	// proofErrs: receipts or checkpoints that failed verification; none is allowed.
	proofErrs []error
	// checkpoints: every checkpoint a client verified or a node served.
	checkpoints map[translog.Checkpoint]bool
	// progress is closed and replaced at every acknowledgement.
	progress chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

// dialWriter dials addrs as partner as an authority's system would: writes re-sent until their
// outcome is known, each attempt bounded so that a frozen node is given up for the next one.
func dialWriter(t *testing.T, certs pki.Layout, addrs []string, partner string) *client.Client {
	t.Helper()
	return dialWith(t, certs, partner, client.Config{Addrs: addrs, Timeout: 90 * time.Second, AttemptTimeout: 5 * time.Second})
}

// startWorkload starts one writer per authority on addrs.
func startWorkload(t *testing.T, certs pki.Layout, addrs []string) *workload {
	t.Helper()
	verifier, err := pki.LoadLogVerifier(certs.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{acked: map[string]int{}, unknown: map[string]bool{}, refused: map[string]error{},
		checkpoints: map[translog.Checkpoint]bool{}, progress: make(chan struct{}), stop: make(chan struct{})}
	for wi, a := range authorities {
		c := dialWriter(t, certs, addrs, a.partner)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				size := noticeSizes[(wi+i)%len(noticeSizes)]
				n := &concordv1.Notice{NoticeId: client.NewID(a.partner), LegalBasis: a.basis,
					Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION}}
				for h := range size {
					sum := sha256.Sum256(fmt.Appendf(nil, "%s notice %s hash %d", a.partner, n.NoticeId, h))
					n.Hashes = append(n.Hashes, &concordv1.Hash{Kind: concordv1.HashKind_HASH_KIND_SHA256, Value: sum[:]})
				}
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				_, err := c.SubmitNotice(ctx, n)
				w.record(n.NoticeId, size, err)
				if cp, ok := c.VerifiedCheckpoint(); ok {
					w.saw(cp) // the receipt's, which this writer alone moves on
				}
				if i%8 == 0 {
					// A checkpoint served outside any receipt, as a platform polling the log sees it.
					if resp, err := c.Log.GetCheckpoint(ctx, &concordv1.GetCheckpointRequest{}); err == nil {
						if cp, _, err := translog.OpenCheckpoint(resp.GetCheckpoint().GetNote(), verifier); err != nil {
							w.badCheckpoint(err)
						} else {
							w.saw(cp)
						}
					}
				}
				cancel()
			}
		}()
	}
	return w
}

// record files what the client said of notice id.
func (w *workload) record(id string, size int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var unverified *client.UnverifiedReceiptError
	var unknown *client.OutcomeUnknownError
	switch {
	case errors.Is(err, translog.ErrProof):
		w.proofErrs = append(w.proofErrs, fmt.Errorf("notice %s: %w", id, err))
	case err == nil, errors.As(err, &unverified):
		if unverified != nil {
			w.unverified++
		}
		w.acked[id] = size
		close(w.progress)
		w.progress = make(chan struct{})
	case errors.As(err, &unknown):
		w.unknown[id] = true
	default:
		w.refused[id] = err
	}
}

// saw files a checkpoint a client verified, or a node served: signed, hence binding.
func (w *workload) saw(cp translog.Checkpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkpoints[cp] = true
}

// badCheckpoint files a checkpoint a node served whose signature does not verify.
func (w *workload) badCheckpoint(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.proofErrs = append(w.proofErrs, fmt.Errorf("served checkpoint: %w", err))
}

// ackedCount is how many notices are acknowledged so far, and a channel closed at the next.
func (w *workload) ackedCount() (int, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), w.progress
}

// waitAcked waits until n notices are acknowledged.
func (w *workload) waitAcked(t *testing.T, n int, within time.Duration, why string) {
	t.Helper()
	deadline := time.After(within)
	for {
		have, next := w.ackedCount()
		if have >= n {
			return
		}
		select {
		case <-next:
		case <-deadline:
			t.Fatalf("%s: %d notices acknowledged, want %d within %v", why, have, n, within)
		}
	}
}

// finish stops the writers and waits for the calls they have in flight.
func (w *workload) finish() {
	close(w.stop)
	w.wg.Wait()
}

// audit reads everything back through the node at addr as the auditor observatory and checks
// the workload's record against it: every acknowledged notice is there, whole, once in the log;
// nothing refused is there; every checkpoint seen is consistent with the final one, by a
// consistency proof and by the log's own entries. It returns the notice ids present.
func (w *workload) audit(t *testing.T, certs pki.Layout, addr string) map[string]bool {
	t.Helper()
	c := dialAs(t, certs, addr, "observatory")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	final := checkpointOf(t, certs, c)

	// Every notice, whole: its stored envelope verifies, and its hashes are the signed ones.
	partners, err := c.Registry.ListPartners(ctx, &concordv1.ListPartnersRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*concordv1.SigningKey{}
	for _, p := range partners.GetPartners() {
		for _, k := range p.GetSigningKeys() {
			keys[k.GetKeyId()] = k
		}
	}
	present := map[string]bool{}
	req := &concordv1.ListNoticesRequest{PageSize: 100, View: concordv1.NoticeView_NOTICE_VIEW_FULL}
	for {
		resp, err := c.Notices.ListNotices(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range resp.GetNotices() {
			id := rec.GetNotice().GetNoticeId()
			if present[id] {
				t.Errorf("notice %s listed twice", id)
			}
			present[id] = true
			var signed concordv1.Notice
			if _, err := dsse.Open(rec.GetEnvelope(), dsse.PayloadTypeNotice, func(id string) (*concordv1.SigningKey, error) { return keys[id], nil }, rec.GetAcceptedAt().AsTime(), &signed); err != nil {
				t.Errorf("notice %s: stored envelope does not verify: %v", id, err)
			}
			hashes := len(signed.GetHashes())
			if int(rec.GetHashCount()) != hashes || len(rec.GetNotice().GetHashes()) != hashes || len(rec.GetJurisdictions()) == 0 {
				t.Errorf("notice %s half-applied: hash_count %d, %d hashes, %d signed, %d jurisdictions", id, rec.GetHashCount(), len(rec.GetNotice().GetHashes()), hashes, len(rec.GetJurisdictions()))
			}
			if want, ok := w.acked[id]; ok && want != hashes {
				t.Errorf("notice %s holds %d hashes, %d were acknowledged", id, hashes, want)
			}
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}

	// The log: its entries make the final checkpoint's tree, and hold each notice once.
	tree := translog.NewTree()
	logged := map[string]int{}
	stream, err := c.Log.GetEntries(ctx, &concordv1.GetEntriesRequest{End: uint64(final.Size)})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, leaf := range resp.GetLeaves() {
			if int64(leaf.GetIndex()) != tree.Size() {
				t.Fatalf("log entry %d arrived at position %d", leaf.GetIndex(), tree.Size())
			}
			if leaf.GetEntry() == nil {
				h, err := translog.HashesFromBytes([][]byte{leaf.GetLeafHash()})
				if err != nil {
					t.Fatal(err)
				}
				_, _ = tree.AppendLeafHash(h[0])
				continue
			}
			_, _ = tree.Append(leaf.GetEntry())
			var entry concordv1.LogEntry
			if err := proto.Unmarshal(leaf.GetEntry(), &entry); err != nil {
				t.Fatalf("log entry %d: %v", leaf.GetIndex(), err)
			}
			if env := entry.GetStatement(); env.GetPayloadType() == dsse.PayloadTypeNotice {
				var n concordv1.Notice
				if err := proto.Unmarshal(env.GetPayload(), &n); err != nil {
					t.Fatalf("log entry %d: %v", leaf.GetIndex(), err)
				}
				logged[n.GetNoticeId()]++
			}
		}
	}
	if tree.Size() != final.Size {
		t.Fatalf("the log served %d entries, its checkpoint has %d", tree.Size(), final.Size)
	}
	if root, _ := tree.Root(final.Size); root != final.Root {
		t.Fatalf("the log's entries do not make the root of its checkpoint (%d entries)", final.Size)
	}
	for id, k := range logged {
		if k != 1 {
			t.Errorf("notice %s is in the log %d times", id, k)
		}
		if !present[id] {
			t.Errorf("notice %s is in the log but not listed", id)
		}
	}
	for id := range present {
		if logged[id] == 0 {
			t.Errorf("notice %s is listed but not in the log", id)
		}
	}

	// What the clients were told.
	for _, err := range w.proofErrs {
		t.Errorf("verification failed: %v", err)
	}
	for id := range w.acked {
		if !present[id] {
			t.Errorf("acknowledged notice %s is missing", id)
		}
	}
	for id, err := range w.refused {
		if present[id] {
			t.Errorf("notice %s is committed, but its writer was told it failed: %v", id, err)
		}
	}
	for id := range present {
		if _, ok := w.acked[id]; !ok && !w.unknown[id] {
			t.Errorf("notice %s is present but no writer sent it", id)
		}
	}

	// Every checkpoint seen is consistent with the final one: by the node's proof, and by the
	// tree the entries make.
	var seen []translog.Checkpoint
	for cp := range w.checkpoints {
		seen = append(seen, cp)
	}
	slices.SortFunc(seen, func(a, b translog.Checkpoint) int { return int(a.Size - b.Size) })
	for _, cp := range seen {
		if cp.Size > final.Size {
			t.Fatalf("a checkpoint of %d entries was seen, the final log has %d", cp.Size, final.Size)
		}
		if root, _ := tree.Root(cp.Size); root != cp.Root {
			t.Fatalf("the checkpoint of %d entries seen earlier is not a prefix of the final log", cp.Size)
		}
		if cp.Size == 0 || cp.Size == final.Size {
			continue
		}
		proof, err := c.Log.GetConsistencyProof(ctx, &concordv1.GetConsistencyProofRequest{OldSize: uint64(cp.Size), NewSize: uint64(final.Size)})
		if err != nil {
			t.Fatal(err)
		}
		hashes, _ := translog.HashesFromBytes(proof.GetHashes())
		if err := translog.CheckConsistency(hashes, cp.Size, cp.Root, final.Size, final.Root); err != nil {
			t.Fatalf("checkpoint %d is not consistent with the final one (%d): %v", cp.Size, final.Size, err)
		}
	}
	if len(seen) < 10 {
		t.Errorf("only %d checkpoints seen: too few to say anything", len(seen))
	}
	// Why writes were refused, by kind: none of them is committed, but they say what clients
	// go through.
	reasons := map[string]int{}
	for _, err := range w.refused {
		reasons[status.Code(err).String()+": "+digits.ReplaceAllString(firstLine(status.Convert(err).Message(), 200), "N")]++
	}
	for reason, k := range reasons {
		t.Logf("refused %d times: %s", k, reason)
	}
	unknownPresent := 0
	for id := range w.unknown {
		if present[id] {
			unknownPresent++
		}
	}
	t.Logf("acknowledged %d (%d with an unverified receipt), outcome unknown %d (%d of them present), refused %d; present %d; log of %d entries; %d checkpoints seen, all consistent with the final one",
		len(w.acked), w.unverified, len(w.unknown), unknownPresent, len(w.refused), len(present), final.Size, len(seen))
	return present
}

// noAlarms checks that no member of the cluster reports an alarm, asking each running process in
// turn, and that no process, running or gone, logged one (an alarm a repair cleared counts too).
func noAlarms(t *testing.T, certs pki.Layout, running, all []*node) {
	t.Helper()
	for _, p := range running {
		c := dialAs(t, certs, p.grpcAddr, "hub-ops")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := c.Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
		cancel()
		if err != nil {
			t.Fatalf("list members through %s: %v", p.grpcAddr, err)
		}
		for _, m := range resp.GetMembers() {
			if len(m.GetAlarms()) > 0 {
				t.Errorf("%s reports alarms through %s: %v", m.GetNodeId(), p.grpcAddr, m.GetAlarms())
			}
		}
	}
	for _, p := range all {
		for _, line := range p.logs.alarmLines() {
			t.Errorf("process %d logged: %s", p.cmd.Process.Pid, line)
		}
	}
}

// sameCheckpoint waits until every node serves the same checkpoint (size and root).
func sameCheckpoint(t *testing.T, certs pki.Layout, nodes []*clusterNode) translog.Checkpoint {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var cps []translog.Checkpoint
		for _, n := range nodes {
			cps = append(cps, checkpointOf(t, certs, dialAs(t, certs, n.grpcAddr, "observatory")))
		}
		same := true
		for _, cp := range cps[1:] {
			same = same && cp == cps[0]
		}
		if same {
			return cps[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes' checkpoints still differ after 60 s: %v", cps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// staleBoundedRead is the read that tolerates a second of staleness: a leader frozen longer
// than that, resumed, must not answer it from its old state.
const staleBoundedRead = "Match max_staleness=1s"

// probe is one read sent to a node, and what came back.
type probe struct {
	what string
	// queued: sent while the node was frozen.
	queued bool
	err    error
	// current: the answer holds the notice written while the node was frozen.
	current bool
}

// readsOf sends the reads of a notice (GetNotice, Match: linearizable, and with max_staleness
// 1 s) to one node, without failing over, and reports what each answered.
func readsOf(ctx context.Context, reader, platform *client.Client, queued bool, id string, hash *concordv1.Hash) []probe {
	var (
		mu     sync.Mutex
		probes []probe
		wg     sync.WaitGroup
	)
	add := func(what string, read func() (bool, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			current, err := read()
			mu.Lock()
			probes = append(probes, probe{what, queued, err, current})
			mu.Unlock()
		}()
	}
	add("GetNotice", func() (bool, error) {
		resp, err := reader.Notices.GetNotice(ctx, &concordv1.GetNoticeRequest{NoticeId: id})
		return resp.GetNotice().GetNotice().GetNoticeId() == id, err
	})
	match := func(req *concordv1.MatchRequest) (bool, error) {
		resp, err := platform.Matches.Match(ctx, req)
		for _, r := range resp.GetResults() {
			for _, m := range r.GetMatches() {
				if m.GetNoticeId() == id {
					return true, err
				}
			}
		}
		return false, err
	}
	add("Match", func() (bool, error) {
		return match(&concordv1.MatchRequest{Hashes: []*concordv1.Hash{hash}})
	})
	add(staleBoundedRead, func() (bool, error) {
		return match(&concordv1.MatchRequest{Hashes: []*concordv1.Hash{hash}, MaxStaleness: durationpb.New(time.Second)})
	})
	wg.Wait()
	return probes
}

// TestFrozenLeader freezes the leader of a three-node cluster (SIGSTOP) while four authorities
// write through clients that know every node: the two others elect a leader within 10 s and
// keep taking writes, the clients failing over. A notice is written during the freeze. Resumed
// (SIGCONT), the old leader answers the reads sent to it — some queued while it was frozen,
// the others right after — either Unavailable or with that notice, never from its state of
// before the freeze; it steps down and catches up. At the end the three nodes serve the same
// log, every acknowledged notice is there, and no node raised an alarm.
func TestFrozenLeader(t *testing.T) {
	t.Parallel()
	cfg := chaosFromEnv(t, 2)
	dir := t.TempDir()
	certs, nodes := startClusterProcesses(t, dir, 3, "--rate-limit", "-1")
	byID := map[string]*clusterNode{}
	var addrs []string
	var procs []*node
	for _, n := range nodes {
		byID[n.id] = n
		addrs = append(addrs, n.grpcAddr)
		procs = append(procs, n.node)
	}
	w := startWorkload(t, certs, addrs)
	start := time.Now()
	freezes := 0
	for freezes < cfg.kills && time.Since(start) < cfg.duration {
		have, _ := w.ackedCount()
		w.waitAcked(t, have+20, 60*time.Second, "writes before the freeze")
		leaderID := leaderOf(certs, t, nodes)
		if leaderID == "" {
			t.Fatal("no leader")
		}
		leader := byID[leaderID]
		var survivors []*clusterNode
		var survivorAddrs []string
		for _, n := range nodes {
			if n != leader {
				survivors = append(survivors, n)
				survivorAddrs = append(survivorAddrs, n.grpcAddr)
			}
		}
		// Connections to the leader alone, open before it freezes.
		reader := dialAs(t, certs, leader.grpcAddr, "observatory")
		platform := dialAs(t, certs, leader.grpcAddr, "videoshare")
		for _, c := range []*client.Client{reader, platform} {
			if _, err := c.Registry.WhoAmI(context.Background(), &concordv1.WhoAmIRequest{}); err != nil {
				t.Fatal(err)
			}
		}

		if err := leader.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		frozenAt := time.Now()
		freezes++
		resumed := false
		t.Cleanup(func() {
			if !resumed {
				_ = leader.cmd.Process.Signal(syscall.SIGCONT)
			}
		})
		for newLeader := ""; newLeader == "" || newLeader == leaderID; newLeader = leaderOf(certs, t, survivors) {
			if time.Since(frozenAt) > 10*time.Second {
				t.Fatalf("no new leader within 10 s of freezing the leader %s", leaderID)
			}
		}
		t.Logf("freeze %d: leader %s frozen; another leads %v later", freezes, leaderID, time.Since(frozenAt).Round(time.Millisecond))

		// A notice written while it is frozen, and the writers carrying on without it.
		during := &concordv1.Notice{NoticeId: client.NewID("fr-pharos"), LegalBasis: "fr.cp.421-2-5",
			Categories: []concordv1.Category{concordv1.Category_CATEGORY_GLORIFICATION},
			Hashes:     []*concordv1.Hash{sha256Of(fmt.Sprintf("written while %s is frozen, freeze %d", leaderID, freezes))}}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err := dialWriter(t, certs, survivorAddrs, "fr-pharos").SubmitNotice(ctx, during)
		cancel()
		w.record(during.NoticeId, 1, err)
		if err != nil && !errors.As(err, new(*client.UnverifiedReceiptError)) {
			t.Fatalf("a write to the two nodes left: %v", err)
		}
		// Reads of it sent to the frozen node, where they wait, while the writers carry on
		// without it.
		ctx, cancel = context.WithTimeout(context.Background(), 90*time.Second)
		queued := make(chan []probe, 1)
		go func() { queued <- readsOf(ctx, reader, platform, true, during.NoticeId, during.Hashes[0]) }()
		have, _ = w.ackedCount()
		w.waitAcked(t, have+20, 60*time.Second, "writes while the leader is frozen")

		// Resumed, it answers those reads, then the same reads again until it has caught up:
		// Unavailable or current, nothing else.
		frozenFor := time.Since(frozenAt)
		if err := leader.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		resumed = true
		resumedAt := time.Now()
		answers := <-queued
		caughtUp := false
		for !caughtUp {
			if time.Since(resumedAt) > 60*time.Second {
				t.Fatalf("%s still does not serve the notice written during its freeze 60 s after it resumed", leaderID)
			}
			round := readsOf(ctx, reader, platform, false, during.NoticeId, during.Hashes[0])
			answers = append(answers, round...)
			caughtUp = true
			for _, p := range round {
				caughtUp = caughtUp && p.current
			}
		}
		cancel()
		unavailable := 0
		for _, p := range answers {
			switch {
			case p.current:
			case status.Code(p.err) == codes.Unavailable:
				unavailable++
			default:
				t.Errorf("%s, resumed after %v frozen, answered %s (queued %v) from before its freeze: %v", leaderID, frozenFor.Round(time.Millisecond), p.what, p.queued, p.err)
			}
		}
		t.Logf("freeze %d: %s frozen %v; after SIGCONT it answered %d reads (%d Unavailable) and served the current state %v later",
			freezes, leaderID, frozenFor.Round(time.Millisecond), len(answers), unavailable, time.Since(resumedAt).Round(time.Millisecond))

		// It follows now.
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := dialAs(t, certs, leader.grpcAddr, "hub-ops").Cluster.ListMembers(ctx, &concordv1.ListMembersRequest{})
			cancel()
			if err == nil && resp.GetLeaderId() != "" && resp.GetLeaderId() != leaderID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has not stepped down 30 s after it resumed: %v %v", leaderID, resp, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	have, _ := w.ackedCount()
	w.waitAcked(t, have+10, 60*time.Second, "writes after the last freeze")
	w.finish()

	sameCheckpoint(t, certs, nodes)
	sameNotices(t, certs, nodes, w.audit(t, certs, nodes[0].grpcAddr))
	noAlarms(t, certs, procs, procs)
}

// sameNotices checks that every node but the first, which the audit read, holds exactly the
// notices present there.
func sameNotices(t *testing.T, certs pki.Layout, nodes []*clusterNode, present map[string]bool) {
	t.Helper()
	for _, n := range nodes[1:] {
		have := noticeIDs(t, dialAs(t, certs, n.grpcAddr, "observatory"))
		if len(have) != len(present) {
			t.Errorf("%s holds %d notices, %s %d", n.id, len(have), nodes[0].id, len(present))
		}
		for id := range present {
			if !have[id] {
				t.Errorf("%s lacks notice %s", n.id, id)
			}
		}
	}
}

// digits are the numbers in an error message (ports, sizes), which do not make another reason.
var digits = regexp.MustCompile(`[0-9]+`)

// firstLine is s up to its first newline, cut at max bytes.
func firstLine(s string, max int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
