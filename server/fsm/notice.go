package fsm

import (
	"fmt"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/state"
)

func init() {
	registerCommand(SubmitNoticeType, (*FSM).applySubmitNotice)
	registerCommand(NoticeStatementType, (*FSM).applyNoticeStatement)
}

// applySubmitNotice returns the accepted *concordv1.NoticeRecord or an error. The service
// verified the envelope's signature and validated the notice before appending the command, so
// the payload is parsed here without checking either again; the state store re-checks the rules.
func (f *FSM) applySubmitNotice(body []byte, index uint64) any {
	var cmd statev1.SubmitNotice
	if err := decode(body, &cmd); err != nil {
		return err
	}
	var n concordv1.Notice
	if err := decode(cmd.GetEnvelope().GetPayload(), &n); err != nil {
		return fmt.Errorf("notice payload: %w", err)
	}
	rec, superseded, replay, err := f.State().SubmitNotice(index, &n, &cmd)
	if err != nil {
		return err
	}
	if !replay {
		f.noticeAccepted(index, &n, superseded)
	}
	return rec
}

// applyNoticeStatement returns the *state.StatementResult of an endorsement, objection or
// withdrawal, or an error.
func (f *FSM) applyNoticeStatement(body []byte, index uint64) any {
	var cmd statev1.NoticeStatement
	if err := decode(body, &cmd); err != nil {
		return err
	}
	st, err := state.NewStatement(cmd.GetEnvelope().GetPayloadType())
	if err != nil {
		return fmt.Errorf("%w: %w", errBug, err)
	}
	if err := decode(cmd.GetEnvelope().GetPayload(), state.StatementMessage(st)); err != nil {
		return fmt.Errorf("notice statement payload: %w", err)
	}
	res, replay, err := f.State().ApplyNoticeStatement(index, st, &cmd)
	if err != nil {
		return err
	}
	if !replay && res.Record.GetState() != concordv1.NoticeState_NOTICE_STATE_ACTIVE {
		f.noticeRetired(index, res.Record.GetNotice().GetNoticeId())
	}
	return res
}

// Derived is a structure kept beside the state store and derived from the notices in force (the
// match index, say): the FSM tells it of every notice accepted and retired (withdrawn or
// superseded), in commit order, and has it rebuild itself from the store after a snapshot
// restore. Its methods run on raft's apply goroutine: they must not block for long, and must not
// fail — a derived structure can always be rebuilt from the store.
type Derived interface {
	// NoticeAccepted is called with the notice as signed, hashes included.
	NoticeAccepted(index uint64, n *concordv1.Notice)
	NoticeRetired(index uint64, noticeID string)
	// Rebuild replaces the structure's content with the notices in force in st.
	Rebuild(st *state.Store) error
}

// Attach adds a derived structure. Call it before raft starts: a restore at start-up must
// rebuild it, and the log replay after that must reach it.
func (f *FSM) Attach(d Derived) { f.derived = append(f.derived, d) }

// DeferDerived stops telling the derived structures of each change, until EndDeferral rebuilds
// them once from the state. A node does so while it restores its snapshot and replays its log
// at start: indexing each replayed notice, then merging the index's new segments into the old,
// costs far more than one build. Call it before raft starts.
func (f *FSM) DeferDerived() {
	f.applyMu.Lock()
	f.deferDerived = true
	f.applyMu.Unlock()
}

// EndDeferral rebuilds the derived structures from the state as it is now, between two
// commands, and tells them of every change from then on.
func (f *FSM) EndDeferral() error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if !f.deferDerived {
		return nil
	}
	for _, d := range f.derived {
		if err := d.Rebuild(f.State()); err != nil {
			return fmt.Errorf("rebuild derived state: %w", err)
		}
	}
	f.deferDerived = false
	return nil
}

func (f *FSM) noticeAccepted(index uint64, n *concordv1.Notice, superseded string) {
	if f.deferDerived {
		return
	}
	for _, d := range f.derived {
		if superseded != "" {
			d.NoticeRetired(index, superseded)
		}
		d.NoticeAccepted(index, n)
	}
}

func (f *FSM) noticeRetired(index uint64, id string) {
	if f.deferDerived {
		return
	}
	for _, d := range f.derived {
		d.NoticeRetired(index, id)
	}
}

func init() { registerCommand(ReportActionType, (*FSM).applyReportAction) }

// applyReportAction returns the accepted *concordv1.ActionRecord or an error.
func (f *FSM) applyReportAction(body []byte, index uint64) any {
	var cmd statev1.NoticeStatement
	if err := decode(body, &cmd); err != nil {
		return err
	}
	var r concordv1.ActionReport
	if err := decode(cmd.GetEnvelope().GetPayload(), &r); err != nil {
		return fmt.Errorf("action report payload: %w", err)
	}
	rec, err := f.State().ReportAction(index, &r, &cmd)
	if err != nil {
		return err
	}
	return rec
}
