package main

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployFilesAgreeWithTheBinary: the systemd unit starts 'concord serve' with the example
// configuration, and that configuration is one the node accepts.
func TestDeployFilesAgreeWithTheBinary(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "concord.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/concord serve --config /etc/concord/node.yaml\n") {
		t.Fatal("the unit does not start 'concord serve --config /etc/concord/node.yaml'")
	}
	cfg, err := loadServeConfig([]string{"--config", filepath.Join("..", "..", "deploy", "systemd", "node.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Limits.Check(); err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/concord" || cfg.LogFormat != "json" {
		t.Fatalf("example configuration read as %+v", cfg)
	}
}

// TestBuildIsStaticAndReproducible: make build gives a statically linked binary, stamped with
// its release, and two builds of the same tree are byte-identical.
func TestBuildIsStaticAndReproducible(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var builds [][]byte
	for _, name := range []string{"a", "b"} {
		out := filepath.Join(dir, name, "concord")
		cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "build", "BUILD_OUT="+out, "VERSION=v0.0.0-test")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make build: %v\n%s", err, msg)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		builds = append(builds, b)
		if name == "a" {
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("the binary is dynamically linked (%v)", p.Type)
				}
			}
			f.Close()
			v, err := exec.Command(out, "version").Output()
			if err != nil || !strings.HasPrefix(string(v), "concord v0.0.0-test\n") {
				t.Fatalf("version: %q, %v", v, err)
			}
		}
	}
	if !bytes.Equal(builds[0], builds[1]) {
		t.Fatal("two builds of the same tree differ")
	}
}
