"""DSSE envelopes as Concord signs statements: Ed25519 over PAE(payload_type, payload)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from concord.v1 import types_pb2

PAYLOAD_TYPES = {
    "Notice": "application/vnd.concord.notice.v1+protobuf",
    "Endorsement": "application/vnd.concord.endorsement.v1+protobuf",
    "Objection": "application/vnd.concord.objection.v1+protobuf",
    "Withdrawal": "application/vnd.concord.withdrawal.v1+protobuf",
    "ActionReport": "application/vnd.concord.action-report.v1+protobuf",
    "RegistryChange": "application/vnd.concord.registry-change.v1+protobuf",
}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Lower-case hex of the first 16 bytes of SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:16].hex()


def load_signing_key(path: str) -> Ed25519PrivateKey:
    """A partner's statement-signing key, PKCS#8 PEM."""
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 key")
    return key


def sign(message, key: Ed25519PrivateKey) -> types_pb2.Envelope:
    """Signs a statement message: its deterministic serialization is the payload."""
    payload_type = PAYLOAD_TYPES[message.DESCRIPTOR.name]
    payload = message.SerializeToString(deterministic=True)
    sig = key.sign(pae(payload_type, payload))
    return types_pb2.Envelope(payload=payload, payload_type=payload_type,
                              signatures=[types_pb2.Signature(keyid=key_id(key.public_key()), sig=sig)])


def verify(envelope: types_pb2.Envelope, public_key: Ed25519PublicKey) -> None:
    """Verifies an envelope's signature by public_key (raises InvalidSignature)."""
    want = key_id(public_key)
    for s in envelope.signatures:
        if s.keyid == want:
            public_key.verify(s.sig, pae(envelope.payload_type, envelope.payload))
            return
    raise ValueError(f"no signature by key {want}")
