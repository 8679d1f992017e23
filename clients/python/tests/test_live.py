"""The SDK against a live Concord node: CONCORD_ADDR (its gRPC address) and CONCORD_PKI (its dev
PKI). Run by python_test.go, which starts the node."""

import os
import random
import unittest

from concord.sdk import Client, InvalidArgument, OutcomeUnknown, PermissionDenied, ReceiptError
from concord.sdk import _dsse, _ids, _tlog
from concord.v1 import action_pb2, log_pb2, notice_pb2, types_pb2

ADDR = os.environ["CONCORD_ADDR"]
PKI = os.environ["CONCORD_PKI"]


def client(partner: str) -> Client:
    return Client.dev(ADDR, partner, PKI)


def flip(value: bytes, bits: int) -> bytes:
    b = bytearray(value)
    for i in random.Random(7).sample(range(256), bits):
        b[i // 8] ^= 1 << (i % 8)
    return bytes(b)


class AuthorityAndPlatform(unittest.TestCase):
    def test_scenario(self):
        pdq = bytes(random.Random(1).getrandbits(8) for _ in range(32))
        sha = bytes(random.Random(2).getrandbits(8) for _ in range(32))
        with client("fr-pharos") as fr:
            notice = notice_pb2.Notice(legal_basis="fr.cp.421-2-5", categories=[types_pb2.CATEGORY_GLORIFICATION],
                                       hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=pdq, quality=90),
                                               types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=sha)])
            written = fr.submit_notice(notice)
            record = written.response.notice
            self.assertEqual(record.notice.notice_id, notice.notice_id)
            self.assertEqual(notice.notice_id[10:16], fr.whoami().statement_id_tag)
            self.assertGreater(written.checkpoint.size, written.receipt.index)
            # A second write: its receipt proves the log extends the checkpoint verified first.
            again = fr.submit_notice(notice_pb2.Notice(legal_basis="fr.cp.421-2-5", categories=[types_pb2.CATEGORY_GLORIFICATION],
                                                       hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=sha[::-1])]))
            self.assertEqual(again.receipt.consistency_from, written.checkpoint.size)
            self.assertGreater(again.checkpoint.size, written.checkpoint.size)

            # An older receipt verifies against the larger checkpoint verified since (the hub
            # proves it a prefix); against a head of another history it is refused.
            self.assertEqual(fr.verify_receipt(written.receipt, None).size, written.checkpoint.size)
            head = fr._verified
            fr._verified = _tlog.Checkpoint(head.origin, head.size, bytes(32), head.note)
            with self.assertRaises(ReceiptError):
                fr.verify_receipt(written.receipt, None)
            fr._verified = head

            # A receipt altered after the fact does not verify.
            tampered = log_pb2.Receipt()
            tampered.CopyFrom(written.receipt)
            tampered.entry = tampered.entry[:-1] + bytes([tampered.entry[-1] ^ 1])
            with self.assertRaises(ReceiptError):
                fr.verify_receipt(tampered, None)

        with client("de-bka") as de:
            endorsed = de.endorse_notice(notice.notice_id, "de.stgb.140")
            self.assertGreater(endorsed.receipt.index, written.receipt.index)

        with client("be-fedpol") as be:
            be.object_to_notice(notice.notice_id, "Satire: not apologie under art. 140bis")

        with client("videoshare") as platform:
            # The feed, from the start: the two notices, then the endorsement.
            events = platform.watch(from_start=True)
            seen = [next(events) for _ in range(3)]
            events.close()
            second = again.response.notice.notice.notice_id
            self.assertEqual([(e.notice_id, e.type) for e in seen], [
                (notice.notice_id, notice_pb2.NOTICE_EVENT_TYPE_NEW), (second, notice_pb2.NOTICE_EVENT_TYPE_NEW),
                (notice.notice_id, notice_pb2.NOTICE_EVENT_TYPE_ENDORSED)])
            self.assertTrue(seen[0].cursor < seen[1].cursor < seen[2].cursor)
            # Resumed after the first cursor, it starts at the second event.
            resumed = platform.watch(after=seen[0].cursor)
            self.assertEqual(next(resumed).cursor, seen[1].cursor)
            resumed.close()
            # A sync: the same events, then the heartbeat that marks the feed's end; from there,
            # the next sync has nothing but that end.
            synced = list(platform.catch_up())
            self.assertEqual([e.cursor for e in synced[:3]], [e.cursor for e in seen])
            self.assertIsInstance(synced[-1], notice_pb2.Heartbeat)
            self.assertEqual(synced[-1].cursor, synced[-2].cursor)
            again = list(platform.catch_up(after=synced[-1].cursor))
            self.assertEqual([(type(m), m.cursor) for m in again], [(notice_pb2.Heartbeat, synced[-1].cursor)])

            resp = platform.match([types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=flip(pdq, 4), quality=80),
                                   types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=sha)])
            near, exact = resp.results
            self.assertEqual([m.notice_id for m in near.matches], [notice.notice_id])
            self.assertEqual(near.matches[0].distance, 4)
            self.assertEqual(exact.matches[0].hash_position, 1)
            self.assertIn("DE", [o.jurisdiction for o in near.matches[0].obligations])

            # Typed errors.
            with self.assertRaises(InvalidArgument) as bad:
                platform.match([types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=b"short" * 4)])
            self.assertIn("hashes[0]", bad.exception.message)
            reported = platform.report_action(action_pb2.ActionReport(
                notice_id=notice.notice_id, outcome=action_pb2.ACTION_OUTCOME_REMOVED, jurisdictions=["FR", "DE"]))
            self.assertGreater(reported.receipt.index, endorsed.receipt.index)

            with self.assertRaises(PermissionDenied):
                platform.submit_notice(notice_pb2.Notice(legal_basis="fr.cp.421-2-5",
                                                         categories=[types_pb2.CATEGORY_GLORIFICATION],
                                                         hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=sha)]))


        with client("fr-pharos") as fr:
            summary = fr.compliance(notice_id=notice.notice_id).summary
            self.assertGreaterEqual(summary.met, 2)
            fr.withdraw_notice(notice.notice_id, "Annulled on appeal", reinstate=True)
            self.assertEqual(fr.get_notice(notice.notice_id).state, notice_pb2.NOTICE_STATE_WITHDRAWN)


