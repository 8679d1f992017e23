"""Checks of Concord's transparency log, with nothing but the log key: signed notes (C2SP
signed-note, Ed25519), checkpoints (C2SP tlog-checkpoint) and RFC 6962 Merkle proofs."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import ReceiptError


@dataclass(frozen=True)
class NoteKey:
    """A signed-note verifier key, "<name>+<hash>+<base64 key>" (Ed25519, type 0x01)."""

    name: str
    key_hash: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> "NoteKey":
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError(f"{vkey!r} is not a note verifier key (name+hash+key)")
        name, hash_hex, key_b64 = parts
        raw = base64.b64decode(key_b64, validate=True)
        if len(raw) != 33 or raw[0] != 0x01:
            raise ValueError(f"{vkey!r} is not an Ed25519 note verifier key (type 0x01)")
        key_hash = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        if key_hash.hex() != hash_hex:
            raise ValueError(f"{vkey!r}: the key hash is {key_hash.hex()}, not {hash_hex}")
        return cls(name, key_hash, Ed25519PublicKey.from_public_bytes(raw[1:]))

    @classmethod
    def load(cls, path: str) -> "NoteKey":
        with open(path, encoding="utf-8") as f:
            return cls.parse(f.read())


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the log's name, its size and its root hash."""

    origin: str
    size: int
    root: bytes
    note: str


def open_checkpoint(note: str, key: NoteKey) -> Checkpoint:
    """Verifies a signed checkpoint note with the log key and returns what it says. The size
    and root are read from the signed text, never from fields beside it."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise ReceiptError("the checkpoint is not a signed note")
    text += "\n"
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        name, _, sig_b64 = line[2:].partition(" ")
        if name != key.name:
            continue
        sig = base64.b64decode(sig_b64)
        if sig[:4] != key.key_hash:
            continue
        try:
            key.public_key.verify(sig[4:], text.encode())
            verified = True
        except InvalidSignature:
            raise ReceiptError(f"the checkpoint's signature by {key.name} does not verify") from None
    if not verified:
        raise ReceiptError(f"the checkpoint carries no signature by the log key {key.name}")
    lines = text.split("\n")
    if len(lines) < 4:
        raise ReceiptError("the checkpoint's text is not origin, size and root")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if origin != key.name or len(root) != 32:
        raise ReceiptError(f"the checkpoint names the log {origin!r}, not {key.name!r}")
    return Checkpoint(origin, size, root, note)


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962's leaf hash: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def check_inclusion(proof: list[bytes], index: int, size: int, root: bytes, leaf: bytes) -> None:
    """Verifies an RFC 6962 (RFC 9162 §2.1.3.2) inclusion proof of leaf at index in a tree of
    size leaves with root."""
    if not 0 <= index < size:
        raise ReceiptError(f"entry {index} is not in a tree of {size} entries")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ReceiptError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise ReceiptError(f"the inclusion proof of entry {index} does not lead to the checkpoint's root")


def check_consistency(proof: list[bytes], old_size: int, old_root: bytes, new_size: int, new_root: bytes) -> None:
    """Verifies an RFC 6962 (RFC 9162 §2.1.4.2) consistency proof between two tree heads."""
    if old_size > new_size:
        raise ReceiptError(f"a tree of {new_size} entries cannot extend one of {old_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ReceiptError(f"two roots for {old_size} entries: the log was rewritten")
        return
    if old_size == 0:
        return
    if not proof:
        raise ReceiptError("an empty consistency proof")
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        proof = [old_root] + proof
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise ReceiptError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise ReceiptError(f"the log of {new_size} entries does not extend the one of {old_size} this client verified")
