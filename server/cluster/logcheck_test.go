package cluster

import "testing"

func TestForkedNeedsAQuorumAgainstIt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		voters, disagree int
		want             bool
	}{
		{1, 0, false},
		{2, 1, false}, // one against one: nobody knows which side forked
		{3, 1, false},
		{3, 2, true},
		{4, 2, false},
		{4, 3, true},
		{5, 2, false},
		{5, 3, true},
	}
	for _, c := range cases {
		check := &LogCheck{Voters: c.voters, Disagree: make([]string, c.disagree)}
		if got := check.Forked(); got != c.want {
			t.Errorf("%d of %d voters disagree: Forked() = %v, want %v", c.disagree, c.voters, got, c.want)
		}
	}
}
