"""What the page sends (request bodies, checked with pydantic) and how an edit of the page
becomes an edit of the spec, as it is written into the file.

A point on the page is one of:

- ``{"aligned": [x, y]}``: placed or moved with the mouse, aligned-face pixels (pixel
  centres at integers). Written in the pair's space (its ``space:``, else the edit's,
  default ``photo``): photo pixels through the face's ``AlignTransform``, rounded to 0.01 px;
- ``{"landmark": i}``: snapped to dlib landmark ``i``: written ``{landmark: NAME}``, so it
  follows the face like any landmark-anchored point;
- ``{"written": VALUE}``: a point as the spec writes it, untouched (the page got it from the
  spec or from an earlier answer): written back as it was, so an unchanged edit keeps its
  stage keys.

An edit's mask is the spec's own items, kept as written (``mask``), plus what the page's
brush painted (``painted``: the id of an uploaded PNG, written as an aligned-space PNG item).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.alignment.landmark_names import NUM_LANDMARKS, landmark_name
from pipeline.alignment.transform import AlignTransform, aligned_to_photo
from pipeline.errors import UsageError

DECIMALS = 2  # photo/aligned pixel coordinates are written rounded to 0.01 px
MAX_PAIRS = 64
MAX_CHAIN = 32
MASK_ID = r"^[0-9a-f]{64}$"


class BadRequest(UsageError):
    """A request body that is not what the page sends (HTTP 400, the message says why)."""


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-100_000, le=100_000)]


class PointIn(_Form):
    aligned: tuple[Coordinate, Coordinate] | None = None
    landmark: Annotated[int, Field(ge=0, lt=NUM_LANDMARKS)] | None = None
    written: Any = None

    @model_validator(mode="after")
    def _one_form(self) -> PointIn:
        given = [self.aligned is not None, self.landmark is not None, self.written is not None]
        if sum(given) != 1:
            raise ValueError("a point is exactly one of aligned, landmark or written")
        return self


class PairIn(_Form):
    handle: PointIn
    target: PointIn
    space: Literal["photo", "aligned"] | None = None  # the pair's own, as written


class EditIn(_Form):
    """One edit of the page's chain (the last one is the edit being made)."""

    name: str = Field(min_length=1, max_length=100)
    from_: str | None = Field(default=None, alias="from", max_length=100)
    pairs: list[PairIn] = Field(min_length=1, max_length=MAX_PAIRS)
    space: Literal["photo", "aligned"] = "photo"
    mask: list[dict[str, Any]] = Field(default_factory=list, max_length=32)  # as written
    painted: Annotated[str, Field(pattern=MASK_ID)] | None = None
    drag: dict[str, Any] | None = None  # the edit's drag section, as written
    composite: dict[str, Any] | None = None


class PhotoIn(_Form):
    photo: str = Field(min_length=1, max_length=100)


class FaceIn(PhotoIn):
    face: Annotated[int, Field(ge=0, le=10_000)]  # the face's index among the photo's faces


class ChainIn(FaceIn):
    edits: list[EditIn] = Field(min_length=1, max_length=MAX_CHAIN)

    @model_validator(mode="after")
    def _chained(self) -> ChainIn:
        names = [edit.name for edit in self.edits]
        if len(set(names)) != len(names):
            raise ValueError("the edits of a chain need distinct names")
        for before, after in zip(self.edits, self.edits[1:], strict=False):
            if after.from_ != before.name:
                raise ValueError(f"edit {after.name!r} must start from {before.name!r}")
        return self


def parse(model: type[_Form], data: Any) -> Any:
    """``model`` of a request's JSON; ``BadRequest`` naming the first problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:3]:
            where = ".".join(str(part) for part in error["loc"]) or "body"
            problems.append(f"{where}: {error['msg']}")
        raise BadRequest("bad request: " + "; ".join(problems)) from None


def _rounded(xy: np.ndarray) -> list[float]:
    return [round(float(v), DECIMALS) + 0.0 for v in xy]


def spec_point(point: PointIn, space: str, transform: AlignTransform) -> Any:
    """A page point as the spec writes it (see the module docstring)."""
    if point.written is not None:
        return point.written
    if point.landmark is not None:
        return {"landmark": landmark_name(point.landmark)}
    xy = np.asarray(point.aligned, dtype=np.float64)
    if space == "photo":
        xy = aligned_to_photo(xy, transform)[0]
    return _rounded(xy)


def spec_edit(
    edit: EditIn, transform: AlignTransform, painted_png: Callable[[str], str]
) -> dict[str, Any]:
    """The page's edit as the spec writes it; ``painted_png(id)`` is the path to write for
    a painted mask."""
    out: dict[str, Any] = {"name": edit.name}
    if edit.from_ is not None:
        out["from"] = edit.from_
    points = []
    for pair in edit.pairs:
        space = pair.space or edit.space
        written: dict[str, Any] = {
            "handle": spec_point(pair.handle, space, transform),
            "target": spec_point(pair.target, space, transform),
        }
        if pair.space is not None:
            written["space"] = pair.space
        points.append(written)
    out["points"] = points
    if edit.space != "photo":
        out["space"] = edit.space
    mask = [dict(item) for item in edit.mask]
    if edit.painted is not None:
        mask.append({"png": painted_png(edit.painted), "space": "aligned"})
    if mask:
        out["mask"] = mask
    if edit.drag:
        out["drag"] = dict(edit.drag)
    if edit.composite:
        out["composite"] = dict(edit.composite)
    return out


def page_edit(
    written: dict[str, Any], mask: list[dict[str, Any]] | None = None, painted: str | None = None
) -> dict[str, Any]:
    """An edit as the spec writes it, in the page's form (every point ``written``).

    ``mask``: the spec mask items to show as the edit's own (default: all of ``written``'s);
    ``painted``: the id of the page's painted mask, whose item ``mask`` then leaves out."""
    pairs = []
    for raw in written.get("points") or []:
        if isinstance(raw, (list, tuple)) and len(raw) == 2:
            raw = {"handle": raw[0], "target": raw[1]}
        pairs.append(
            {
                "handle": {"written": raw.get("handle")},
                "target": {"written": raw.get("target")},
                "space": raw.get("space"),
            }
        )
    if mask is None:
        items = written.get("mask")
        mask = [items] if isinstance(items, dict) else list(items or [])
    return {
        "name": written.get("name"),
        "from": written.get("from"),
        "pairs": pairs,
        "space": written.get("space", "photo"),
        "mask": mask,
        "painted": painted,
        "drag": written.get("drag"),
        "composite": written.get("composite"),
    }
