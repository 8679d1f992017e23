"""Run by python_test.go's TestPytxExchange, with pytx on the path (so not named test_*: the SDK's
own tests run without it): videoshare's verdicts through the pytx exchange, against a live node
(CONCORD_ADDR, CONCORD_PKI). argv[1] is a PDQ hash of a notice in force in FR; argv[2] one that
is in no notice. The partner's files come as pytx finds credentials (TX_CONCORD_CREDENTIALS),
the collaboration's config naming none. Prints one line per check."""

import os
import sys

from threatexchange.exchanges.auth import SignalExchangeAPIMissingAuthException
from threatexchange.exchanges.fetch_state import SignalOpinion, SignalOpinionCategory
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.url import URLSignal

from concord.pytx import ConcordCollabConfig, ConcordCredentials, ConcordSignalExchangeAPI

in_force, unknown = sys.argv[1], sys.argv[2]
collab = ConcordCollabConfig(addr=os.environ["CONCORD_ADDR"], name="platform", jurisdictions={"fr"})

try:
    ConcordSignalExchangeAPI.for_collab(collab)
    sys.exit("for_collab connected without credentials")
except SignalExchangeAPIMissingAuthException as missing:
    print("no credentials:", missing.pretty_str().splitlines()[0])

os.environ[ConcordCredentials.ENV_VARIABLE] = os.environ["CONCORD_PKI"] + " videoshare"
api = ConcordSignalExchangeAPI.for_collab(collab)

api.report_opinion(PdqSignal, in_force, SignalOpinion(True, SignalOpinionCategory.NEGATIVE_CLASS, {"satire"}))
print("false positive reported")

for s_type, signal, opinion in [
    (PdqSignal, in_force, SignalOpinion(True, SignalOpinionCategory.INVESTIGATION_SEED, set())),
    (PdqSignal, in_force, SignalOpinion(False, SignalOpinionCategory.POSITIVE_CLASS, set())),
    (URLSignal, "https://example.org/", SignalOpinion(True, SignalOpinionCategory.POSITIVE_CLASS, set())),
]:
    try:
        api.report_opinion(s_type, signal, opinion)
        sys.exit(f"{opinion} on {s_type.get_name()} was reported")
    except NotImplementedError as err:
        print("not mapped:", err)
try:
    api.report_seen(PdqSignal, in_force, None)
    sys.exit("report_seen reported")
except NotImplementedError as err:
    print("not mapped:", err)

try:
    api.report_opinion(PdqSignal, unknown, SignalOpinion(True, SignalOpinionCategory.POSITIVE_CLASS, set()))
    sys.exit("a true positive on a hash of no notice was reported")
except ValueError as err:
    print("refused:", err)
