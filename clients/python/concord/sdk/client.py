"""The Concord client: a mutually authenticated gRPC channel, statements signed with the
partner's key, and every write's receipt verified against the log key before it returns."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass

import grpc
from google.protobuf import timestamp_pb2

from concord.v1 import (action_pb2, action_pb2_grpc, log_pb2, log_pb2_grpc, match_pb2, match_pb2_grpc, notice_pb2,
                        notice_pb2_grpc, registry_pb2, registry_pb2_grpc, types_pb2)

from . import _dsse, _ids, _tlog
from .errors import ConcordError, DeadlineExceeded, OutcomeUnknown, ReceiptError, Unavailable, from_rpc_error


def dev_files(pki_dir: str, partner: str) -> dict[str, str]:
    """The files `concord dev` writes in pki_dir, by Client's parameter names: the hub's CA and
    log key, and partner's certificate, key and signing key ('' for those without a partner)."""
    mine = os.path.join(pki_dir, "partners", partner) if partner else ""

    def own(name: str) -> str:
        return os.path.join(mine, name) if mine else ""

    return {"ca": os.path.join(pki_dir, "ca.pem"), "cert": own("client.pem"), "key": own("client.key"),
            "signing_key": own("signing.key"), "log_key": os.path.join(pki_dir, "log.pub")}


@dataclass(frozen=True)
class Written:
    """A write's answer and its receipt, verified: the entry at receipt.index carries exactly the
    statement sent, in the checkpoint of checkpoint.size entries the log key signed."""

    response: object
    receipt: log_pb2.Receipt
    checkpoint: _tlog.Checkpoint


