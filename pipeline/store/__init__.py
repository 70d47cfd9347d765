"""The stage store: content-addressed, atomically published, verified stage results.

``keys`` computes a result's identity, ``store`` writes and verifies results and loop
checkpoints, ``lock`` keeps two runs from writing one workdir at once, with ``lease``
(exclusive claims that hold on shared storage, also used for each result being computed).
"""

from pipeline.store.keys import DigestCache, KeyMaterial, canonical_json, explain_change
from pipeline.store.lease import Lease, LeaseBusy, LeaseLost
from pipeline.store.lock import LockBusy, RunLock, run_holder
from pipeline.store.store import (
    DamagedResult,
    PartialState,
    Pending,
    RecordedSpec,
    Ref,
    Result,
    Store,
)

__all__ = [
    "DamagedResult",
    "DigestCache",
    "KeyMaterial",
    "Lease",
    "LeaseBusy",
    "LeaseLost",
    "LockBusy",
    "PartialState",
    "Pending",
    "RecordedSpec",
    "Ref",
    "Result",
    "RunLock",
    "Store",
    "canonical_json",
    "explain_change",
    "run_holder",
]
