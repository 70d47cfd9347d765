"""The stage store: content-addressed, atomically published, verified stage results.

``keys`` computes a result's identity, ``store`` writes and verifies results and loop
checkpoints, ``lock`` keeps two runs from writing one workdir at once.
"""

from pipeline.store.keys import DigestCache, KeyMaterial, canonical_json, explain_change
from pipeline.store.lock import LockBusy, RunLock
from pipeline.store.store import DamagedResult, Pending, Ref, Result, Store

__all__ = [
    "DamagedResult",
    "DigestCache",
    "KeyMaterial",
    "LockBusy",
    "Pending",
    "Ref",
    "Result",
    "RunLock",
    "Store",
    "canonical_json",
    "explain_change",
]
