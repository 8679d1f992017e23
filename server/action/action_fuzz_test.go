package action

import (
	"context"
	"testing"

	"concord/dsse"
	concordv1 "concord/gen/concord/v1"
	"concord/server/statetest"

	"google.golang.org/protobuf/proto"
)

func FuzzReportAction(f *testing.F) {
	n := statetest.New(f)
	n.SubmitNotice(f)
	raft := &statetest.Raft{}
	s, err := New(n.State, raft, nil, n.Now)
	if err != nil {
		f.Fatal(err)
	}
	geo := statetest.ActionReport()
	geo.ReportId = "01KB9Q0000JM1VVX000000ACT2"
	geo.Outcome = concordv1.ActionOutcome_ACTION_OUTCOME_GEO_BLOCKED
	geo.GeoBlockedIn = []string{"FR", "BE"}
	n.Fuzz(f, raft, statetest.Statement{
		PayloadType: dsse.PayloadTypeActionReport, Author: "videoshare", Other: "socialnet",
		New: func() proto.Message { return &concordv1.ActionReport{} },
		Submit: func(ctx context.Context, env *concordv1.Envelope) error {
			_, err := s.ReportAction(ctx, &concordv1.ReportActionRequest{Envelope: env})
			return err
		},
		Accepted: []proto.Message{statetest.ActionReport(), geo},
	})
}
