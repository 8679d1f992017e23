package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"concord/internal/identity"
	"concord/internal/mtls"
	"concord/internal/pki"
)

// TestPortClosesConnectionsNobodyTakes: while raft's side of a port is stopped (a node repairing
// itself, or one stopping) and the port is still open, a node dialling it gets its connection
// closed once the handshake budget runs out, instead of held open with a goroutine each.
func TestPortClosesConnectionsNobodyTakes(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = time.Second
	t.Cleanup(func() { handshakeTimeout = old })

	layout := pki.Layout{Dir: t.TempDir()}
	if _, err := pki.Init(pki.Options{Dir: layout.Dir, TrustDomain: identity.DefaultTrustDomain, NodeIDs: []string{"node-1", "node-2"}}); err != nil {
		t.Fatal(err)
	}
	node := func(id string) *mtls.Node {
		n, err := mtls.NodeConfig(mtls.Files{CA: layout.CACert(), Cert: layout.NodeCert(id), Key: layout.NodeKey(id)}, identity.DefaultTrustDomain)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	p, err := Listen(TCP{}, "127.0.0.1:0", node("node-1"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	layer := p.Raft()
	layer.Close() // raft stopped; the port stays open

	dialer, err := Listen(TCP{}, "127.0.0.1:0", node("node-2"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer dialer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := dialer.dialTLS(ctx, p.Addr(), alpnRaft)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The read returns once the port gives the connection up (the deadline is a generous bound).
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on a connection nobody took: %v, want EOF (closed by the port)", err)
	}
}
