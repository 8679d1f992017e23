package raftnode

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHCLogAdapter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), hclog.Warn)
	l.Info("dropped")
	l.Named("wal").With("segment", 3).Warn("kept", "index", 7)
	l.Error("failed")
	l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERR] from the standard logger")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg=kept component=raft.wal segment=3 index=7`,
		`level=ERROR msg=failed`,
		`level=ERROR msg="from the standard logger"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"dropped", "starting election"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output has %q, below the warn level:\n%s", unwanted, out)
		}
	}
	if l.IsInfo() || !l.IsWarn() {
		t.Errorf("IsInfo %v IsWarn %v at warn level", l.IsInfo(), l.IsWarn())
	}
}
