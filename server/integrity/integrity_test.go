package integrity

import (
	"io"
	"log/slog"
	"testing"

	"concord/server/fault"

	"google.golang.org/grpc/codes"
)

func TestGuardAlarms(t *testing.T) {
	t.Parallel()
	g := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if g.Serving() != nil || g.Writable() != nil {
		t.Fatal("a new guard refuses calls")
	}
	changed := g.Changed()
	if !g.Raise(Alarm{Kind: NoSpace, Detail: "12 MiB free"}) {
		t.Fatal("a new alarm was not raised")
	}
	<-changed // closed by the change
	if g.Serving() != nil {
		t.Fatal("NO_SPACE stopped reads")
	}
	if err := g.Writable(); fault.CodeOf(err) != codes.ResourceExhausted {
		t.Fatalf("Writable under NO_SPACE = %v, want ResourceExhausted", err)
	}
	g.Raise(Alarm{Kind: Forked, Index: 9, Detail: "first"})
	if g.Raise(Alarm{Kind: Forked, Index: 12, Detail: "second"}) {
		t.Fatal("a second alarm of the same kind replaced the first")
	}
	for _, err := range []error{g.Serving(), g.Writable()} {
		if fault.CodeOf(err) != codes.Unavailable {
			t.Fatalf("under FORKED: %v, want Unavailable", err)
		}
	}
	if a := g.Alarms(); len(a) != 2 || a[0].Kind != Forked || a[0].Index != 9 || a[1].Kind != NoSpace {
		t.Fatalf("Alarms() = %v, want FORKED at 9 then NO_SPACE", a)
	}
	if !g.Clear(Forked) || g.Clear(Forked) || g.Serving() != nil {
		t.Fatal("Clear did not lower the alarm once")
	}
}
