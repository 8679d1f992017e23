package typescript_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// freezingProxy forwards loopback TCP connections to a node. Freeze makes the connections open
// at that moment go silent both ways without closing them, as a node that vanished from the
// network would; later connections are forwarded as usual.
type freezingProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	open   []*frozenGate // every connection, closed when the test ends
	closed bool
}

// frozenGate holds a connection pair and, once frozen, the bytes read from either side.
type frozenGate struct {
	client, node net.Conn
	frozen       chan struct{}
	once         sync.Once
}

func startFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) Addr() string { return p.ln.Addr().String() }

func (p *freezingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		n, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		g := &frozenGate{client: c, node: n, frozen: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			n.Close()
			return
		}
		p.open = append(p.open, g)
		p.mu.Unlock()
		go g.pipe(c, n)
		go g.pipe(n, c)
	}
}

// pipe copies src to dst until either closes or the gate freezes; a frozen gate keeps both
// connections open and swallows what it reads.
func (g *frozenGate) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-g.frozen:
			if err != nil {
				return
			}
			continue
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			} else if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

// Freeze silences every connection open now, and returns how many there were.
func (p *freezingProxy) Freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.open {
		g.once.Do(func() { close(g.frozen) })
	}
	return len(p.open)
}

func (p *freezingProxy) close() {
	p.mu.Lock()
	p.closed = true
	gates := p.open
	p.open = nil
	p.mu.Unlock()
	p.ln.Close()
	for _, g := range gates {
		g.client.Close()
		g.node.Close()
	}
}
