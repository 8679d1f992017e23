"""A python-threatexchange (pytx) extension: Concord as a signal exchange, for the `tx` command
line and Hasher-Matcher-Actioner. Add it with `tx config extensions add concord.pytx` (this
module's TX_MANIFEST); see clients/python/README.md and ConcordSignalExchangeAPI."""

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest

from .exchange import (ConcordCheckpoint, ConcordCollabConfig, ConcordCredentials, ConcordNotice,
                       ConcordSignalExchangeAPI, ConcordSignalMetadata)

TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(ConcordSignalExchangeAPI,))

__all__ = ["TX_MANIFEST", "ConcordSignalExchangeAPI", "ConcordCollabConfig", "ConcordCredentials",
           "ConcordCheckpoint", "ConcordNotice", "ConcordSignalMetadata"]
