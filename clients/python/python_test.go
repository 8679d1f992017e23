// Package python_test runs the Python SDK's tests against a real Concord node.
package python_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"concord/server/servertest"
)

// TestPythonSDK runs clients/python/tests with Debian's python3 and its grpcio, protobuf and
// cryptography packages ('make python-deps' installs them; a missing one fails the test).
func TestPythonSDK(t *testing.T) {
	python, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Fatal("/usr/bin/python3 not found: the Python SDK's tests run with Debian's python3 ('make python-deps')")
	}
	if out, err := exec.Command(python, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput(); err != nil {
		t.Fatalf("the Python SDK needs python3-grpcio, python3-protobuf and python3-cryptography: run 'make python-deps'\n%s", out)
	}
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Env = append(os.Environ(), "PYTHONPATH=.", "CONCORD_ADDR="+n.GRPCAddr(), "CONCORD_PKI="+n.PKI.Dir, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
