"""Drag with ONNX Runtime: the generator and one drag step exported to ONNX (``export``,
``graph``, ``bilinear``, ``params``) and run by ONNX Runtime's training API (``steps``, the
``backend='onnxruntime'`` stepper of ``draggan.drag``).

``onnx`` and ``onnxruntime-training-cpu`` are optional (dragpipe's ``onnx`` extra): they are
imported only when exporting or dragging (``requirements``), and their absence is a one-line
``OnnxUnavailable`` / ``DragInputError`` naming the extra.
"""

from draggan.onnx.params import ExportParams
from draggan.onnx.requirements import OnnxUnavailable, missing_training

__all__ = ["ExportParams", "OnnxUnavailable", "missing_training"]
