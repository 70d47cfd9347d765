"""inversion: W projection and pivotal tuning (PTI) on draggan's generator.

Library code: takes tensors, returns tensors, reports progress through callbacks.
"""

from inversion.errors import InversionError

__all__ = ["InversionError"]