class Client:
    """A partner's connection to a Concord hub.

    addr is a node's gRPC address; ca, cert and key the PEM files of the hub's CA and the
    partner's certificate and key; signing_key the partner's Ed25519 statement-signing key
    (PKCS#8 PEM; needed to write); log_key the hub's log verifier key file (log.pub; needed to
    write: receipts are checked with it).

    Retries, as the API allows them: a read that fails with UNAVAILABLE is sent again, up to
    retries more times, after a short back-off; a write that got no answer (UNAVAILABLE,
    DEADLINE_EXCEEDED) is re-sent, the same signed envelope, up to retries more times (the hub
    answers a re-sent envelope with the original result, so it never commits twice). A call
    refused for a rate or work limit (RESOURCE_EXHAUSTED) waits out the delay the hub gives,
    when it is at most max_limit_wait seconds, and is sent again. Anything else is raised at
    once as a typed error (concord.sdk.errors). A write whose re-sends all went unanswered may
    have committed: it raises OutcomeUnknown, and Client.resend(err) sends the same envelope
    again (never sign the statement anew: a new id would be a second statement).
    """

    def __init__(self, addr: str, *, ca: str, cert: str, key: str, signing_key: str | None = None,
                 log_key: str | None = None, timeout: float = 30.0, retries: int = 3, max_limit_wait: float = 30.0):
        def read(path: str) -> bytes:
            with open(path, "rb") as f:
                return f.read()

        creds = grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key),
                                             certificate_chain=read(cert))
        # Reconnect soon after a node restarts (gRPC's default back-off grows to two minutes).
        self._channel = grpc.secure_channel(addr, creds, options=[("grpc.initial_reconnect_backoff_ms", 500),
                                                                   ("grpc.max_reconnect_backoff_ms", 10_000)])
        self.timeout = timeout
        self.retries, self.max_limit_wait = retries, max_limit_wait
        self._signer = _dsse.load_signing_key(signing_key) if signing_key else None
        self._log_key = _tlog.NoteKey.load(log_key) if log_key else None
        self.registry = registry_pb2_grpc.RegistryServiceStub(self._channel)
        self.notices = notice_pb2_grpc.NoticeServiceStub(self._channel)
        self.matches = match_pb2_grpc.MatchServiceStub(self._channel)
        self.log = log_pb2_grpc.LogServiceStub(self._channel)
        self.actions = action_pb2_grpc.ActionServiceStub(self._channel)
        self._me: registry_pb2.WhoAmIResponse | None = None
        self._verified: _tlog.Checkpoint | None = None  # the largest checkpoint verified
        self._lock = threading.Lock()

    @classmethod
    def dev(cls, addr: str, partner: str, pki_dir: str = ".concord/certs", **kw) -> "Client":
        """A client with the files `concord dev` writes for partner in pki_dir."""
        return cls(addr, **dev_files(pki_dir, partner), **kw)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # Calls.

    def _call(self, method, request, again: tuple[grpc.StatusCode, ...], write: bool = False):
        """Sends request, again (the same request) while it fails with a status in again or is
        over a limit whose delay is at most max_limit_wait, up to self.retries more times. A
        write that went unanswered once (again's statuses) and ends without an answer that says
        what became of it raises OutcomeUnknown: it may have committed."""
        attempt, ambiguous = 0, False
        while True:
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                typed = from_rpc_error(err)
                unanswered = typed.code in again or typed.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
                ambiguous = ambiguous or (write and typed.code in again)
                if typed.code == grpc.StatusCode.RESOURCE_EXHAUSTED and typed.retry_after is not None \
                        and typed.retry_after <= self.max_limit_wait and attempt < self.retries:
                    # The hint, plus up to 10 %, so that refused callers do not return together.
                    delay = typed.retry_after * (1 + 0.1 * random.random())
                elif typed.code in again and attempt < self.retries:
                    delay = _backoff(attempt)
                elif ambiguous and (unanswered or typed.code == grpc.StatusCode.RESOURCE_EXHAUSTED):
                    raise OutcomeUnknown(f"no answer says whether the write committed ({typed}): "
                                         "Client.resend(err) sends the same envelope again", typed.code) from None
                else:
                    raise typed from None
                attempt += 1
                time.sleep(delay)

    def _read(self, method, request):
        return self._call(method, request, (grpc.StatusCode.UNAVAILABLE,))

    def _write(self, method, request):
        return self._call(method, request, (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), write=True)

    def resend(self, err: "OutcomeUnknown") -> Written:
        """Sends the envelope of a write whose outcome is unknown again, and verifies its
        receipt: the hub answers with the original result if it had committed, or commits it
        now. It may raise OutcomeUnknown again."""
        service, method = err.rpc
        response = self._write(getattr(getattr(self, service), method), err.request)
        checkpoint = self.verify_receipt(response.receipt, err.request.envelope)
        return Written(response, response.receipt, checkpoint)

    def whoami(self) -> registry_pb2.WhoAmIResponse:
        """Who the hub takes this client for: its partner record and statement id tag."""
        if self._me is None:
            self._me = self._read(self.registry.WhoAmI, registry_pb2.WhoAmIRequest())
        return self._me

    # Writes.

    def _commit(self, service: str, method: str, request_cls, statement) -> Written:
        if self._signer is None or self._log_key is None:
            raise ConcordError("writing needs the partner's signing_key and the hub's log_key")
        envelope = _dsse.sign(statement, self._signer)
        with self._lock:
            verified = self._verified
        request = request_cls(envelope=envelope, consistency_from=verified.size if verified else 0)
        try:
            response = self._write(getattr(getattr(self, service), method), request)
        except OutcomeUnknown as err:
            err.rpc, err.request = (service, method), request
            raise
        checkpoint = self.verify_receipt(response.receipt, envelope)
        return Written(response, response.receipt, checkpoint)

    def submit_notice(self, notice: notice_pb2.Notice) -> Written:
        """Signs and submits a notice (notice_id, issuer, jurisdiction and created_at filled in
        when empty) and verifies its receipt. Written.response.notice is the record."""
        me = self.whoami().partner
        if not notice.issuer:
            notice.issuer = me.id
        if not notice.jurisdiction:
            notice.jurisdiction = me.jurisdiction
        if not notice.notice_id:
            notice.notice_id = _ids.new_id(notice.issuer)
        if not notice.HasField("created_at"):
            notice.created_at.CopyFrom(_now())
        return self._commit("notices", "SubmitNotice", notice_pb2.SubmitNoticeRequest, notice)

    def endorse_notice(self, notice_id: str, legal_basis: str) -> Written:
        """Adopts a notice in this partner's jurisdiction under one of its provisions."""
        me = self.whoami().partner
        e = notice_pb2.Endorsement(notice_id=notice_id, legal_basis=legal_basis, author=me.id,
                                   jurisdiction=me.jurisdiction, endorsement_id=_ids.new_id(me.id))
        e.created_at.CopyFrom(_now())
        return self._commit("notices", "EndorseNotice", notice_pb2.EndorseNoticeRequest, e)

    def object_to_notice(self, notice_id: str, reason: str) -> Written:
        """Declares a notice not actionable in this partner's jurisdiction, with a reason."""
        me = self.whoami().partner
        o = notice_pb2.Objection(notice_id=notice_id, reason=reason, author=me.id, jurisdiction=me.jurisdiction,
                                 objection_id=_ids.new_id(me.id))
        o.created_at.CopyFrom(_now())
        return self._commit("notices", "ObjectToNotice", notice_pb2.ObjectToNoticeRequest, o)

    def withdraw_notice(self, notice_id: str, reason: str, reinstate: bool = False) -> Written:
        """Withdraws this partner's notice; reinstate tells platforms to put the content back."""
        me = self.whoami().partner
        w = notice_pb2.Withdrawal(notice_id=notice_id, reason=reason, reinstate=reinstate, author=me.id,
                                  withdrawal_id=_ids.new_id(me.id))
        w.created_at.CopyFrom(_now())
        return self._commit("notices", "WithdrawNotice", notice_pb2.WithdrawNoticeRequest, w)

    def report_action(self, report: action_pb2.ActionReport) -> Written:
        """Signs and submits a platform's action report (report_id, reporter, created_at and
        occurred_at, now, filled in when empty)."""
        me = self.whoami().partner
        if not report.reporter:
            report.reporter = me.id
        if not report.report_id:
            report.report_id = _ids.new_id(report.reporter)
        if not report.HasField("occurred_at"):
            report.occurred_at.CopyFrom(_now())
        if not report.HasField("created_at"):
            report.created_at.CopyFrom(_now())
        return self._commit("actions", "ReportAction", action_pb2.ReportActionRequest, report)

    # Reads.

    def compliance(self, **filters) -> action_pb2.GetComplianceResponse:
        """Deadlines and whether they were met (filters: GetComplianceRequest's fields)."""
        return self._read(self.actions.GetCompliance, action_pb2.GetComplianceRequest(**filters))

    def watch(self, *, after: int | None = None, from_start: bool = False, jurisdictions=(), categories=(),
              heartbeat_seconds: int = 15, reconnect_delay: float = 1.0):
        """Yields the notice events this partner may see, as they are committed, forever. After a
        disconnect or a node restart it resumes after the last cursor received (an event's or a
        heartbeat's), so nothing is missed; keep the cursors to resume a later run (after=). A
        stream silent for two heartbeats (a node gone without closing it) is given up and
        resumed."""
        cursor = after
        while True:
            req = notice_pb2.WatchNoticesRequest(from_start=from_start and cursor is None, jurisdictions=list(jurisdictions),
                                                 categories=list(categories), heartbeat_seconds=heartbeat_seconds)
            if cursor is not None:
                req.after = cursor
            # wait_for_ready: after a restart the call waits for the channel to connect (and drives
            # its connection) instead of failing at once while it is in back-off.
            call = self.notices.WatchNotices(req, wait_for_ready=True)
            watchdog = _Watchdog(call.cancel, 2 * heartbeat_seconds + 1)
            try:
                for msg in call:
                    watchdog.reset()
                    if msg.HasField("event"):
                        cursor = msg.event.cursor
                        yield msg.event
                    else:
                        cursor = msg.heartbeat.cursor
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL,
                                      grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED) and not (
                        err.code() == grpc.StatusCode.CANCELLED and watchdog.fired):
                    raise from_rpc_error(err) from None
            finally:
                watchdog.stop()
                call.cancel()
            time.sleep(reconnect_delay)

    def catch_up(self, *, after: int | None = None, jurisdictions=(), categories=(), idle_seconds: int = 1):
        """Yields the feed's events after cursor after (from the feed's start when None) up to its
        end as it is when the call starts, then a Heartbeat whose cursor marks where this sync
        ended, and stops: a sync that runs now and then, where watch follows the feed for good.
        Pass the heartbeat's cursor (or the last event's, if the sync was cut short) as after next
        time: nothing is missed or repeated. Events committed during the sync come with the next
        one, so a busy feed does not keep a sync going. idle_seconds (1 to 300) is how soon the
        hub says it has nothing more to send. One stream, never resumed here: an error is raised,
        typed."""
        end = self._feed_end()
        if after is not None and after >= end:
            yield notice_pb2.Heartbeat(cursor=after, at=_now())
            return
        req = notice_pb2.WatchNoticesRequest(from_start=after is None, jurisdictions=list(jurisdictions),
                                             categories=list(categories), heartbeat_seconds=idle_seconds)
        if after is not None:
            req.after = after
        call = self.notices.WatchNotices(req)
        # A stream silent for longer than the hub takes to read a backlog it filters out (it sends
        # nothing meanwhile) and then say it is idle is a node gone without closing it.
        watchdog = _Watchdog(call.cancel, max(self.timeout, 2 * idle_seconds + 1))
        try:
            for msg in call:
                watchdog.reset()
                if msg.HasField("heartbeat"):
                    # The hub read the feed to its end, which is at or past the end found first.
                    yield msg.heartbeat
                    return
                if msg.event.cursor > end:
                    # Every event up to the end found first was sent before this one.
                    yield notice_pb2.Heartbeat(cursor=end, at=_now())
                    return
                yield msg.event
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED and watchdog.fired:
                raise DeadlineExceeded(f"the feed sent nothing for {watchdog.timeout:.0f} s") from None
            raise from_rpc_error(err) from None
        finally:
            watchdog.stop()
            call.cancel()
        raise Unavailable("the feed's stream ended before reaching the feed's end")

    def _feed_end(self) -> int:
        """The feed's end cursor now: the heartbeat a stream started at the end begins with."""
        call = self.notices.WatchNotices(notice_pb2.WatchNoticesRequest(heartbeat_seconds=300), timeout=self.timeout)
        try:
            for msg in call:
                if msg.HasField("heartbeat"):
                    return msg.heartbeat.cursor
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()
        raise Unavailable("the feed's stream ended before saying where the feed ends")

    def get_notice(self, notice_id: str) -> notice_pb2.NoticeRecord:
        return self._read(self.notices.GetNotice, notice_pb2.GetNoticeRequest(notice_id=notice_id)).notice

    def match(self, hashes: list[types_pb2.Hash], *, max_pdq_distance: int = 0, dihedral: bool = False,
              request_id: str = "") -> match_pb2.MatchResponse:
        """Matches a batch of up to 10 000 hashes: one HashResult per hash, in order. dihedral:
        also the rotations and reflections of PDQ hashes."""
        return self._read(self.matches.Match, match_pb2.MatchRequest(
            hashes=hashes, max_pdq_distance=max_pdq_distance, pdq_dihedral=dihedral, request_id=request_id))

    def match_stream(self, batches, *, max_pdq_distance: int = 0, dihedral: bool = False):
        """Matches batches as they come, on one stream (MatchStream): batches is an iterable of
        hash lists (a generator fed by uploads, say), read as the stream needs them; yields one
        MatchResponse per batch, in order, its request_id the batch's position from 0. A broken
        stream raises a typed error and is not retried: the batches not answered yet are those
        after the last response received."""

        def requests():
            for i, hashes in enumerate(batches):
                yield match_pb2.MatchStreamRequest(batch=match_pb2.MatchRequest(
                    hashes=hashes, max_pdq_distance=max_pdq_distance, pdq_dihedral=dihedral, request_id=str(i)))

        call = self.matches.MatchStream(requests())
        try:
            for resp in call:
                yield resp.batch
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()

    # Receipts.

    def verify_receipt(self, receipt: log_pb2.Receipt, sent: types_pb2.Envelope | None) -> _tlog.Checkpoint:
        """Checks a write's receipt (see message Receipt): the checkpoint is signed by the log key,
        the entry's leaf hash is proven included at its index, the entry carries exactly sent,
        and the checkpoint extends the largest one this client verified before."""
        if self._log_key is None:
            raise ConcordError("verifying a receipt needs the hub's log_key")
        cp = _tlog.open_checkpoint(receipt.checkpoint.note, self._log_key)
        leaf = _tlog.leaf_hash(receipt.entry)
        if leaf != receipt.leaf_hash:
            raise ReceiptError("the entry's leaf hash is not the receipt's")
        _tlog.check_inclusion(list(receipt.inclusion_proof), receipt.index, cp.size, cp.root, leaf)
        entry = log_pb2.LogEntry()
        entry.ParseFromString(receipt.entry)
        if entry.index != receipt.index:
            raise ReceiptError(f"the receipt for entry {receipt.index} holds entry {entry.index}")
        if sent is not None and entry.statement != sent:
            raise ReceiptError(f"log entry {receipt.index} does not carry the statement that was sent")
        with self._lock:
            before = self._verified
        if before is not None and cp.size >= before.size:
            if receipt.consistency_from == before.size:
                _tlog.check_consistency(list(receipt.consistency_proof), before.size, before.root, cp.size, cp.root)
            else:
                proof = self._read(self.log.GetConsistencyProof, log_pb2.GetConsistencyProofRequest(
                    old_size=before.size, new_size=cp.size))
                _tlog.check_consistency(list(proof.hashes), before.size, before.root, cp.size, cp.root)
        elif before is not None:
            # An older checkpoint (another node, a little behind): it must be a prefix of the
            # largest verified, or the hub showed this client two histories.
            proof = self._read(self.log.GetConsistencyProof, log_pb2.GetConsistencyProofRequest(
                old_size=cp.size, new_size=before.size))
            _tlog.check_consistency(list(proof.hashes), cp.size, cp.root, before.size, before.root)
        with self._lock:
            if self._verified is None or cp.size > self._verified.size:
                self._verified = cp
        return cp


class _Watchdog:
    """Calls fire() when reset() was not called for timeout seconds."""

    def __init__(self, fire, timeout: float):
        self._fire, self.timeout, self.fired = fire, timeout, False
        self._timer: threading.Timer | None = None
        self.reset()

    def _expire(self) -> None:
        self.fired = True
        self._fire()

    def reset(self) -> None:
        self.stop()
        self._timer = threading.Timer(self.timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _backoff(attempt: int) -> float:
    """The pause before re-send attempt+1: from 100 ms, doubling, at most 2 s, ±20 %."""
    return min(0.1 * 2 ** min(attempt, 5), 2.0) * (0.8 + 0.4 * random.random())


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts
