"""Concord as a python-threatexchange (pytx) SignalExchangeAPI, for the `tx` command line and
Hasher-Matcher-Actioner (HMA).

A collaboration is one partner's view of a Concord hub: the notices in force in the
jurisdictions it names (every jurisdiction where a notice is actionable, when it names none).
Fetching follows the hub's notice feed from a cursor (the checkpoint), so each fetch reads only
what changed since the last one; a notice withdrawn, superseded or objected to out of those
jurisdictions is deleted from the fetched state by the next fetch.

No `from __future__ import annotations` here: pytx's `config collab edit` builds its flags from
the config dataclass's field types, which must be real types, not strings.
"""

import json
import logging
import os
import typing as t
from dataclasses import dataclass, field

from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges import signal_exchange_api
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.sha256 import VideoSHA256Signal
from threatexchange.signal_type.signal_base import SignalType

from concord.sdk import Client, NotFound, dev_files
from concord.v1 import action_pb2, notice_pb2, types_pb2

API_NAME = "concord"

# Concord's hash kinds that pytx has a signal type for, by the kind's name without its prefix.
# MD5 and SHA256 are of a file's bytes in Concord, whatever the file; pytx has them only as
# video signals (video_md5, video_sha256), so `tx match` looks them up for video content.
# PDQ_VIDEO (vPDQ frame lists, matched by share of frames) and URL_SHA256 have no pytx
# counterpart: they are fetched (ConcordNotice.hashes) but not indexed.
SIGNAL_TYPE_BY_KIND: t.Dict[str, t.Type[SignalType]] = {
    "PDQ": PdqSignal,
    "MD5": VideoMD5Signal,
    "SHA256": VideoSHA256Signal,
}
_KIND_BY_SIGNAL_TYPE = {st: kind for kind, st in SIGNAL_TYPE_BY_KIND.items()}

# How many notices one FetchDelta carries at most (each in-force one costs a GetNotice).
_FETCH_BATCH = 500


def _kind_name(kind: int) -> str:
    return types_pb2.HashKind.Name(kind).removeprefix("HASH_KIND_")


def _category_name(category: int) -> str:
    return types_pb2.Category.Name(category).removeprefix("CATEGORY_").lower()


@dataclass
class PartnerFiles:
    """The files a partner connects and signs with: the hub's CA, the partner's certificate and
    key (mutual TLS), its statement-signing key and the hub's log key (both only to write:
    feedback). pki_dir and partner name them in the layout `concord dev` writes (as
    Client.dev); a file given explicitly wins."""

    pki_dir: str = field(default="", metadata={"help": "a PKI directory in the layout `concord dev` writes"})
    partner: str = field(default="", metadata={"help": "the partner id, with --pki-dir"})
    ca: str = field(default="", metadata={"help": "the hub's CA certificate (PEM)"})
    cert: str = field(default="", metadata={"help": "the partner's client certificate (PEM)"})
    key: str = field(default="", metadata={"help": "the partner's client key (PEM)"})
    signing_key: str = field(default="", metadata={"help": "the partner's statement-signing key (PKCS#8 PEM)"})
    log_key: str = field(default="", metadata={"help": "the hub's log verifier key (log.pub)"})

    def has_files(self) -> bool:
        return any((self.pki_dir, self.ca, self.cert, self.key))

    def resolved(self) -> t.Dict[str, str]:
        """The five files, those not given explicitly taken from pki_dir and partner ('' when
        neither says)."""
        layout = dev_files(os.path.expanduser(self.pki_dir), self.partner) if self.pki_dir else {}
        given = {"ca": self.ca, "cert": self.cert, "key": self.key, "signing_key": self.signing_key, "log_key": self.log_key}
        return {name: os.path.expanduser(path) if path else layout.get(name, "") for name, path in given.items()}

    def problem(self) -> str:
        """Why these files cannot connect ('' when they can)."""
        files = self.resolved()
        missing = [name for name in ("ca", "cert", "key") if not files[name]]
        if missing:
            return f"no {', '.join(missing)}: give --pki-dir and --partner, or the files themselves"
        for name, path in files.items():
            if path and not os.path.isfile(path):
                return f"{name} {path} is not a file"
        return ""


@dataclass
class ConcordCredentials(auth.CredentialHelper, PartnerFiles):
    """A partner's files, found the ways pytx looks for credentials when a collaboration's
    config names none: set by the host (HMA's stored exchange credentials, as JSON with these
    fields), TX_CONCORD_CREDENTIALS, or ~/.tx_concord_credentials. The string form is JSON with
    these fields, or "PKI_DIR PARTNER"."""

    ENV_VARIABLE: t.ClassVar[str] = "TX_CONCORD_CREDENTIALS"
    FILE_NAME: t.ClassVar[str] = "~/.tx_concord_credentials"

    @classmethod
    def _from_str(cls, s: str) -> "ConcordCredentials":
        s = s.strip()
        if s.startswith("{"):
            return cls(**{k: str(v) for k, v in json.loads(s).items()})
        pki_dir, _, partner = s.partition(" ")
        return cls(pki_dir=pki_dir, partner=partner.strip())

    def _are_valid(self) -> bool:
        return not self.problem()


@dataclass
class _ConcordCollabConfigRequiredFields:
    addr: str = field(metadata={"help": "a Concord node's gRPC address, host:port"})


@dataclass
class ConcordCollabConfig(PartnerFiles, CollaborationConfigWithDefaults, _ConcordCollabConfigRequiredFields):
    """A Concord collaboration: the hub's address, the partner's files (or none, to use
    ConcordCredentials), the jurisdictions whose notices in force it fetches, and what a true
    positive is reported as."""

    api: str = field(init=False, default=API_NAME)
    jurisdictions: t.Set[str] = field(default_factory=set, metadata={
        "help": "the jurisdictions (ISO 3166-1 alpha-2) whose notices in force to fetch; "
                "empty: every notice actionable anywhere. Changing them needs `tx fetch --clear`"})
    true_positive_outcome: str = field(default="REMOVED", metadata={
        "help": "what a true positive reports: REMOVED, or GEO_BLOCKED (in the notice's jurisdictions)"})


@dataclass
class ConcordCheckpoint(state.FetchCheckpointBase):
    """The feed's cursor fetched up to (pass to WatchNotices.after), and the latest time the
    feed was known to be read to (seconds since the epoch; it only grows)."""

    cursor: int
    progress_ts: int = 0

    def get_progress_timestamp(self) -> t.Optional[int]:
        return self.progress_ts or None


@dataclass
class ConcordNotice:
    """A notice in force, as fetched: the update record, keyed by notice id. hashes are
    (kind, hex value) pairs, every kind included; in_force_in the collaboration's
    jurisdictions where the notice is actionable."""

    notice_id: str
    issuer: str
    issuing_jurisdiction: str
    legal_basis: str
    categories: t.List[str]
    in_force_in: t.List[str]
    hashes: t.List[t.Tuple[str, str]]
    tlp: str
    preservation_requested: bool
    log_index: int


@dataclass
class ConcordNoticeOpinion(state.SignalOpinion):
    """One notice's say on a signal: POSITIVE_CLASS, tagged with the notice's categories."""

    notice_id: str
    issuer: str
    in_force_in: t.List[str]


@dataclass
class ConcordSignalMetadata(state.FetchedSignalMetadata):
    """The notices in force that hold a signal. signal is the signal itself: `tx match` prints
    the metadata of what matched, not the stored signal, and a reviewer wants both."""

    signal: str
    notices: t.List[ConcordNotice] = field(default_factory=list)

    def get_as_opinions(self) -> t.Sequence[ConcordNoticeOpinion]:
        return [ConcordNoticeOpinion(False, state.SignalOpinionCategory.POSITIVE_CLASS, set(n.categories),
                                     n.notice_id, n.issuer, n.in_force_in) for n in self.notices]

    def __str__(self) -> str:
        notices = "; ".join(f"notice {n.notice_id} by {n.issuer} ({n.issuing_jurisdiction}, {n.legal_basis}) "
                            f"{','.join(n.categories)}, in force in {','.join(n.in_force_in)}" for n in self.notices)
        return f"{self.get_as_aggregate_opinion().category.name} {notices} hash {self.signal}"


class ConcordSignalExchangeAPI(
    auth.SignalExchangeWithAuth[ConcordCollabConfig, ConcordCredentials],
    signal_exchange_api.SignalExchangeAPI[
        ConcordCollabConfig, ConcordCheckpoint, ConcordSignalMetadata, str, ConcordNotice],
):
    """Concord's notices in force as pytx signals, and pytx feedback as signed action reports.

    Fetch: the notice feed (WatchNotices) from the checkpoint's cursor to its end, every event
    of a notice covered in the collaboration's jurisdictions; a notice in force after its
    events is fetched whole (GetNotice) and stored under its id, any other is deleted (None).
    Every change of a notice's state is an event of the feed, so the fetched state is exactly
    the notices in force when the fetch ended. Each notice's PDQ, MD5 and SHA256 hashes are
    indexed as pdq, video_md5 and video_sha256 signals.

    Feedback (report_opinion), each a signed ActionReport per notice in force that holds the
    signal exactly, for the collaboration's jurisdictions where it is actionable, its receipt
    verified:
      - POSITIVE_CLASS (true positive): outcome true_positive_outcome, REMOVED by default, or
        GEO_BLOCKED in those jurisdictions.
      - NEGATIVE_CLASS (false positive): NOT_ACTIONED, reason "false positive" with the
        opinion's tags: the platform did not act because the content is not the notice's.
    What does not map, and raises NotImplementedError (as pytx expects of optional feedback):
      - INVESTIGATION_SEED: Concord has no statement for "needs review"; a platform reports what
        it did, not what it thinks.
      - report_seen: a match seen is no action; Concord records actions (and the hub already
        answers every Match, which is where it learns of matches).
      - an opinion not is_mine: a platform signs only its own reports.
      - tags other than as a false positive's reason, and the outcomes NOT_FOUND, REINSTATED
        and PRESERVED: no pytx opinion says them (use concord.sdk.Client.report_action).
    """

    def __init__(self, collab: ConcordCollabConfig, client: Client) -> None:
        super().__init__()
        self.collab = collab
        self.client = client
        self.jurisdictions = {j.strip().upper() for j in collab.jurisdictions if j.strip()}

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> t.Type[ConcordCollabConfig]:
        return ConcordCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> t.Type[ConcordCheckpoint]:
        return ConcordCheckpoint

    @staticmethod
    def get_record_cls() -> t.Type[ConcordSignalMetadata]:
        return ConcordSignalMetadata

    @staticmethod
    def get_credential_cls() -> t.Type[ConcordCredentials]:
        return ConcordCredentials

    @classmethod
    def for_collab(cls, collab: ConcordCollabConfig,
                   credentials: t.Optional[ConcordCredentials] = None) -> "ConcordSignalExchangeAPI":
        """Connects with credentials if given, else the files the collaboration's config names,
        else the credentials pytx finds (ConcordCredentials)."""
        files: PartnerFiles
        if credentials is not None:
            files = credentials
        elif collab.has_files():
            files = collab
        else:
            files = ConcordCredentials.get(cls)
        problem = files.problem()
        if problem:
            raise auth.SignalExchangeAPIInvalidAuthException(cls, f"collaboration {collab.name}: {problem}")
        paths = files.resolved()
        return cls(collab, Client(collab.addr, ca=paths["ca"], cert=paths["cert"], key=paths["key"],
                                  signing_key=paths["signing_key"] or None, log_key=paths["log_key"] or None))

    # Fetch.

    def fetch_iter(
        self,
        supported_signal_types: t.Sequence[t.Type[SignalType]],
        checkpoint: t.Optional[ConcordCheckpoint],
    ) -> t.Iterator[state.FetchDelta[str, ConcordNotice, ConcordCheckpoint]]:
        after = checkpoint.cursor if checkpoint is not None else None
        cursor, progress = after, checkpoint.progress_ts if checkpoint is not None else 0
        latest: t.Dict[str, notice_pb2.NoticeRecord] = {}  # each notice's state at its last event
        for msg in self.client.catch_up(after=after, jurisdictions=sorted(self.jurisdictions)):
            cursor = msg.cursor
            if isinstance(msg, notice_pb2.Heartbeat):
                progress = max(progress, msg.at.seconds)
                if latest or cursor != after:
                    yield state.FetchDelta(self._records(latest), ConcordCheckpoint(cursor, progress))
                return
            latest[msg.notice_id] = msg.notice
            progress = max(progress, msg.at.seconds)
            if len(latest) >= _FETCH_BATCH:
                yield state.FetchDelta(self._records(latest), ConcordCheckpoint(cursor, progress))
                latest, after = {}, cursor

    def _records(self, latest: t.Mapping[str, notice_pb2.NoticeRecord]) -> t.Dict[str, t.Optional[ConcordNotice]]:
        """Each notice's record if it is in force, else None (a deletion). A notice the feed
        showed in force is read whole, as it is now: if it changed since, its own later event
        comes after this one, so the state stored last is the latest either way."""
        out: t.Dict[str, t.Optional[ConcordNotice]] = {}
        for notice_id, summary in latest.items():
            record = None
            if self._in_force_in(summary):
                try:
                    full = self.client.get_notice(notice_id)
                except NotFound:
                    full = None
                if full is not None and self._in_force_in(full):
                    record = self._notice(full)
            out[notice_id] = record
        return out

    def _in_force_in(self, rec: notice_pb2.NoticeRecord) -> t.List[str]:
        if rec.state != notice_pb2.NOTICE_STATE_ACTIVE:
            return []
        wanted = self.jurisdictions
        return sorted(js.jurisdiction for js in rec.jurisdictions
                      if js.actionable and (not wanted or js.jurisdiction in wanted))

    def _notice(self, rec: notice_pb2.NoticeRecord) -> ConcordNotice:
        n = rec.notice
        return ConcordNotice(
            notice_id=n.notice_id, issuer=n.issuer, issuing_jurisdiction=n.jurisdiction, legal_basis=n.legal_basis,
            categories=[_category_name(c) for c in n.categories], in_force_in=self._in_force_in(rec),
            hashes=[(_kind_name(h.kind), h.value.hex()) for h in n.hashes],
            tlp=types_pb2.TLP.Name(n.tlp), preservation_requested=n.preservation_requested, log_index=rec.log_index)

    @classmethod
    def naive_convert_to_signal_type(
        cls,
        signal_types: t.Sequence[t.Type[SignalType]],
        collab: ConcordCollabConfig,
        fetched: t.Mapping[str, ConcordNotice],
    ) -> t.Dict[t.Type[SignalType], t.Dict[str, ConcordSignalMetadata]]:
        ret: t.Dict[t.Type[SignalType], t.Dict[str, ConcordSignalMetadata]] = {}
        for notice in fetched.values():
            if notice is None:
                continue
            for kind, value in notice.hashes:
                st = SIGNAL_TYPE_BY_KIND.get(kind)
                if st is None or st not in signal_types:
                    continue
                try:
                    signal = st.validate_signal_str(value)
                except ValueError:
                    logging.warning("notice %s: invalid %s hash %s", notice.notice_id, kind, value[:100])
                    continue
                metadata = ret.setdefault(st, {}).setdefault(signal, ConcordSignalMetadata(signal))
                if notice not in metadata.notices:
                    metadata.notices.append(notice)
        return ret

    # Feedback.

    def report_opinion(self, s_type: t.Type[SignalType], signal: str, opinion: state.SignalOpinion) -> None:
        """Reports a platform's verdict on a signal of this collaboration (a notice's hash, as
        fetched) as a signed action report to each notice in force that holds it: see the
        class's docstring for what maps. Raises ValueError when no such notice is in force in
        the collaboration's jurisdictions (nothing was reported)."""
        kind = _KIND_BY_SIGNAL_TYPE.get(s_type)
        if kind is None:
            raise NotImplementedError(f"Concord has no hash kind for pytx's {s_type.get_name()} signals")
        if not opinion.is_mine:
            raise NotImplementedError("a platform signs only its own opinions")
        report = action_pb2.ActionReport()
        if opinion.category == state.SignalOpinionCategory.POSITIVE_CLASS:
            outcome = self.collab.true_positive_outcome.upper()
            if outcome not in ("REMOVED", "GEO_BLOCKED"):
                raise ValueError(f"true_positive_outcome {outcome!r}: REMOVED or GEO_BLOCKED")
            report.outcome = action_pb2.ActionOutcome.Value("ACTION_OUTCOME_" + outcome)
        elif opinion.category == state.SignalOpinionCategory.NEGATIVE_CLASS:
            report.outcome = action_pb2.ACTION_OUTCOME_NOT_ACTIONED
            tags = ", ".join(sorted(opinion.tags or ()))
            report.reason = "false positive: the content matched is not the notice's" + (f" ({tags})" if tags else "")
        else:
            raise NotImplementedError(f"Concord has no statement for a {opinion.category.name} opinion")

        value = bytes.fromhex(s_type.validate_signal_str(signal))
        # The signal is a notice's own hash, matched exactly (distance 0, below): the quality the
        # hub asks of a platform's hashes of its own content does not apply, so it is given as full.
        query = types_pb2.Hash(kind=types_pb2.HashKind.Value("HASH_KIND_" + kind), value=value,
                               quality=100 if kind == "PDQ" else 0)
        result = self.client.match([query], max_pdq_distance=1).results[0]
        wanted = self.jurisdictions
        reported = set()
        for m in result.matches:
            if m.distance != 0 or m.notice_id in reported:
                continue
            jurisdictions = sorted({o.jurisdiction for o in m.obligations if not wanted or o.jurisdiction in wanted})
            if not jurisdictions:
                continue
            one = action_pb2.ActionReport()
            one.CopyFrom(report)
            one.notice_id = m.notice_id
            one.jurisdictions.extend(jurisdictions)
            if one.outcome == action_pb2.ACTION_OUTCOME_GEO_BLOCKED:
                one.geo_blocked_in.extend(jurisdictions)
            self.client.report_action(one)
            reported.add(m.notice_id)
        if not reported:
            raise ValueError(f"no notice in force{' in ' + ','.join(sorted(wanted)) if wanted else ''} holds "
                             f"{s_type.get_name()} {signal}: nothing reported")

    def report_seen(self, s_type: t.Type[SignalType], signal: str, metadata: ConcordSignalMetadata) -> None:
        """Not mapped: a match seen is not an action, and Concord records actions."""
        raise NotImplementedError("Concord records actions, not sightings: report what was done (report_opinion)")
