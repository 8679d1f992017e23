"""Cross-language agreement, run by python_test.go: builds the canonical notice (the one
internal/agreement builds in Go and src/agree.ts in TypeScript), signs it with the key in argv[1], writes the envelope to argv[3],
and checks the Go envelope in argv[2]: the same payload bytes, and a signature that verifies."""

import sys

from google.protobuf import duration_pb2, timestamp_pb2

from concord.sdk import _dsse
from concord.v1 import notice_pb2, types_pb2


def canonical_notice() -> notice_pb2.Notice:
    return notice_pb2.Notice(
        notice_id="01JD5Z3Y5JXY5S42V2W0X9Y8Z7", issuer="fr-pharos", jurisdiction="FR", legal_basis="fr.cp.421-2-5",
        categories=[types_pb2.CATEGORY_GLORIFICATION, types_pb2.CATEGORY_ATTACK_FOOTAGE],
        hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=bytes(range(32)), quality=92),
                types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=bytes(range(32, 64)))],
        context="Glorification de l'attentat — reposted with new captions ✓", tlp=types_pb2.TLP_AMBER,
        sharing_group=["DE", "videoshare"], removal_deadline=duration_pb2.Duration(seconds=3600),
        preservation_requested=True,
        counter_narratives=[notice_pb2.CounterNarrative(url="https://example.org/cn", language="fr", title="Réponse")],
        created_at=timestamp_pb2.Timestamp(seconds=1764806400, nanos=123000000))


def main() -> int:
    key = _dsse.load_signing_key(sys.argv[1])
    mine = _dsse.sign(canonical_notice(), key)
    with open(sys.argv[3], "wb") as f:
        f.write(mine.SerializeToString(deterministic=True))
    theirs = types_pb2.Envelope()
    with open(sys.argv[2], "rb") as f:
        theirs.ParseFromString(f.read())
    if theirs.payload != mine.payload or theirs.payload_type != mine.payload_type:
        print("the Go payload differs from Python's:\n go     %s\n python %s" % (theirs.payload.hex(), mine.payload.hex()))
        return 1
    _dsse.verify(theirs, key.public_key())
    print("agreed:", len(mine.payload), "payload bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