class CatchUp(unittest.TestCase):
    def test_ends_at_the_end_it_found(self):
        def notice() -> notice_pb2.Notice:
            return notice_pb2.Notice(legal_basis="fr.cp.421-2-5", categories=[types_pb2.CATEGORY_GLORIFICATION],
                                     hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=random.randbytes(32))])

        with client("fr-pharos") as fr, client("videoshare") as platform:
            start = list(platform.catch_up())[-1].cursor
            a = notice()
            fr.submit_notice(a)
            sync = platform.catch_up(after=start)
            first = next(sync)  # the stream is open now
            self.assertEqual(first.notice_id, a.notice_id)
            b = notice()
            fr.submit_notice(b)  # committed during the sync: it comes with the next one
            rest = list(sync)
            self.assertEqual(len(rest), 1, rest)
            self.assertIsInstance(rest[0], notice_pb2.Heartbeat)
            self.assertEqual(rest[0].cursor, first.cursor)
            following = list(platform.catch_up(after=rest[0].cursor))
            self.assertEqual([e.notice_id for e in following[:-1]], [b.notice_id])
            self.assertEqual(following[-1].cursor, following[0].cursor)


class MatchStream(unittest.TestCase):
    def test_batches_answered_in_order(self):
        pdq = bytes(random.Random(11).getrandbits(8) for _ in range(32))
        with client("fr-pharos") as fr:
            written = fr.submit_notice(notice_pb2.Notice(
                legal_basis="fr.cp.421-2-5", categories=[types_pb2.CATEGORY_GLORIFICATION],
                hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=pdq, quality=90)]))
        notice_id = written.response.notice.notice.notice_id
        unrelated = bytes(random.Random(12).getrandbits(8) for _ in range(32))
        batches = [[types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=flip(pdq, 3), quality=80)],
                   [types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=unrelated, quality=80)],
                   [types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=unrelated, quality=80),
                    types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=pdq, quality=100)]]
        with client("videoshare") as platform:
            answers = list(platform.match_stream(iter(batches)))
            self.assertEqual([a.request_id for a in answers], ["0", "1", "2"])
            self.assertEqual([[m.notice_id for m in r.matches] for r in answers[0].results], [[notice_id]])
            self.assertEqual(answers[0].results[0].matches[0].distance, 3)
            self.assertEqual(len(answers[1].results), 1)
            self.assertFalse(answers[1].results[0].matches)
            self.assertEqual([[m.distance for m in r.matches] for r in answers[2].results], [[], [0]])
            # A bad batch ends the stream with a typed error naming it.
            with self.assertRaises(InvalidArgument):
                list(platform.match_stream([[types_pb2.Hash(kind=types_pb2.HASH_KIND_PDQ, value=b"short", quality=80)]]))


class Resend(unittest.TestCase):
    def test_outcome_unknown_then_resend(self):
        # A write sent where nobody answers may have committed: OutcomeUnknown, and resend sends
        # the same envelope, which commits once however often it is sent.
        with client("fr-pharos") as fr:
            down = Client.dev("127.0.0.1:1", "fr-pharos", PKI, retries=1, timeout=5)
            down._me = fr.whoami()
            lost = notice_pb2.Notice(legal_basis="fr.cp.421-2-5", categories=[types_pb2.CATEGORY_GLORIFICATION],
                                     hashes=[types_pb2.Hash(kind=types_pb2.HASH_KIND_SHA256, value=random.randbytes(32))])
            with self.assertRaises(OutcomeUnknown) as unknown:
                down.submit_notice(lost)
            down.close()
            first = fr.resend(unknown.exception)
            second = fr.resend(unknown.exception)
            self.assertEqual(first.response.notice.notice.notice_id, lost.notice_id)
            self.assertEqual(second.receipt.index, first.receipt.index)


class Offline(unittest.TestCase):
    def test_statement_ids_carry_the_tag(self):
        for partner in ("fr-pharos", "de-bka", "videoshare"):
            i = _ids.new_id(partner)
            self.assertEqual(len(i), 26)
            self.assertEqual(i[10:16], _ids.tag(partner))

    def test_pae(self):
        self.assertEqual(_dsse.pae("t", b"ab"), b"DSSEv1 1 t 2 ab")


if __name__ == "__main__":
    unittest.main()
