"""What the run's summary table says of each result: numbers with their unit, their space
(aligned px: the face crop the generator sees; photo px: the user's photo) and which way
is better, and what happened on the way (a resumed loop, an early stop, an edit that had
nothing to do).
"""

from __future__ import annotations

from collections.abc import Sequence

from inversion.metrics import describe as describe_inversion
from pipeline.stages.align import FaceRecord
from pipeline.stages.invert import describe_run
from pipeline.store import Result

LEGEND = (
    "aligned px: pixels of the face crop the generator works on; photo px: pixels of the "
    "photo. Inversion metrics compare the reconstruction with the aligned face."
)


def metrics(result: Result, faces: Sequence[FaceRecord] = ()) -> str:
    """The summary's metrics column for ``result`` (``faces``: the photo's aligned faces, to
    give an edit's distances in photo pixels too)."""
    if result.stage == "invert":
        said = describe_inversion(result.metrics)
        said = f"aligned face: {said}" if said else said
        happened = describe_run(result.info)
        return f"{said}; {happened}" if happened and said else said or happened
    if result.stage == "edit":
        face = _face(result, faces)
        scale = None if face is None else face.transform.scale
        return edit_metrics(result.metrics, scale, result.info)
    if result.stage == "composite":
        return composite_metrics(result.metrics)
    return ""


def _face(result: Result, faces: Sequence[FaceRecord]) -> FaceRecord | None:
    """The face an edit result was made for (by its geometry digest)."""
    geometry = result.manifest.get("material", {}).get("inputs", {}).get("face")
    return next((face for face in faces if face.geometry == geometry), None)


def _pixels(values: Sequence[float], scale: float | None) -> str:
    """'1.6, 0.8 aligned px = 12, 6 photo px' (one value per handle)."""
    text = ", ".join(f"{v:.1f}" for v in values) + " aligned px"
    if scale:
        text += " = " + ", ".join(f"{v * scale:.0f}" for v in values) + " photo px"
    return text


def edit_metrics(
    m: dict[str, object], scale: float | None = None, info: dict[str, object] | None = None
) -> str:
    """An edit's distances to the targets, with space, direction and goal; its steps
    (``scale``: photo px per aligned px of its face; ``info``: the result's run notes)."""
    final = list(m.get("final_distance") or [])  # type: ignore[call-overload]
    stop = m.get("stop_distance")
    goal = f"goal <= {stop:g} aligned px" if isinstance(stop, (int, float)) else ""
    steps = m.get("steps")
    if steps == 0 and m.get("converged"):
        start = list(m.get("start_distance") or final)  # type: ignore[call-overload]
        return (
            f"handles already on their targets ({_pixels(start, scale)}; {goal}): nothing "
            "to drag, the edit changes nothing"
        )
    text = ""
    if final:
        better = f"lower better, {goal}" if goal else "lower better"
        text = f"distance to target {_pixels(final, scale)} ({better})"
    if steps is not None:
        text += f", {steps} step{'' if steps == 1 else 's'}"
        text += "" if m.get("converged") else " (not converged)"
    for item in (info or {}).get("resumed") or []:
        if isinstance(item, dict):
            text += f"; resumed at step {item.get('from_step')}"
    return text


def composite_metrics(m: dict[str, object]) -> str:
    """How much of the photo the composite changed."""
    touched = 100 * float(m.get("touched_fraction", 0))  # type: ignore[arg-type]
    if not touched:
        return "changed nothing: output = input photo"
    share = f"{touched:.1f}" if touched >= 0.1 else f"{touched:.1g}"
    return f"touched {share}% of the photo's pixels"
