"""Statement ids: ULIDs that carry the signer's tag at characters 11 to 16, as the hub requires
(WhoAmI returns the tag; this computes the same)."""

from __future__ import annotations

import hashlib
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def tag(partner_id: str) -> str:
    """The six-character tag of a partner's statement ids."""
    digest = hashlib.sha256(b"concord statement id tag\n" + partner_id.encode()).digest()
    bits = int.from_bytes(digest[:4], "big") >> 2
    out = []
    for _ in range(6):
        out.append(_ALPHABET[bits & 31])
        bits >>= 5
    return "".join(reversed(out))


def new_id(partner_id: str) -> str:
    """A new statement id (notice_id, report_id, ...) of partner_id."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    ulid = "".join(reversed(chars))
    return ulid[:10] + tag(partner_id) + ulid[16:]
