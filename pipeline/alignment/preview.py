"""Landmark previews: faces' boxes, the 68 landmarks with their indices and named anchors.

Used by ``dragpipe landmarks`` so users can see which points their edits refer to. Small
photos are drawn enlarged (labels must stay legible), huge ones reduced.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.alignment.detect import Face
from pipeline.alignment.ffhq import ffhq_quad
from pipeline.alignment.landmark_names import ANCHORS

# Anchors labelled by name on the previews (every point gets its index).
LABELLED_ANCHORS = (
    "chin",
    "jaw_left",
    "jaw_right",
    "left_eyebrow_center",
    "right_eyebrow_center",
    "left_eye_outer",
    "left_eye_inner",
    "right_eye_inner",
    "right_eye_outer",
    "nose_tip",
    "mouth_left",
    "mouth_right",
    "upper_lip_top",
    "lower_lip_bottom",
)

FACE_COLOURS = ((255, 64, 64), (64, 160, 255), (64, 220, 96), (255, 180, 0), (220, 80, 255))
POINT_COLOUR = (255, 255, 0)
INDEX_COLOUR = (255, 255, 255)
ANCHOR_COLOUR = (0, 255, 255)
TARGET_FACE_PX = 640  # previews are scaled so the largest face box is about this wide
MAX_PREVIEW_SIDE = 2048


def preview_scale(photo_size: tuple[int, int], faces: list[Face]) -> float:
    """Drawing scale: the largest face about TARGET_FACE_PX wide, the canvas <= 2048 px."""
    width, height = photo_size
    widest = max((face.box[2] - face.box[0] for face in faces), default=0.0)
    scale = TARGET_FACE_PX / widest if widest > 0 else 1.0
    return float(min(scale, MAX_PREVIEW_SIDE / max(width, height)))


def _font(size: float) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, round(size)))


def draw_landmarks(
    draw: ImageDraw.ImageDraw,
    points: np.ndarray,  # [68, 2] canvas pixels (pixel centres at integers)
    unit: float,  # marker size in canvas pixels (about one landmark spacing / 3)
) -> None:
    """Dots, indices and named anchors of one face's 68 landmarks."""
    index_font, name_font = _font(unit * 2.2), _font(unit * 2.6)
    radius = max(1.5, unit * 0.45)
    for i, (x, y) in enumerate(points):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=POINT_COLOUR)
        draw.text(
            (x + radius, y - radius),
            str(i),
            fill=INDEX_COLOUR,
            font=index_font,
            stroke_width=1,
            stroke_fill=(0, 0, 0),
        )
    for name in LABELLED_ANCHORS:
        x, y = points[ANCHORS[name]]
        draw.ellipse(
            (x - 2 * radius, y - 2 * radius, x + 2 * radius, y + 2 * radius),
            outline=ANCHOR_COLOUR,
            width=max(1, round(radius / 2)),
        )
        draw.text(
            (x + radius, y + radius),
            name,
            fill=ANCHOR_COLOUR,
            font=name_font,
            stroke_width=1,
            stroke_fill=(0, 0, 0),
        )


def _landmark_unit(points: np.ndarray) -> float:
    """A marker size from the face's scale: 1/200 of its FFHQ crop side."""
    quad = ffhq_quad(points)
    return float(np.hypot(*(quad[3] - quad[0]))) / 200.0


def photo_preview(rgb: np.ndarray, faces: list[Face]) -> Image.Image:  # rgb: [H, W, 3] uint8
    """The photo with every face's box (labelled with index and score) and landmarks."""
    height, width = rgb.shape[:2]
    scale = preview_scale((width, height), faces)
    canvas = Image.fromarray(rgb)
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        canvas = canvas.resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(canvas)
    sx, sy = canvas.size[0] / width, canvas.size[1] / height
    for face in faces:
        colour = FACE_COLOURS[face.index % len(FACE_COLOURS)]
        points = (face.landmarks + 0.5) * [sx, sy] - 0.5
        unit = max(3.0, _landmark_unit(points))
        left, top, right, bottom = face.box
        box = ((left + 0.5) * sx - 0.5, (top + 0.5) * sy - 0.5)
        box += ((right + 0.5) * sx - 0.5, (bottom + 0.5) * sy - 0.5)
        draw.rectangle(box, outline=colour, width=max(2, round(unit / 3)))
        score = "override" if face.source == "override" else f"score {face.score:.2f}"
        draw.text(
            (box[0], box[1] - unit * 6),
            f"face {face.index} ({score})",
            fill=colour,
            font=_font(unit * 4),
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
        draw_landmarks(draw, points, unit)
    return canvas


def aligned_preview(aligned: Image.Image, points: np.ndarray) -> Image.Image:
    """The aligned crop with the face's landmarks ([68, 2] aligned pixels) drawn on it."""
    canvas = aligned.convert("RGB")
    if canvas.size[0] < 1024:  # too small for legible labels: draw on an enlarged copy
        factor = 1024 / canvas.size[0]
        canvas = canvas.resize((1024, 1024), Image.Resampling.LANCZOS)
        points = (points + 0.5) * factor - 0.5
    draw = ImageDraw.Draw(canvas)
    draw_landmarks(draw, points, canvas.size[0] / 200.0)  # FFHQ crop side = image side
    return canvas
