package server_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"concord/client"
	concordv1 "concord/gen/concord/v1"
	"concord/gen/concord/v1/concordv1connect"
	"concord/internal/pki"
	"concord/internal/version"
	"concord/server"
	"concord/server/fsm"
	"concord/server/ratelimit"
	"concord/server/servertest"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestPrometheusScrapesNode: a real Prometheus scrapes a node while the test matches on both
// ports, submits notices, reports one action, lets deadlines pass, opens feeds (one over the
// partner's stream cap), has a witness cosign and takes a snapshot; its HTTP API then answers
// with exactly what the test did, series by series, and `promtool check metrics` accepts the
// exposition.
func TestPrometheusScrapesNode(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	limits := &ratelimit.Config{Partners: map[string]ratelimit.Limits{"socialnet": {Streams: map[string]int{"WatchNotices": 1}}}}
	n := servertest.Start(t, servertest.Options{Metrics: true, Now: clock.Now, Limits: limits})
	if n.MetricsAddr() == "" || !strings.HasPrefix(n.MetricsAddr(), "127.0.0.1:") {
		t.Fatalf("metrics address %q, want a loopback port", n.MetricsAddr())
	}
	prom := startPrometheus(t, scrapeTarget{addr: n.MetricsAddr()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A platform follows the feed; a second feed is over its cap of one.
	socialnet := n.Client(t, "socialnet")
	feed, err := socialnet.Notices.WatchNotices(ctx, &concordv1.WatchNoticesRequest{FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	var received, lastReceived atomic.Uint64
	go func() {
		for {
			m, err := feed.Recv()
			if err != nil {
				return
			}
			if ev := m.GetEvent(); ev != nil {
				lastReceived.Store(ev.GetCursor())
				received.Add(1)
			}
		}
	}()
	prom.waitValue(t, `concord_feed_watchers{partner="socialnet"}`, 1)
	second, err := socialnet.Notices.WatchNotices(ctx, &concordv1.WatchNoticesRequest{})
	if err == nil {
		_, err = second.Recv()
	}
	if codeOf(err) != codes.ResourceExhausted {
		t.Fatalf("a second feed over the cap: %v, want ResourceExhausted", err)
	}

	// Three notices: six SHA-256 hashes and one PDQ.
	r := rand.New(rand.NewPCG(1, 2))
	pdq := randomPDQ(r, 1)[0]
	fr := n.Client(t, "fr-pharos")
	var recs []*concordv1.NoticeRecord
	for i := range 3 {
		notice := glorificationNotice(fmt.Sprint("metrics a", i), fmt.Sprint("metrics b", i))
		if i == 0 {
			notice.Hashes = append(notice.Hashes, pdq)
		}
		rec, err := fr.SubmitNotice(ctx, notice)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}

	// Matching: five calls on the gRPC port (two SHA-256 and one PDQ each), three on the HTTPS
	// port (one SHA-256 each).
	videoshare := n.Client(t, "videoshare")
	grpcReq := &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash("metrics a0"), sha256Hash("unknown"), pdq}}
	for range 5 {
		if _, err := videoshare.Matches.Match(ctx, grpcReq); err != nil {
			t.Fatal(err)
		}
	}
	connectMatch := concordv1connect.NewMatchServiceClient(connectClient(t, n, "videoshare"))
	for range 3 {
		if _, err := connectMatch.Match(ctx, &concordv1.MatchRequest{Hashes: []*concordv1.Hash{sha256Hash("metrics b1")}}); err != nil {
			t.Fatal(err)
		}
	}
	// A platform may not submit notices: refused from the call's headers, before it begins.
	if _, err := videoshare.Notices.SubmitNotice(ctx, &concordv1.SubmitNoticeRequest{}); codeOf(err) != codes.PermissionDenied {
		t.Fatalf("a platform submitting a notice: %v, want PermissionDenied", err)
	}

	// videoshare removes the first notice's content everywhere it must act; nobody acts on the
	// other two.
	var actedIn []string
	for _, js := range recs[0].GetJurisdictions() {
		if js.GetActionable() {
			actedIn = append(actedIn, js.GetJurisdiction())
		}
	}
	report, err := videoshare.ReportAction(ctx, &concordv1.ActionReport{NoticeId: recs[0].GetNotice().GetNoticeId(),
		Jurisdictions: actedIn, Outcome: concordv1.ActionOutcome_ACTION_OUTCOME_REMOVED, OccurredAt: timestampNow(clock)})
	if err != nil {
		t.Fatal(err)
	}
	logSize := report.GetReceipt().GetCheckpoint().GetSize()

	// Before any deadline: every unanswered obligation is open.
	open, overdue := expectedObligations(recs, map[string][]string{"videoshare": actedIn}, clock.Now())
	for _, pair := range sortedPairs(open, overdue) {
		sel := fmt.Sprintf(`{platform=%q,jurisdiction=%q}`, pair[0], pair[1])
		prom.waitValue(t, "concord_obligations_open"+sel, float64(open[pair]))
		prom.waitValue(t, "concord_obligations_overdue"+sel, float64(overdue[pair]))
	}
	// Two hours later the deadlines (one hour) have passed: what nobody answered is overdue.
	clock.Advance(2 * time.Hour)
	open, overdue = expectedObligations(recs, map[string][]string{"videoshare": actedIn}, clock.Now())
	var totalOverdue int
	for _, pair := range sortedPairs(open, overdue) {
		sel := fmt.Sprintf(`{platform=%q,jurisdiction=%q}`, pair[0], pair[1])
		prom.waitValue(t, "concord_obligations_open"+sel, float64(open[pair]))
		prom.waitValue(t, "concord_obligations_overdue"+sel, float64(overdue[pair]))
		totalOverdue += overdue[pair]
	}
	if overdue[[2]string{"videoshare", "FR"}] != 2 || overdue[[2]string{"socialnet", "FR"}] != 3 {
		t.Fatalf("expected overdue obligations in FR: %v (want videoshare 2, socialnet 3)", overdue)
	}
	prom.waitValue(t, `sum(concord_obligations_overdue)`, float64(totalOverdue))
	// GetCompliance, asked by an auditor, says the same (every obligation here is in force).
	comp, err := n.Client(t, "observatory").Actions.GetCompliance(ctx, &concordv1.GetComplianceRequest{MaxItems: 1000})
	if err != nil {
		t.Fatal(err)
	}
	fromAPI := map[concordv1.ComplianceStatus]map[[2]string]int{}
	for _, it := range comp.GetItems() {
		if fromAPI[it.GetStatus()] == nil {
			fromAPI[it.GetStatus()] = map[[2]string]int{}
		}
		fromAPI[it.GetStatus()][[2]string{it.GetPlatform(), it.GetJurisdiction()}]++
	}
	for _, pair := range sortedPairs(open, overdue) {
		if got := fromAPI[concordv1.ComplianceStatus_COMPLIANCE_STATUS_OVERDUE][pair]; got != overdue[pair] {
			t.Errorf("GetCompliance: %d overdue for %v, the metrics %d", got, pair, overdue[pair])
		}
		if got := fromAPI[concordv1.ComplianceStatus_COMPLIANCE_STATUS_OPEN][pair]; got != open[pair] {
			t.Errorf("GetCompliance: %d open for %v, the metrics %d", got, pair, open[pair])
		}
	}

	// A witness cosigns the latest checkpoint; the node snapshots.
	w, err := client.OpenWitness(filepath.Join(t.TempDir(), "witness"), loadLogVerifier(t, n), n.PKI.WitnessKey("observatory"))
	if err != nil {
		t.Fatal(err)
	}
	beforeCosign := time.Now()
	if _, err := w.Step(ctx, n.Client(t, "observatory")); err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}

	// RPC series, the same on both ports.
	prom.waitValue(t, `concord_grpc_server_handled_total{protocol="grpc",grpc_service="concord.v1.MatchService",grpc_method="Match",grpc_code="OK"}`, 5)
	prom.waitValue(t, `concord_grpc_server_handled_total{protocol="connect",grpc_service="concord.v1.MatchService",grpc_method="Match",grpc_code="OK"}`, 3)
	prom.waitValue(t, `sum(concord_grpc_server_handling_seconds_count{grpc_method="Match"})`, 8)
	prom.waitValue(t, `concord_grpc_server_started_total{protocol="connect",grpc_method="Match",grpc_type="unary"}`, 3)
	prom.waitValue(t, `concord_grpc_server_handled_total{protocol="grpc",grpc_method="SubmitNotice",grpc_code="OK"}`, 3)
	prom.waitValue(t, `concord_grpc_server_handled_total{protocol="grpc",grpc_method="WatchNotices",grpc_code="ResourceExhausted"}`, 1)
	prom.waitValue(t, `concord_grpc_server_refused_before_call_total{grpc_code="PermissionDenied"}`, 1)
	prom.waitValue(t, `concord_ratelimit_refusals_total{partner="socialnet",limit="streams"}`, 1)

	// Matching and the index.
	prom.waitValue(t, `concord_match_lookup_duration_seconds_count{kind="SHA256"}`, 5*2+3)
	prom.waitValue(t, `concord_match_lookup_duration_seconds_count{kind="PDQ"}`, 5)
	prom.waitValue(t, `concord_match_index_hashes{kind="SHA256"}`, 6)
	prom.waitValue(t, `concord_match_index_hashes{kind="PDQ"}`, 1)
	prom.waitValue(t, `concord_match_index_hashes{kind="MD5"}`, 0)
	prom.waitValue(t, `concord_match_scan_fallbacks_total`, 0)
	prom.waitValue(t, `concord_match_families`, 0) // a few hashes: no families
	prom.waitValue(t, `concord_match_family_hashes`, 0)
	prom.waitValue(t, `concord_match_dense_hashes`, 0) // nor crowds
	prom.waitValue(t, `concord_match_index_bytes > bool 0`, 1)

	// Raft and the state machine.
	prom.waitValue(t, `concord_raft_state{state="leader"}`, 1)
	prom.waitValue(t, `concord_raft_has_leader`, 1)
	prom.waitValue(t, `concord_raft_voters`, 1)
	prom.waitValue(t, `concord_raft_last_contact_seconds`, 0)
	prom.waitValue(t, `concord_fsm_applied_index`, float64(n.Applied()))
	prom.waitAll(t, `concord_raft_commit_index >= concord_fsm_applied_index`, 1, "present", func(float64) bool { return true })
	prom.waitValue(t, `concord_fsm_apply_duration_seconds_count{command="SubmitNotice"}`, 3)
	prom.waitValue(t, `concord_fsm_apply_duration_seconds_count{command="ReportAction"}`, 1)
	snapIndex := n.RaftStats()["last_snapshot_index"]
	prom.waitFor(t, `concord_raft_last_snapshot_index`, "the snapshot's index "+snapIndex, func(s []promSample) bool {
		return len(s) == 1 && fmt.Sprint(s[0].Value) == snapIndex
	})
	prom.waitAll(t, `time() - concord_raft_last_snapshot_timestamp_seconds`, 1, "under a minute", func(v float64) bool { return v >= -1 && v < 60 })

	// The transparency log, its checkpoint and its witness.
	prom.waitValue(t, `concord_log_entries`, float64(logSize))
	prom.waitValue(t, `concord_log_checkpoint_entries`, float64(logSize))
	prom.waitAll(t, `time() - concord_log_checkpoint_timestamp_seconds`, 1, "under a minute", func(v float64) bool { return v >= -1 && v < 60 })
	prom.waitAll(t, `concord_witness_cosignature_timestamp_seconds{witness="observatory"}`, 1, "after the witness's step",
		func(v float64) bool {
			return v >= float64(beforeCosign.UnixMilli())/1000 && v <= float64(time.Now().Unix()+1)
		})

	// The feed: the watcher read every event.
	prom.waitValue(t, `concord_feed_watcher_lag_events{partner="socialnet"}`, 0)
	if received.Load() < 3 {
		t.Fatalf("the watcher received %d events, want the 3 notices at least", received.Load())
	}
	prom.waitValue(t, `concord_feed_cursor`, float64(lastReceived.Load()))

	// Notices and their adoption.
	prom.waitValue(t, `concord_notices{state="ACTIVE",jurisdiction="FR"}`, 3)
	prom.waitValue(t, `concord_notice_adoptions{jurisdiction="FR",status="ISSUING"}`, 3)

	// Disk, integrity, readiness.
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.DataDir, &st); err != nil {
		t.Fatal(err)
	}
	prom.waitValue(t, `concord_datadir_size_bytes`, float64(st.Blocks*uint64(st.Bsize)))
	free := float64(st.Bavail * uint64(st.Bsize))
	prom.waitAll(t, `concord_datadir_free_bytes`, 1, "within 256 MiB of statfs", func(v float64) bool { return v > free-(256<<20) && v < free+(256<<20) })
	prom.waitAll(t, `concord_datadir_reserved_bytes`, 1, "at least the margin", func(v float64) bool { return v >= 16<<20 })
	prom.waitAll(t, `concord_integrity_alarm`, 4, "0", func(v float64) bool { return v == 0 })
	prom.waitValue(t, `concord_node_ready`, 1)
	// Which Concord it runs, and when the certificate it serves expires.
	prom.waitValue(t, fmt.Sprintf(`concord_build_info{release=%q,newest_command="%d"}`, version.Get().Release, fsm.NewestCommand), 1)
	prom.waitValue(t, `concord_tls_certificate_expiry_timestamp_seconds{certificate="server"}`, float64(n.ServerCertificate().NotAfter.Unix()))
	// No cross-node log check on a node alone.
	prom.waitValue(t, `absent(concord_log_check_timestamp_seconds)`, 1)

	promtoolCheckMetrics(t, scrape(t, n.MetricsAddr()))
}

