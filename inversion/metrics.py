"""Reconstruction quality of an inversion: MSE, PSNR, LPIPS and face identity.

Scales:
- ``mse``: mean squared error of images in [-1, 1] (PTI's loss scale; 4x the [0, 1] MSE).
- ``psnr``: dB, with peak-to-peak 2, i.e. the usual PSNR of the images mapped to [0, 1].
- ``lpips``: LPIPS distance (0 = identical; ``lpips_net`` / ``perceptual_backbone`` say which).
- ``identity_distance``: Euclidean distance between dlib's 128-d face descriptors
  (``dlib_face_recognition_resnet_model_v1``); dlib's convention: below 0.6 means the same
  person (``identity_same_person``); lower is better. ``identity_similarity``: cosine similarity of the two
  descriptors (1 = same direction). Both are None, with ``identity_note`` saying why, when
  dlib's detector finds no face in one of the images (tiny images, e.g. test generators).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from inversion import face_models
from inversion.checks import check_target, check_ws, generator_device
from inversion.perceptual import Perceptual

SAME_PERSON_DISTANCE = 0.6  # dlib's threshold on the descriptor distance
DETECTOR_UPSAMPLE = 1  # dlib detector: upsample once (finds faces down to ~40 px)

# Unit, direction and threshold of each metric: written into every JSON record
# (``InversionMetrics.to_dict()['meaning']``) so that a number is never read the wrong way.
METRIC_MEANINGS = MappingProxyType(
    {
        "mse": "mean squared error of the images in [-1, 1]; lower is better, 0 = identical",
        "psnr": "dB, peak-to-peak 2; higher is better, inf = identical",
        "lpips": "LPIPS distance (lpips_net, perceptual_backbone); lower is better, 0 = identical",
        "identity_distance": (
            f"Euclidean distance of dlib's 128-d face descriptors; lower is better, "
            f"< {SAME_PERSON_DISTANCE:g} = the same person (dlib's threshold)"
        ),
        "identity_similarity": (
            "cosine similarity of dlib's face descriptors; higher is better, 1 = same direction"
        ),
        "identity_same_person": f"identity_distance < {SAME_PERSON_DISTANCE:g}",
    }
)


@dataclass(frozen=True)
class InversionMetrics:
    """How well a rendering reproduces its target (scales in the module docstring)."""

    mse: float
    psnr: float
    lpips: float
    lpips_net: str
    perceptual_backbone: str
    identity_distance: float | None
    identity_similarity: float | None
    identity_same_person: bool | None
    identity_note: str  # '' when identity was measured, else the reason it was not

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the fields, and ``meaning`` (``METRIC_MEANINGS``)."""
        return {**dataclasses.asdict(self), "meaning": dict(METRIC_MEANINGS)}

    def describe(self) -> str:
        """One line for people, see ``describe``."""
        return describe(self.to_dict())


def describe(metrics: Mapping[str, Any]) -> str:
    """Metrics (an ``InversionMetrics.to_dict()``, also one recorded by an older version)
    as one line with units, directions and thresholds, e.g. ``PSNR 17.05 dB (higher
    better), LPIPS 0.045 (lower better), identity dist 0.648 (same person < 0.6)``."""
    parts = []
    psnr, lpips, distance = (metrics.get(k) for k in ("psnr", "lpips", "identity_distance"))
    if isinstance(psnr, (int, float)):
        parts.append(f"PSNR {psnr:.2f} dB (higher better)")
    if isinstance(lpips, (int, float)):
        parts.append(f"LPIPS {lpips:.3f} (lower better)")
    if isinstance(distance, (int, float)):
        parts.append(f"identity dist {distance:.3f} (same person < {SAME_PERSON_DISTANCE:g})")
    elif metrics.get("identity_note", "").startswith("dlib found no face"):
        parts.append(f"identity n/a ({metrics['identity_note']})")
    return ", ".join(parts)


