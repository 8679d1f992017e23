package client

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
)

// verdictCreds wraps TLS transport credentials so that a refused client certificate shows as a
// handshake failure. With TLS 1.3 the client finishes its handshake before the server has checked
// the client's certificate, and learns of a refusal only on its first read; grpc-go then reports a
// plain Unavailable (often "broken pipe"), which looks like a server that went away and would be
// retried. Here the handshake waits for the server's first bytes — its alert, or its HTTP/2
// settings frame, which gRPC servers send at once — and keeps those bytes for the connection.
type verdictCreds struct {
	credentials.TransportCredentials
}

// verdictWait bounds the wait for the server's first bytes when the dial has no deadline.
const verdictWait = 10 * time.Second

func (c verdictCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(verdictWait)
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		conn.Close()
		return nil, nil, err
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("the server refused the TLS handshake: %w", err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return &prereadConn{Conn: conn, buf: buf[:n]}, info, nil
}

func (c verdictCreds) Clone() credentials.TransportCredentials {
	return verdictCreds{c.TransportCredentials.Clone()}
}

// prereadConn returns bytes already read before reading from its connection.
type prereadConn struct {
	net.Conn
	buf []byte
}

func (c *prereadConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
