package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// promTool finds a Prometheus binary (prometheus, promtool) on PATH. `make test` installs them
// (Debian's prometheus package), so a missing one fails the test rather than skipping it.
func promTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: run 'make prometheus' (the test command installs Debian's prometheus package)", name)
	}
	return p
}

// promServer is a real Prometheus scraping test nodes' metrics listeners on loopback.
type promServer struct {
	addr string
	http *http.Client
}

// scrapeTarget is one metrics listener and the labels Prometheus adds to its series.
type scrapeTarget struct {
	addr   string
	labels map[string]string
}

// startPrometheus runs Prometheus with a scrape interval of 500 ms over targets, waits until it
// is ready, and stops it when the test ends.
func startPrometheus(t testing.TB, targets ...scrapeTarget) *promServer {
	t.Helper()
	bin := promTool(t, "prometheus")
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n  - job_name: concord\n    static_configs:\n")
	for _, tg := range targets {
		fmt.Fprintf(&cfg, "      - targets: [%q]\n", tg.addr)
		if len(tg.labels) > 0 {
			cfg.WriteString("        labels:\n")
			for k, v := range tg.labels {
				fmt.Fprintf(&cfg, "          %s: %q\n", k, v)
			}
		}
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	p := &promServer{addr: addr, http: &http.Client{Timeout: 5 * time.Second}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := p.http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within a minute:\n%s", logs.String())
		}
	}
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Labels map[string]string
	Value  float64
}

// query runs an instant PromQL query.
func (p *promServer) query(q string) ([]promSample, error) {
	resp, err := p.http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("query %s: %w: %s", q, err, body)
	}
	if answer.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, answer.Error)
	}
	if answer.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: a %s, not a vector", q, answer.Data.ResultType)
	}
	var out []promSample
	for _, r := range answer.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", q, r.Value[1], err)
		}
		out = append(out, promSample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// promWait is how long a test waits for Prometheus to show what the node did: a few scrapes,
// on a loaded machine.
const promWait = 90 * time.Second

// waitFor polls q until ok accepts its answer, failing the test after promWait with the last
// answer.
func (p *promServer) waitFor(t testing.TB, q string, what string, ok func([]promSample) bool) []promSample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), promWait)
	defer cancel()
	var last []promSample
	var lastErr error
	for {
		last, lastErr = p.query(q)
		if lastErr == nil && ok(last) {
			return last
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Prometheus: %s: %s gave %v (err %v) after %v", what, q, last, lastErr, promWait)
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitValue waits until q answers one series of value want.
func (p *promServer) waitValue(t testing.TB, q string, want float64) {
	t.Helper()
	p.waitFor(t, q, fmt.Sprintf("want one series of value %v", want), func(s []promSample) bool {
		return len(s) == 1 && s[0].Value == want
	})
}

// waitAll waits until q answers exactly n series, each accepted by ok.
func (p *promServer) waitAll(t testing.TB, q string, n int, what string, ok func(float64) bool) []promSample {
	t.Helper()
	return p.waitFor(t, q, fmt.Sprintf("want %d series, each %s", n, what), func(s []promSample) bool {
		if len(s) != n {
			return false
		}
		for _, x := range s {
			if !ok(x.Value) {
				return false
			}
		}
		return true
	})
}

// scrape fetches a metrics listener's exposition.
func scrape(t testing.TB, addr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s, %v", addr, resp.Status, err)
	}
	return b
}

// promtoolCheckMetrics runs `promtool check metrics` on an exposition.
func promtoolCheckMetrics(t testing.TB, exposition []byte) {
	t.Helper()
	cmd := exec.Command(promTool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
