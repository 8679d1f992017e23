// Package prometheus_test checks the alert rules shipped for Concord's metrics.
package prometheus_test

import (
	"os"
	"os/exec"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestRules runs `promtool test rules` on the rules' unit tests, and checks that every alert
// has a test in which it fires. promtool comes with Debian's prometheus package, which
// `make test` installs: a missing one fails the test.
func TestRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found on PATH: run 'make prometheus' (the test command installs Debian's prometheus package)")
	}
	for _, args := range [][]string{{"check", "rules", "concord-rules.yml"}, {"test", "rules", "concord-rules_test.yml"}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	for path, v := range map[string]any{"concord-rules.yml": &rules, "concord-rules_test.yml": &tests} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("alert %s has no test in which it fires", r.Alert)
			}
			if r.Annotations["summary"] == "" || r.Annotations["runbook"] == "" {
				t.Errorf("alert %s needs a summary and a runbook annotation", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert rules found")
	}
}
