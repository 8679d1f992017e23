package rpcmethod

import (
	"testing"

	_ "concord/gen/concord/v1" // registers Concord's API
)

func TestLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method              string
		found, ro, retrying bool
	}{
		{"/concord.v1.NoticeService/GetNotice", true, true, true},
		{"/concord.v1.NoticeService/SubmitNotice", true, false, true},
		{"/concord.v1.MatchService/MatchStream", true, false, false},
		{"/concord.v1.NoticeService/Nope", false, false, false},
		{"/concord.v1.NoticeService", false, false, false},
		{"", false, false, false},
	} {
		for range 2 { // the second time from the cache
			_, found := Find(tc.method)
			if found != tc.found || ReadOnly(tc.method) != tc.ro || Retryable(tc.method) != tc.retrying {
				t.Errorf("%q: found %v, read-only %v, retryable %v; want %v %v %v", tc.method, found, ReadOnly(tc.method), Retryable(tc.method), tc.found, tc.ro, tc.retrying)
			}
		}
	}
}
