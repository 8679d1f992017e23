package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestFaultsCutAndHeal(t *testing.T) {
	t.Parallel()
	f := NewFaults(nil)
	ln, err := f.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c) // echo
		}
	}()
	ctx := context.Background()
	conn, err := f.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := c.Read(make([]byte, 1))
		return err
	}
	if err := echo(conn); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	f.Cut()
	if err := echo(conn); err == nil {
		t.Fatal("an open connection survived the cut")
	}
	if _, err := f.Dial(ctx, ln.Addr().String()); !errors.Is(err, ErrCut) {
		t.Fatalf("dial while cut: %v, want ErrCut", err)
	}
	// A peer's connection to the cut node is closed as soon as it is accepted.
	outside, err := (TCP{}).Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(outside); err == nil {
		t.Fatal("a connection to the cut node got through")
	}
	f.Heal()
	conn, err = f.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(conn); err != nil {
		t.Fatalf("after healing: %v", err)
	}
}

func TestFaultsStallAndHeal(t *testing.T) {
	t.Parallel()
	f := NewFaults(nil)
	ln, err := f.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c) // echo
		}
	}()
	ctx := context.Background()
	echo := func(c net.Conn, wait time.Duration) error {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := c.Read(make([]byte, 1))
		return err
	}
	conn, err := f.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(conn, 2*time.Second); err != nil {
		t.Fatalf("before the stall: %v", err)
	}
	f.Stall()
	// The connection stays open and says nothing: the caller's deadline ends the wait.
	var ne net.Error
	if err := echo(conn, 200*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("echo while stalled: %v, want a timeout", err)
	}
	f.Heal()
	if err := echo(conn, 2*time.Second); err == nil {
		t.Fatal("a connection that lost bytes while stalled survived the heal")
	}
	conn, err = f.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(conn, 2*time.Second); err != nil {
		t.Fatalf("after healing: %v", err)
	}
}

// A read round starts after every read that joined it arrived, and rounds do not overlap.
func TestReadBatcherSharesRounds(t *testing.T) {
	t.Parallel()
	var rounds, inFlight atomic.Int64
	release := make(chan struct{})
	b := &readBatcher{timeout: 5 * time.Second, fetch: func(ctx context.Context) (uint64, error) {
		if inFlight.Add(1) != 1 {
			t.Error("two rounds at once")
		}
		defer inFlight.Add(-1)
		n := rounds.Add(1)
		if n == 1 {
			<-release
		}
		return uint64(n), nil
	}}
	ctx, bound := context.Background(), time.Now().Add(time.Minute)
	first := make(chan uint64)
	go func() {
		i, _ := b.index(ctx, bound)
		first <- i
	}()
	for rounds.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// These arrive while round 1 runs: they must get round 2, whose start follows them.
	later := make(chan uint64, 10)
	for range 10 {
		go func() {
			i, _ := b.index(ctx, bound)
			later <- i
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	if i := <-first; i != 1 {
		t.Fatalf("first read got round %d", i)
	}
	for range 10 {
		if i := <-later; i != 2 {
			t.Fatalf("a read that arrived during round 1 got round %d, want 2", i)
		}
	}
	if rounds.Load() != 2 {
		t.Fatalf("%d rounds for 11 reads in two waves, want 2", rounds.Load())
	}
}