// timestampNow is the test clock's time as a protobuf timestamp.
func timestampNow(c *testClock) *timestamppb.Timestamp { return timestamppb.New(c.Now()) }

// expectedObligations works out, from the notices as submitted and the jurisdictions each
// platform reported action in (on the first notice), the open and overdue obligations per
// {platform, jurisdiction} at now.
func expectedObligations(recs []*concordv1.NoticeRecord, actedOnFirst map[string][]string, now time.Time) (open, overdue map[[2]string]int) {
	open, overdue = map[[2]string]int{}, map[[2]string]int{}
	for _, platform := range []string{"videoshare", "socialnet"} {
		for i, rec := range recs {
			for _, js := range rec.GetJurisdictions() {
				if !js.GetActionable() {
					continue
				}
				key := [2]string{platform, js.GetJurisdiction()}
				open[key] += 0
				overdue[key] += 0
				if i == 0 && containsString(actedOnFirst[platform], js.GetJurisdiction()) {
					continue
				}
				if d := js.GetActionDeadline(); d != nil && now.After(d.AsTime()) {
					overdue[key]++
				} else {
					open[key]++
				}
			}
		}
	}
	return open, overdue
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedPairs(ms ...map[[2]string]int) [][2]string {
	seen := map[[2]string]bool{}
	var out [][2]string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sortPairs(out)
	return out
}

func sortPairs(ps [][2]string) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j][0]+"\x00"+ps[j][1] < ps[j-1][0]+"\x00"+ps[j-1][1]; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func loadLogVerifier(t testing.TB, n *servertest.Node) note.Verifier {
	t.Helper()
	v, err := pki.LoadLogVerifier(n.PKI.LogPub())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPrometheusScrapesCluster: a real Prometheus scrapes the three nodes of a cluster; it finds
// one leader that every node knows, three voters everywhere, the same log on every node and
// every node's cross-node log check agreeing with the two others, the notices replicated, and
// each write counted once by the node that took the call.
func TestPrometheusScrapesCluster(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t, 3, servertest.Options{Metrics: true, Cluster: server.ClusterConfig{LogCheckInterval: 200 * time.Millisecond}})
	var targets []scrapeTarget
	for i, n := range c.Nodes {
		targets = append(targets, scrapeTarget{addr: n.MetricsAddr(), labels: map[string]string{"node": servertest.NodeID(i)}})
	}
	prom := startPrometheus(t, targets...)
	ctx := context.Background()
	fr := c.Client(t, "fr-pharos")
	for i := range 2 {
		if _, err := fr.SubmitNotice(ctx, glorificationNotice(fmt.Sprint("cluster metrics ", i))); err != nil {
			t.Fatal(err)
		}
	}
	cp, ok := fr.VerifiedCheckpoint()
	if !ok {
		t.Fatal("no verified checkpoint after two receipts")
	}
	logSize := cp.Size
	leader := servertest.NodeID(c.Leader(t, 30*time.Second))

	prom.waitAll(t, `concord_raft_state{state="leader"} == 1`, 1, "the leader", func(float64) bool { return true })
	prom.waitValue(t, fmt.Sprintf(`concord_raft_state{state="leader",node=%q}`, leader), 1)
	prom.waitAll(t, `concord_raft_state{state="follower"} == 1`, 2, "followers", func(float64) bool { return true })
	prom.waitAll(t, `concord_raft_has_leader`, 3, "1", func(v float64) bool { return v == 1 })
	prom.waitAll(t, `concord_raft_voters`, 3, "3", func(v float64) bool { return v == 3 })
	prom.waitValue(t, `max(concord_raft_term) - min(concord_raft_term)`, 0)
	prom.waitAll(t, `concord_raft_last_contact_seconds`, 3, "recent", func(v float64) bool { return v < 5 })
	prom.waitAll(t, `concord_log_entries`, 3, fmt.Sprint(logSize), func(v float64) bool { return v == float64(logSize) })
	prom.waitValue(t, `max(concord_fsm_applied_index) - min(concord_fsm_applied_index)`, 0)
	prom.waitAll(t, `concord_log_check_voters{verdict="agree"}`, 3, "2", func(v float64) bool { return v == 2 })
	prom.waitAll(t, `concord_log_check_voters{verdict="disagree"}`, 3, "0", func(v float64) bool { return v == 0 })
	prom.waitAll(t, `time() - concord_log_check_timestamp_seconds`, 3, "under 10 s", func(v float64) bool { return v < 10 })
	prom.waitAll(t, `concord_notices{state="ACTIVE",jurisdiction="FR"}`, 3, "2", func(v float64) bool { return v == 2 })
	prom.waitValue(t, `sum(concord_grpc_server_handled_total{grpc_method="SubmitNotice",grpc_code="OK"})`, 2)
	prom.waitAll(t, `concord_fsm_apply_duration_seconds_count{command="SubmitNotice"}`, 3, "2", func(v float64) bool { return v == 2 })
	prom.waitAll(t, `concord_node_ready`, 3, "1", func(v float64) bool { return v == 1 })
	prom.waitAll(t, `concord_datadir_free_bytes > 0`, 3, "positive", func(float64) bool { return true })

	for _, n := range c.Nodes {
		promtoolCheckMetrics(t, scrape(t, n.MetricsAddr()))
	}
}

