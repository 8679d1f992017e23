package cluster

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Network opens a node's connections to and from other nodes. The default is plain TCP; tests
// wrap it in Faults to cut a node off from the others and heal it again.
type Network interface {
	Listen(addr string) (net.Listener, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCP is the real network.
type TCP struct{}

// Listen listens on a TCP address.
func (TCP) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// Dial opens a TCP connection.
func (TCP) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// ErrCut is the error of a connection attempt while Faults has cut the node off.
var ErrCut = errors.New("the node is cut off from the others (fault injection)")

// Faults wraps a Network with a switch that cuts the node off: every connection it opened or
// accepted is closed, new dials fail and new connections are closed as soon as they are
// accepted, until Heal. Raft and the internal service share the node's port, so both are cut.
// Stall is the other fault: a node that hangs instead of refusing.
type Faults struct {
	inner Network

	mu      sync.Mutex
	cut     bool
	stalled bool
	conns   map[*faultConn]struct{}
}

// NewFaults wraps inner (nil: TCP).
func NewFaults(inner Network) *Faults {
	if inner == nil {
		inner = TCP{}
	}
	return &Faults{inner: inner, conns: map[*faultConn]struct{}{}}
}

// Cut cuts the node off: its open connections close, and no new one gets through.
func (f *Faults) Cut() {
	f.mu.Lock()
	f.cut = true
	conns := f.conns
	f.conns = map[*faultConn]struct{}{}
	f.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// Stall turns the node's connections into a black hole until Heal: they stay open, but what the
// node sends is dropped and what it receives is discarded, so that its peers' calls hang until
// their own deadlines, as with a machine that froze or a network that drops packets.
func (f *Faults) Stall() {
	f.mu.Lock()
	f.stalled = true
	f.mu.Unlock()
}

// Heal lets connections through again. Those that were stalled lost bytes: they are closed, and
// the nodes reconnect.
func (f *Faults) Heal() {
	f.mu.Lock()
	f.cut = false
	var conns map[*faultConn]struct{}
	if f.stalled {
		f.stalled = false
		conns, f.conns = f.conns, map[*faultConn]struct{}{}
	}
	f.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

func (f *Faults) isStalled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stalled
}

// IsCut reports whether the node is cut off.
func (f *Faults) IsCut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}

// track registers c, or closes it if the node is cut off.
func (f *Faults) track(c net.Conn) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		c.Close()
		return nil, ErrCut
	}
	fc := &faultConn{Conn: c, faults: f}
	f.conns[fc] = struct{}{}
	return fc, nil
}

// Listen listens through the inner network; connections accepted while cut are closed at once.
func (f *Faults) Listen(addr string) (net.Listener, error) {
	ln, err := f.inner.Listen(addr)
	if err != nil {
		return nil, err
	}
	return &faultListener{Listener: ln, faults: f}, nil
}

// Dial fails while the node is cut off.
func (f *Faults) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if f.IsCut() {
		return nil, ErrCut
	}
	c, err := f.inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return f.track(c)
}

type faultListener struct {
	net.Listener
	faults *Faults
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, err := l.faults.track(c); err == nil {
			return tc, nil
		}
	}
}

type faultConn struct {
	net.Conn
	faults *Faults
}

// Read discards what arrives while the node is stalled.
func (c *faultConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if err != nil || !c.faults.isStalled() {
			return n, err
		}
	}
}

// Write drops what the node sends while it is stalled.
func (c *faultConn) Write(p []byte) (int, error) {
	if c.faults.isStalled() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *faultConn) Close() error {
	c.faults.mu.Lock()
	delete(c.faults.conns, c)
	c.faults.mu.Unlock()
	return c.Conn.Close()
}
