"""Names for dlib's 68 face landmarks (0-based indices), so edits can say ``mouth_left``.

Side convention: IMAGE sides. "left" is the side with the smaller x (the left of the picture
as you look at it), which is the SUBJECT's right. So ``left_eye`` is the eye on the left of
the image (dlib points 36-41) and ``mouth_left`` is the mouth corner on the left of the image
(point 48). For a frontal face dlib numbers the jaw from image-left (0) to image-right (16).

Groups (dlib's iBUG 300-W numbering):
    jaw_0..jaw_16             0-16   (chin = 8)
    left_eyebrow_0..4         17-21  (outer to inner)
    right_eyebrow_0..4        22-26  (inner to outer)
    nose_bridge_0..3          27-30  (top to tip; nose_tip = 30)
    nose_lower_0..4           31-35  (image-left nostril to image-right; nose_bottom = 33)
    left_eye_0..5             36-41  (outer corner, top, top, inner corner, bottom, bottom)
    right_eye_0..5            42-47  (inner corner, top, top, outer corner, bottom, bottom)
    outer_lip_0..11           48-59  (mouth_left = 48, upper_lip_top = 51, mouth_right = 54,
                                      lower_lip_bottom = 57)
    inner_lip_0..7            60-67  (upper_lip_bottom = 62, lower_lip_top = 66)
"""

from __future__ import annotations

from pipeline.errors import UsageError

NUM_LANDMARKS = 68

_GROUPS = (
    ("jaw", 0, 17),
    ("left_eyebrow", 17, 5),
    ("right_eyebrow", 22, 5),
    ("nose_bridge", 27, 4),
    ("nose_lower", 31, 5),
    ("left_eye", 36, 6),
    ("right_eye", 42, 6),
    ("outer_lip", 48, 12),
    ("inner_lip", 60, 8),
)

# Single named anchors (image-side convention, see the module docstring).
ANCHORS: dict[str, int] = {
    "jaw_left": 0,
    "chin": 8,
    "jaw_right": 16,
    "left_eyebrow_outer": 17,
    "left_eyebrow_center": 19,
    "left_eyebrow_inner": 21,
    "right_eyebrow_inner": 22,
    "right_eyebrow_center": 24,
    "right_eyebrow_outer": 26,
    "nose_root": 27,
    "nose_tip": 30,
    "nostril_left": 31,
    "nose_bottom": 33,
    "nostril_right": 35,
    "left_eye_outer": 36,
    "left_eye_top_outer": 37,
    "left_eye_top_inner": 38,
    "left_eye_inner": 39,
    "left_eye_bottom_inner": 40,
    "left_eye_bottom_outer": 41,
    "right_eye_inner": 42,
    "right_eye_top_inner": 43,
    "right_eye_top_outer": 44,
    "right_eye_outer": 45,
    "right_eye_bottom_outer": 46,
    "right_eye_bottom_inner": 47,
    "mouth_left": 48,
    "upper_lip_left": 50,
    "upper_lip_top": 51,
    "upper_lip_right": 52,
    "mouth_right": 54,
    "lower_lip_right": 56,
    "lower_lip_bottom": 57,
    "lower_lip_left": 58,
    "mouth_inner_left": 60,
    "upper_lip_bottom": 62,
    "mouth_inner_right": 64,
    "lower_lip_top": 66,
}

LANDMARK_NAMES: dict[str, int] = {
    f"{group}_{i}": start + i for group, start, count in _GROUPS for i in range(count)
}
LANDMARK_NAMES.update(ANCHORS)


class LandmarkNameError(UsageError, ValueError):
    """An unknown landmark name or an index outside 0-67 (a ValueError too, for validators)."""


def landmark_index(name_or_index: str | int) -> int:
    """The 0-based dlib index of a landmark given by name, index, or index as a string."""
    if isinstance(name_or_index, bool):
        raise LandmarkNameError(f"landmark {name_or_index!r} is not a name or an index 0-67")
    if isinstance(name_or_index, int):
        index = name_or_index
    elif isinstance(name_or_index, str):
        key = name_or_index.strip().lower().replace("-", "_").replace(" ", "_")
        if key in LANDMARK_NAMES:
            return LANDMARK_NAMES[key]
        try:
            index = int(key)
        except ValueError:
            raise LandmarkNameError(
                f"unknown landmark {name_or_index!r}: use an index 0-67 or one of "
                f"{', '.join(ANCHORS)} (or a group point such as jaw_3, left_eye_2, "
                "outer_lip_7; 'left' means the left of the image)"
            ) from None
    else:
        raise LandmarkNameError(
            f"landmark {name_or_index!r} is a {type(name_or_index).__name__}: "
            "give a name such as 'nose_tip' or an index 0-67"
        )
    if not 0 <= index < NUM_LANDMARKS:
        raise LandmarkNameError(f"landmark index {index} is outside 0-67 (dlib's 68 points)")
    return index


def landmark_name(index: int) -> str:
    """The preferred name of a landmark index: its anchor name if any, else its group point."""
    return _PREFERRED_NAME[landmark_index(index)]


# Anchor names win over group-point names (built once; read-only).
_PREFERRED_NAME = {index: name for name, index in LANDMARK_NAMES.items() if name not in ANCHORS}
_PREFERRED_NAME.update({index: name for name, index in ANCHORS.items()})