@torch.no_grad()
def evaluate(
    G: torch.nn.Module,
    ws: torch.Tensor,  # [1, num_ws, w_dim]
    target: torch.Tensor,  # [1, 3, R, R] float in [-1, 1]
    *,
    lpips_net: str = "alex",
    perceptual_backbone: str = "pretrained",
    identity: bool = True,
) -> InversionMetrics:
    """Render ``ws`` with ``G`` (noise_mode 'const') and compare the image with ``target``.

    Raises ``PerceptualWeightsMissing`` (before rendering) when ``perceptual_backbone`` is
    'pretrained' and torchvision's weights for ``lpips_net`` are not on disk.
    """
    perceptual = Perceptual(lpips_net, perceptual_backbone, generator_device(G))
    target = check_target(G, target)
    image = G.synthesis(check_ws(G, ws), noise_mode="const")  # [1, 3, R, R]
    return image_metrics(image, target, perceptual, identity=identity)


@torch.no_grad()
def image_metrics(
    image: torch.Tensor,  # [1, 3, H, W] in [-1, 1]
    target: torch.Tensor,  # [1, 3, H, W] in [-1, 1]
    perceptual: Perceptual,
    *,
    identity: bool = True,
) -> InversionMetrics:
    """Metrics of an already rendered ``image`` against ``target``; the rendering is clamped
    to [-1, 1] first (as it is when saved as an image)."""
    image = image.float().clamp(-1, 1)
    mse = float(F.mse_loss(image, target))
    psnr = math.inf if mse == 0 else 10 * math.log10(4.0 / mse)
    lpips = float(perceptual(image, target).mean())
    distance = similarity = same = None
    note = "identity not requested"
    if identity:
        distance, similarity, note = identity_scores(image, target)
        same = None if distance is None else distance < SAME_PERSON_DISTANCE
    return InversionMetrics(
        mse=mse,
        psnr=psnr,
        lpips=lpips,
        lpips_net=perceptual.net_name,
        perceptual_backbone=perceptual.backbone,
        identity_distance=distance,
        identity_similarity=similarity,
        identity_same_person=same,
        identity_note=note,
    )


def identity_scores(
    image: torch.Tensor,  # [1, 3, H, W] in [-1, 1]
    target: torch.Tensor,  # [1, 3, H, W] in [-1, 1]
) -> tuple[float | None, float | None, str]:
    """``(distance, cosine similarity, note)`` of dlib face descriptors; None with a note
    when no face is found in one of the images."""
    descriptors = []
    for name, tensor in (("target", target), ("reconstruction", image)):
        rgb = to_uint8_rgb(tensor)
        descriptor = face_descriptor(rgb)
        if descriptor is None:
            height, width = rgb.shape[:2]
            return None, None, f"dlib found no face in the {name} ({width}x{height} px)"
        descriptors.append(descriptor)
    a, b = descriptors
    distance = float(np.linalg.norm(a - b))
    similarity = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return distance, similarity, ""


def to_uint8_rgb(image: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] in [-1, 1] -> [H, W, 3] uint8 (rounded)."""
    pixels = ((image[0].float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())


def face_descriptor(rgb: np.ndarray) -> np.ndarray | None:
    """dlib's 128-d descriptor [128] of the largest face in ``rgb`` [H, W, 3] uint8, or None."""
    detector, landmarks, recognizer = _dlib_models()
    faces = detector(rgb, DETECTOR_UPSAMPLE)
    if len(faces) == 0:
        return None
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = landmarks(rgb, face)
    return np.asarray(recognizer.compute_face_descriptor(rgb, shape), dtype=np.float64)


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """dlib's face detector, 5-point landmark model and face recognition model (loaded once)."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(str(face_models.model_path(face_models.LANDMARKS_5)))
    recognizer = dlib.face_recognition_model_v1(
        str(face_models.model_path(face_models.FACE_RECOGNITION))
    )
    return detector, landmarks, recognizer
