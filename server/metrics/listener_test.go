package metrics

import "testing"

func TestLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9090", true},
		{"127.1.2.3:9090", true},
		{"[::1]:9090", true},
		{"localhost:9090", true},
		{":9090", false},
		{"0.0.0.0:9090", false},
		{"10.0.0.1:9090", false},
		{"[::]:9090", false},
		{"metrics.example:9090", false},
		{"127.0.0.1", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if got := Loopback(tc.addr); got != tc.want {
				t.Errorf("Loopback(%q) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}