// TestMetricsListenerTLS: off loopback (forced here with MetricsTLS) the metrics listener
// serves HTTPS with the node's certificate and takes only scrapers with a certificate from the
// node's CA; a node without a metrics address records and serves nothing.
func TestMetricsListenerTLS(t *testing.T) {
	t.Parallel()
	n := servertest.Prepare(t, servertest.Options{})
	n.Config.MetricsAddr, n.Config.MetricsTLS = "127.0.0.1:0", true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.Start(ctx, n.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	n.Server = srv
	url := "https://" + srv.MetricsAddr() + "/metrics"

	resp, err := httpClient(t, n.PartnerTLS("observatory")).Get(url)
	if err != nil {
		t.Fatalf("scrape with a certificate from the CA: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "concord_raft_term ") {
		t.Fatalf("scrape over TLS: %s\n%.300s", resp.Status, body)
	}
	noCertConf := tlsConfigWithoutCert(t, n)
	noCertConf.NextProtos = []string{"http/1.1"}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: noCertConf}, Timeout: 10 * time.Second}
	if resp, err := noCert.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("a scrape without a client certificate was answered: %s", resp.Status)
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a scrape without a client certificate: %v, want a refusal for the missing certificate", err)
	}
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + srv.MetricsAddr() + "/metrics"); err == nil && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		t.Fatal("the TLS listener answered plain HTTP")
	}

	plain := servertest.Start(t, servertest.Options{})
	if plain.MetricsAddr() != "" {
		t.Fatalf("a node without a metrics address serves metrics on %s", plain.MetricsAddr())
	}
}
