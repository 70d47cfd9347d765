"""Whether an op is being traced for ONNX export.

While ``torch.onnx.export`` traces the generator, ops choose forms that export to a graph
ONNX Runtime can run AND differentiate: the clamp is always applied (no data-dependent skip,
which a trace would freeze into the graph), and strided transposed convolutions run in
polyphase form (``conv_transpose``: ONNX Runtime's training API has no CPU gradient for
``ConvTranspose``). Eager results are unaffected.
"""

from __future__ import annotations

import torch


def tracing() -> bool:
    """True inside ``torch.jit.trace`` (which ``torch.onnx.export`` runs)."""
    return torch.jit.is_tracing()
