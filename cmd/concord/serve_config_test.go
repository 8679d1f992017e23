package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeConfigLimits reads the limits example of the README from a node's YAML file, and
// refuses a limit that names no role.
func TestServeConfigLimits(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "```yaml\nlimits:")
	example, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("the README has no limits example")
	}
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte("limits:"+example), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadServeConfig([]string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Limits.Check(); err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.Roles["OPERATOR"].Streams["MatchStream"] != 16 || cfg.Limits.Partners["videoshare"].Requests != 1000 || cfg.Limits.Default.Work != 1_000_000 {
		t.Fatalf("limits read as %+v", cfg.Limits)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("limits:\n  roles:\n    KING: {work: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = loadServeConfig([]string{"--config", bad})
	if err == nil {
		err = cfg.Limits.Check()
	}
	if err == nil || !strings.Contains(err.Error(), "KING") {
		t.Fatalf("a limit for an unknown role: got %v", err)
	}
}
