"""Pydantic models of a spec file: photos, edits, points, masks (unknown keys forbidden).

Coordinates. A point is written ``[x, y]`` (pixels, x = column, y = row, pixel centres at
integers) in the space named by the nearest ``space:`` (point pair, else mask item, else
edit; default ``photo``; ``aligned`` pixels are those of the aligned face, whose side is the
generator's resolution unless ``align.output_size`` says otherwise), or ``{landmark: NAME_OR_INDEX, offset: [dx, dy]}``: a dlib
landmark of the aligned face plus an offset in fractions of the aligned image side, so one
definition fits every face. Mask sizes (radius, radii, feather) are fractions of the
aligned image side.

Paths are resolved against the spec file's directory (``~`` is expanded) while validating:
pass ``context={"base_dir": DIR}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.alignment.landmark_names import LANDMARK_NAMES, NUM_LANDMARKS, landmark_index
from pipeline.spec.sections import SpecModel, StrictFloat, did_you_mean
from pipeline.spec.settings import (
    AlignSection,
    CompositeSection,
    DragSection,
    InvertSection,
    StageSettings,
    merge_settings,
)

Space = Literal["photo", "aligned"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_NAME_RULE = "a name of letters, digits, '.', '_' or '-' starting with a letter or digit"


def spec_error(message: str, expected: str) -> PydanticCustomError:
    """A validation error that the report prints as ``message (got ...); expected ...``."""
    return PydanticCustomError("spec", "{message}", {"message": message, "expected": expected})


def _safe_name(value: Any) -> str:
    if not isinstance(value, str):
        raise spec_error("not a string", f"{_NAME_RULE} (quote numbers: '001')")
    if not _NAME_RE.match(value):
        raise spec_error("not usable as a file name", f"{_NAME_RULE}, at most 100 characters")
    return value


def _path(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise spec_error("not a file path", "a path, relative to the spec file's directory")
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


def _pair(value: Any) -> Any:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise spec_error("not a pair of numbers", "[x, y]")
    return value


SafeName = Annotated[str, BeforeValidator(_safe_name)]
SpecPath = Annotated[Path, BeforeValidator(_path)]
Pair = Annotated[tuple[StrictFloat, StrictFloat], BeforeValidator(_pair)]
Fraction = Annotated[StrictFloat, Field(gt=0, le=2)]  # of the aligned image side


class LandmarkPoint(SpecModel):
    """A dlib landmark of the aligned face (name or index 0-67, stored as the index) plus an
    offset in fractions of the aligned image side (x right, y down)."""

    landmark: int
    offset: Pair = (0.0, 0.0)

    @field_validator("landmark", mode="before")
    @classmethod
    def _index(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise spec_error("not a landmark", "a landmark name such as 'nose_tip' or 0-67")
        if isinstance(value, int) and not 0 <= value < NUM_LANDMARKS:
            raise spec_error("landmark index out of range", f"0-{NUM_LANDMARKS - 1}")
        try:
            return landmark_index(value)
        except ValueError:
            hint = did_you_mean(str(value).strip().lower(), list(LANDMARK_NAMES))
            raise spec_error(
                f"unknown landmark name{hint}",
                "a name such as nose_tip, mouth_left, chin, left_eye_outer, jaw_3 (see "
                "pipeline/alignment/landmark_names.py; 'left' = left of the image) or 0-67",
            ) from None

    @field_validator("offset")
    @classmethod
    def _offset(cls, value: tuple[float, float]) -> tuple[float, float]:
        if max(abs(value[0]), abs(value[1])) > 1.0:
            raise spec_error("offset too large", "fractions of the aligned side in -1..1")
        return value


def _point_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "{landmark}"
    if isinstance(value, (list, tuple)):
        return "[x, y]"
    return None


PointSpec = Annotated[
    Union[Annotated[Pair, Tag("[x, y]")], Annotated[LandmarkPoint, Tag("{landmark}")]],  # noqa: UP007
    Discriminator(
        _point_kind,
        custom_error_type="point_form",
        custom_error_message="[x, y] or {landmark: NAME, offset: [dx, dy]}",
    ),
]


class PointPair(SpecModel):
    """One drag: the handle point moves to the target point. ``[HANDLE, TARGET]`` works too."""

    handle: PointSpec
    target: PointSpec
    space: Space | None = None  # of the [x, y] points here; default: the edit's

    _where: str = PrivateAttr(default="")


def _point_pair(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"handle": value[0], "target": value[1]}
    if isinstance(value, (list, tuple)):
        raise spec_error("not a handle/target pair", "{handle: P, target: P} or [P, P]")
    return value


class _MaskItem(SpecModel):
    space: Space | None = None  # of the [x, y] points or the PNG here; default: the edit's
    feather: Annotated[StrictFloat, Field(ge=0, le=0.5)] = 0.0  # edge blur, fraction of side


class PngMask(_MaskItem):
    """A mask image (alpha channel if it has one, else grey levels; white = may move)."""

    png: SpecPath


class CircleMask(_MaskItem):
    shape: Literal["circle"]
    center: PointSpec
    radius: Fraction


class EllipseMask(_MaskItem):
    shape: Literal["ellipse"]
    center: PointSpec
    radii: tuple[Fraction, Fraction]  # along the ellipse's own x and y axes
    angle: Annotated[StrictFloat, Field(ge=-360, le=360)] = 0.0  # degrees, x toward y


class PolygonMask(_MaskItem):
    shape: Literal["polygon"]
    points: Annotated[list[PointSpec], Field(min_length=3)]


MASK_SHAPES = ("circle", "ellipse", "polygon")


def _mask_kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if "png" in value:
        return "png mask"
    shape = value.get("shape")
    return f"{shape} mask" if shape in MASK_SHAPES else None


MaskItem = Annotated[
    Union[  # noqa: UP007
        Annotated[PngMask, Tag("png mask")],
        Annotated[CircleMask, Tag("circle mask")],
        Annotated[EllipseMask, Tag("ellipse mask")],
        Annotated[PolygonMask, Tag("polygon mask")],
    ],
    Discriminator(
        _mask_kind,
        custom_error_type="mask_form",
        custom_error_message="{png: FILE} or {shape: circle | ellipse | polygon, ...}",
    ),
]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class EditSpec(SpecModel):
    """One edit of a photo: drag ``points`` (inside ``mask``), optionally after edit ``from``."""

    name: SafeName
    points: Annotated[list[Annotated[PointPair, BeforeValidator(_point_pair)]], Field(min_length=1)]
    space: Space = "photo"
    mask: Annotated[list[MaskItem] | None, BeforeValidator(_as_list)] = None  # union of items
    from_: SafeName | None = Field(default=None, alias="from")
    drag: DragSection | None = None
    composite: CompositeSection | None = None

    _photo_id: str = PrivateAttr(default="")
    _where: str = PrivateAttr(default="")

    @property
    def photo_id(self) -> str:
        """Id of the photo this edit belongs to (set by ``load_spec``)."""
        return self._photo_id

    @property
    def where(self) -> str:
        """``file:line:col`` of this edit in the spec (set by ``load_spec``)."""
        return self._where

    def point_where(self, index: int) -> str:
        """``file:line:col`` of point pair ``index``."""
        return self.points[index]._where or self._where


Face = Union[Literal["largest", "all"], int]  # noqa: UP007


class PhotoSpec(SpecModel):
    """One photo: which face to edit, optional landmarks file, its edits and overrides."""

    id: SafeName
    path: SpecPath
    face: Face = "largest"
    landmarks: SpecPath | None = None
    edits: list[EditSpec] = Field(default_factory=list)
    align: AlignSection | None = None
    invert: InvertSection | None = None
    drag: DragSection | None = None
    composite: CompositeSection | None = None

    _where: str = PrivateAttr(default="")

    @field_validator("face", mode="before")
    @classmethod
    def _face(cls, value: Any) -> Any:
        if value in ("largest", "all"):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise spec_error(
            "not a face choice",
            "'largest', 'all' or a face index >= 0 (faces counted left to right)",
        )

    @property
    def where(self) -> str:
        """``file:line:col`` of this photo in the spec (set by ``load_spec``)."""
        return self._where

    def edit(self, name: str) -> EditSpec:
        """The edit called ``name`` (KeyError if none)."""
        for edit in self.edits:
            if edit.name == name:
                return edit
        raise KeyError(name)


class Spec(SpecModel):
    """A validated spec file; build it with ``load_spec(path)``.

    ``path`` is the spec file; every path in it is absolute (resolved against its directory).
    """

    version: Literal[1] = 1
    generator: SpecPath
    align: AlignSection | None = None
    invert: InvertSection | None = None
    drag: DragSection | None = None
    composite: CompositeSection | None = None
    photos: Annotated[list[PhotoSpec], Field(min_length=1)]

    _path: Path = PrivateAttr(default=Path("<spec>"))
    _settings: dict[tuple[str, str | None], StageSettings] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> Path:
        """The spec file."""
        return self._path

    def photo(self, photo_id: str) -> PhotoSpec:
        """The photo with id ``photo_id`` (KeyError if none)."""
        for photo in self.photos:
            if photo.id == photo_id:
                return photo
        raise KeyError(photo_id)

    def settings(self, photo: PhotoSpec | str, edit: EditSpec | str | None = None) -> StageSettings:
        """Stage configs for ``photo`` (and ``edit``): defaults, preset, top, photo, edit.

        ``align``, ``project`` and ``tune`` do not depend on the edit (edits have no such
        sections); ``drag`` and ``composite`` do.
        """
        photo = self.photo(photo) if isinstance(photo, str) else photo
        if isinstance(edit, str):
            edit = photo.edit(edit)
        key = (photo.id, None if edit is None else edit.name)
        if key not in self._settings:
            levels = [self, photo] if edit is None else [self, photo, edit]
            self._settings[key] = merge_settings(levels)
        return self._settings[key]
