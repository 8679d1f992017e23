package statetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
	"concord/server/fault"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Statement is one kind of signed statement and the write RPC that takes it.
type Statement struct {
	PayloadType string
	// Author signs the statements; Other is a partner who may not send them as its own.
	Author, Other string
	// New returns an empty message of the kind.
	New func() proto.Message
	// Submit calls the RPC with env, on the context of a call (Node.Caller).
	Submit func(ctx context.Context, env *concordv1.Envelope) error
	// Accepted are statements the RPC accepts (sends to raft): the seeds.
	Accepted []proto.Message
}

var validator = sync.OnceValues(func() (protovalidate.Validator, error) { return protovalidate.New() })

// Fuzz fuzzes the payload of a statement kind through its RPC, as the server decodes it: the
// fuzzer's payload is signed with the author's key, so that it passes the signature and reaches
// the parser, the validation and the state's rules. Raft must be the Raft the service commits
// through. It checks that:
//   - every outcome is either a command for raft or a refusal that says what to fix;
//   - a command carries exactly the envelope sent and its signer, and only a payload that parses,
//     validates, and serialises back to the same message;
//   - a payload that does not parse is refused as invalid;
//   - the same envelope sent by another partner, or with any one bit of it flipped (payload
//     type, payload, key id or signature), never reaches raft.
func (n *Node) Fuzz(f *testing.F, raft *Raft, s Statement) {
	f.Helper()
	for i, msg := range s.Accepted {
		env := n.SignMessage(f, s.PayloadType, msg, s.Author)
		if err := s.Submit(n.Caller(s.Author), env); !errors.Is(err, ErrNotCommitted) {
			f.Fatalf("seed %d (%v) is not accepted: %v", i, msg, err)
		}
		raft.Take()
		f.Add(env.GetPayload(), uint32(i)*2654435761)
	}
	v, err := validator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, flip uint32) {
		if len(payload) == 0 {
			return // dsse.Sign refuses an empty payload; the RPCs' validation refuses one too
		}
		env := n.Sign(s.PayloadType, payload, s.Author)
		err := s.Submit(n.Caller(s.Author), env)
		cmds := raft.Take()

		msg := s.New()
		parseErr := proto.Unmarshal(payload, msg)
		switch {
		case len(cmds) == 0:
			if !Refusal(err) {
				t.Fatalf("neither committed nor refused with a reason: %v", err)
			}
			if parseErr != nil && code(err) != codes.InvalidArgument {
				t.Fatalf("a payload that does not parse (%v) was refused as %v: %v", parseErr, code(err), err)
			}
		case len(cmds) > 1 || !errors.Is(err, ErrNotCommitted):
			t.Fatalf("%d commands for raft, then %v", len(cmds), err)
		default:
			if parseErr != nil {
				t.Fatalf("a payload that does not parse reached raft: %v", parseErr)
			}
			checkCommand(t, cmds[0], env, n.Signer(s.Author).KeyID())
			if err := v.Validate(msg); err != nil {
				t.Fatalf("a payload that does not validate reached raft: %v", err)
			}
			again, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
			if err != nil {
				t.Fatalf("an accepted statement does not serialise: %v", err)
			}
			back := s.New()
			if err := proto.Unmarshal(again, back); err != nil || !proto.Equal(back, msg) {
				t.Fatalf("an accepted statement does not survive a round trip: %v\nfirst  %v\nsecond %v", err, msg, back)
			}
		}

		err = s.Submit(n.Caller(s.Other), env)
		if cmds := raft.Take(); len(cmds) > 0 || !Refusal(err) {
			t.Fatalf("%s's envelope sent by %s: %d commands, %v", s.Author, s.Other, len(cmds), err)
		}
		bad := Flip(env, flip)
		err = s.Submit(n.Caller(s.Author), bad)
		if cmds := raft.Take(); len(cmds) > 0 || !Refusal(err) {
			t.Fatalf("envelope with a flipped bit: %d commands, %v", len(cmds), err)
		}
	})
}

// checkCommand checks that a command for raft carries env, signed by keyID, at At.
func checkCommand(t *testing.T, cmd []byte, env *concordv1.Envelope, keyID string) {
	t.Helper()
	var body statev1.NoticeStatement // every statement command has envelope, signer_key_id, at
	if len(cmd) < 1 || proto.Unmarshal(cmd[1:], &body) != nil {
		t.Fatalf("the command for raft does not parse: %x", cmd)
	}
	if !proto.Equal(body.GetEnvelope(), env) || body.GetSignerKeyId() != keyID || !body.GetAt().AsTime().Equal(At) {
		t.Fatalf("the command for raft carries %v by %s at %v, not the envelope sent by %s at %v",
			body.GetEnvelope(), body.GetSignerKeyId(), body.GetAt().AsTime(), keyID, At)
	}
}

// Flip returns env with one bit flipped in its payload type, payload, first key id or first
// signature, chosen by flip.
func Flip(env *concordv1.Envelope, flip uint32) *concordv1.Envelope {
	e := proto.CloneOf(env)
	sig := e.GetSignatures()[0]
	pt, keyID := []byte(e.PayloadType), []byte(sig.Keyid)
	fields := [][]byte{pt, e.Payload, keyID, sig.Sig}
	total := 0
	for _, b := range fields {
		total += len(b)
	}
	pos, bit := int(flip%uint32(total)), byte(1)<<(flip/uint32(total)%8)
	for _, b := range fields {
		if pos < len(b) {
			b[pos] ^= bit
			break
		}
		pos -= len(b)
	}
	e.PayloadType, sig.Keyid = string(pt), string(keyID)
	return e
}

func code(err error) codes.Code {
	var f *fault.Error
	if errors.As(err, &f) {
		return f.Code
	}
	return codes.Unknown
}
