package translog

import (
	"bytes"
	"fmt"

	concordv1 "concord/gen/concord/v1"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"
)

// VerifyReceipt checks a write's receipt: the checkpoint is signed by the log key, the entry's
// leaf hash is the receipt's, the inclusion proof leads from it to the checkpoint's root, and the
// entry carries exactly the envelope that was sent. It returns the entry and the checkpoint.
func VerifyReceipt(r *concordv1.Receipt, logKey note.Verifier, sent *concordv1.Envelope) (*concordv1.LogEntry, Checkpoint, error) {
	cp, _, err := OpenCheckpoint(r.GetCheckpoint().GetNote(), logKey)
	if err != nil {
		return nil, Checkpoint{}, fmt.Errorf("receipt: %w", err)
	}
	leaf := LeafHash(r.GetEntry())
	if !bytes.Equal(leaf[:], r.GetLeafHash()) {
		return nil, Checkpoint{}, fmt.Errorf("%w: receipt: the entry's leaf hash is not the receipt's", ErrProof)
	}
	proof, err := HashesFromBytes(r.GetInclusionProof())
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if err := CheckInclusion(proof, int64(r.GetIndex()), cp.Size, cp.Root, leaf); err != nil {
		return nil, Checkpoint{}, fmt.Errorf("receipt: %w", err)
	}
	var entry concordv1.LogEntry
	if err := proto.Unmarshal(r.GetEntry(), &entry); err != nil {
		return nil, Checkpoint{}, fmt.Errorf("receipt: the entry does not parse: %w", err)
	}
	if entry.GetIndex() != r.GetIndex() {
		return nil, Checkpoint{}, fmt.Errorf("%w: receipt for index %d holds entry %d", ErrProof, r.GetIndex(), entry.GetIndex())
	}
	if sent != nil && !proto.Equal(entry.GetStatement(), sent) {
		return nil, Checkpoint{}, fmt.Errorf("%w: the logged entry %d does not carry the statement that was sent", ErrProof, r.GetIndex())
	}
	return &entry, cp, nil
}
