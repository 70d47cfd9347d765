"""A synthetic edit with a known right answer, for the composite stage's tests and bench.

A photo (smooth colour ramps plus fine texture, and one feature per face) is cropped along a
known quad, as the align stage would. The feature is a textured blob that moves over the
still face (``kind='blob'``), or a face-like object that moves as a whole (``kind='face'``:
skin with fine pores, a textured hair cap with a curved edge, eyes and a mouth), as a drag
that lifts the whole face does: its flat parts and the edges along the motion barely change
between reconstruction and edit, yet they move. The "reconstruction" is that crop
degraded the way an inversion is imperfect (blurred, colour shifted); the "edited" image is
the same degradation of the crop of the IDEAL photo, where each face's blob has moved. The
ideal photo is what a perfect composite would produce; nothing else differs from the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.alignment.transform import AlignTransform
from pipeline.compositing.compose import FaceEdit
from pipeline.compositing.warp import warp_to_aligned


@dataclass(frozen=True)
class FacePlacement:
    """Where a synthetic face sits in the photo (photo pixels, radians)."""

    centre: tuple[float, float]
    half_side: float  # half the quad's side
    angle: float = 0.0
    move: tuple[float, float] = (12.0, -8.0)  # the edit moves the feature by this, photo px
    kind: str = "blob"  # 'blob' (moves over the still face) or 'face' (all of it moves)


@dataclass
class SyntheticScene:
    photo: np.ndarray  # [H, W, 3] uint8
    ideal: np.ndarray  # [H, W, 3] uint8: the photo with every blob moved
    faces: list[FaceEdit]


def _ramp_and_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), 1.0)
    texture *= 25.0
    return np.stack(
        [
            110 + 60 * xx / width + texture,
            90 + 80 * yy / height + texture,
            80 + 40 * (xx + yy) / (width + height) + 0.8 * texture,
        ],
        axis=-1,
    )  # [H, W, 3] float32


def _draw_blob(
    image: np.ndarray, centre: tuple[float, float], radius: float, detail: np.ndarray
) -> None:
    """Alpha-blend a dark-blue disc with soft edge and its own fine detail, in place."""
    cx, cy = centre
    r = int(np.ceil(radius * 3))
    h, w = image.shape[:2]
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dist = np.hypot(xx - cx, yy - cy)
    a = np.clip((radius - dist) / (0.25 * radius) + 0.5, 0.0, 1.0)[:, :, None]
    # Detail that moves with the blob: sampled relative to the blob's centre.
    dy = np.clip((yy - cy + r).astype(int), 0, detail.shape[0] - 1)
    dx = np.clip((xx - cx + r).astype(int), 0, detail.shape[1] - 1)
    colour = np.array([50.0, 40.0, 150.0], dtype=np.float32) + detail[dy, dx][:, :, None]
    image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - a) + colour * a


def _draw_face(
    image: np.ndarray, centre: tuple[float, float], radius: float, detail: np.ndarray
) -> None:
    """Draw a face-like object (detail [2r + 1, 2r + 1] moves with it, r = ceil(radius)), in place."""
    cx, cy = centre
    r = int(np.ceil(radius))
    h, w = image.shape[:2]
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    texture = detail[
        np.clip((dy + r).astype(int), 0, 2 * r), np.clip((dx + r).astype(int), 0, 2 * r)
    ][:, :, None]
    inside = np.clip((1.0 - np.hypot(dx / (0.8 * radius), dy / radius)) * 0.8 * radius, 0, 1)
    out = image[y0:y1, x0:x1]
    skin = np.array([215.0, 170.0, 140.0], dtype=np.float32) + 0.5 * texture
    out = out * (1 - inside[:, :, None]) + skin * inside[:, :, None]
    hairline = -0.25 * radius + 0.18 * radius * np.sin(dx / radius * 3.0)
    hair = (np.clip((hairline - dy) * 0.7 + 0.5, 0, 1) * inside)[:, :, None]
    out = out * (1 - hair) + (np.array([90.0, 60.0, 35.0], dtype=np.float32) + texture) * hair
    for side in (-0.35, 0.35):
        eye = np.hypot(dx - side * radius, dy * 1.6 - 0.05 * radius)
        eye = np.clip((0.12 * radius - eye) * 0.8, 0, 1)[:, :, None]
        out = out * (1 - eye) + np.array([40.0, 30.0, 30.0], dtype=np.float32) * eye
    mouth = np.abs(dy - 0.45 * radius - 0.1 * radius * (dx / radius) ** 2)
    mouth = (np.clip((2.0 - mouth) * 0.6, 0, 1) * (np.abs(dx) < 0.35 * radius))[:, :, None]
    out = out * (1 - mouth) + np.array([150.0, 60.0, 60.0], dtype=np.float32) * mouth
    image[y0:y1, x0:x1] = out


def imperfect(aligned: np.ndarray) -> np.ndarray:  # [S, S, 3] float32 -> same
    """What an inversion makes of a crop: fine detail lost, colours a little off."""
    size = aligned.shape[0]
    blurred = ndimage.gaussian_filter(aligned, sigma=(size / 170.0, size / 170.0, 0))
    shifted = blurred * np.array([1.04, 0.96, 1.0], dtype=np.float32) + np.array(
        [6.0, -5.0, 3.0], dtype=np.float32
    )
    return np.clip(shifted, 0.0, 255.0)


def make_scene(
    size: tuple[int, int] = (640, 480),  # (width, height)
    faces: tuple[FacePlacement, ...] = (FacePlacement((320.0, 240.0), 150.0, 0.2),),
    output_size: int = 256,
    seed: int = 0,
) -> SyntheticScene:
    """Build the photo, the ideal result and one ``FaceEdit`` per placement."""
    width, height = size
    rng = np.random.default_rng(seed)
    background = _ramp_and_texture(height, width, rng)
    photo = background.copy()
    ideal = background.copy()
    placed = []
    for face in faces:
        if face.kind not in ("blob", "face"):
            raise ValueError(f"FacePlacement.kind must be 'blob' or 'face', got {face.kind!r}")
        draw, radius = (_draw_blob, 0.12) if face.kind == "blob" else (_draw_face, 0.55)
        radius *= face.half_side
        r = int(np.ceil(radius * 3)) if face.kind == "blob" else int(np.ceil(radius))
        sigma = 0.7 if face.kind == "blob" else 0.8
        detail = ndimage.gaussian_filter(rng.normal(0.0, 30.0, (2 * r + 1, 2 * r + 1)), sigma)
        cx, cy = face.centre
        draw(photo, (cx, cy), radius, detail)
        draw(ideal, (cx + face.move[0], cy + face.move[1]), radius, detail)
        placed.append(face)
    photo8 = np.clip(np.rint(photo), 0, 255).astype(np.uint8)
    ideal8 = np.clip(np.rint(ideal), 0, 255).astype(np.uint8)
    edits = []
    for index, face in enumerate(placed):
        c = np.asarray(face.centre, dtype=np.float64)
        ex = np.array([np.cos(face.angle), np.sin(face.angle)]) * face.half_side
        ey = np.array([-np.sin(face.angle), np.cos(face.angle)]) * face.half_side
        quad = np.stack([c - ex - ey, c - ex + ey, c + ex + ey, c + ex - ey])
        transform = AlignTransform(quad=quad, output_size=output_size, photo_size=(width, height))
        recon = imperfect(warp_to_aligned(photo8.astype(np.float32), transform))
        edited = imperfect(warp_to_aligned(ideal8.astype(np.float32), transform))
        # 68 "landmarks": an ellipse around the feature, like a face's outline in the crop.
        t = np.linspace(0.0, 2.0 * np.pi, 68, endpoint=False)
        landmarks = np.stack(
            [output_size * (0.5 + 0.3 * np.cos(t)), output_size * (0.52 + 0.34 * np.sin(t))], 1
        )
        edits.append(
            FaceEdit(transform, recon, edited, landmarks=landmarks, name=f"face {index + 1}")
        )
    return SyntheticScene(photo=photo8, ideal=ideal8, faces=edits)
