"""``warren bench``: an MQTT load generator and a broker comparison.

- :mod:`.frames`: pre-encoded PUBLISH frames and a cheap packet counter;
- :mod:`.workers`: publisher, subscriber and idle-connection processes;
- :mod:`.scenarios`: the scenarios and the controller that runs them;
- :mod:`.procstat`: broker CPU and memory from ``/proc``;
- :mod:`.results` and :mod:`.reporting`: what was measured, as a table or JSON;
- :mod:`.compare`: Warren against Debian's mosquitto, medians and ratios.
"""

from .results import BenchResult
from .scenarios import (
    PRESETS,
    BenchError,
    ConnectionsSpec,
    PubSubSpec,
    Target,
    run_connections,
    run_pubsub,
)

__all__ = [
    "PRESETS",
    "BenchError",
    "BenchResult",
    "ConnectionsSpec",
    "PubSubSpec",
    "Target",
    "run_connections",
    "run_pubsub",
]
