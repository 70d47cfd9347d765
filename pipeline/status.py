"""What a run of a spec would do, without running anything: per photo and stage, whether the
result is cached, to be computed, or stale (and why), and the keys it would use.

Every key is computed from the spec, the input files' digests and the upstream keys alone
(never from upstream results' contents), so this needs no computation. The number of faces
of a ``face: all`` photo comes from its alignment result when cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.plan import PhotoPlan
from pipeline.stages import align as align_stage
from pipeline.stages import composite as composite_stage
from pipeline.stages import edit as edit_stage
from pipeline.stages import invert as invert_stage
from pipeline.stages.common import StageContext
from pipeline.store import KeyMaterial, explain_change

CACHED = "cached"
TO_COMPUTE = "to be computed"
STALE = "stale"


@dataclass
class SlotStatus:
    photo: str
    stage: str
    what: str
    slot: str  # the ref name, e.g. 'edit-smile-face0'
    material: KeyMaterial
    state: str  # CACHED | TO_COMPUTE | STALE
    why: str = ""


def _faces(ctx: StageContext, plan: PhotoPlan, align_key: KeyMaterial) -> tuple[int, list | None]:
    """(number of faces, their records when the alignment is cached)."""
    if not ctx.store.exists("align", align_key.key):
        if plan.face != "all":
            return 1, None
        ref_dir = ctx.store.root / "refs" / plan.photo_id
        return max(1, len(list(ref_dir.glob("invert-face*.json")))), None
    records = align_stage.faces(ctx.store.lookup(align_key))
    return len(records), records


def photo_status(ctx: StageContext, plan: PhotoPlan) -> list[SlotStatus]:
    """The status of every stage slot of one photo, in run order."""
    out: list[SlotStatus] = []

    def add(stage: str, what: str, slot: str, material: KeyMaterial) -> None:
        out.append(_judge(ctx, plan.photo_id, stage, what, slot, material))

    align = align_stage.material(
        ctx, plan.path, plan.landmarks, plan.face, plan.align_config, plan.resolution
    )
    add("align", "faces", "align", align)
    count, records = _faces(ctx, plan, align)
    face_names = [f"face {k}" if count > 1 else "" for k in range(count)]
    inverts = []
    for k in range(count):
        material = invert_stage.material(ctx, align.key, k, plan.project_config, plan.tune_config)
        add("invert", f"face {records[k]['index'] if records else k}", f"invert-face{k}", material)
        inverts.append(material)
    done: dict[str, dict[int, KeyMaterial]] = {}
    for edit in plan.edits:
        keys: dict[int, KeyMaterial] = {}
        indices = edit.face_indices(records) if records else list(range(count))
        for k in indices:
            start_key = done[edit.start].get(k) if edit.start else None
            start = start_key.key if start_key is not None else None
            material = edit_stage.material(
                inverts[k].key,
                start,
                k,
                edit.drag_config,
                edit.key_params,
                edit.mask_digest(ctx.store),
            )
            what = edit.name + (f" ({face_names[k]})" if face_names[k] else "")
            add("edit", what, f"edit-{edit.name}-face{k}", material)
            keys[k] = material
        done[edit.name] = keys
        material = composite_stage.material(
            ctx,
            plan.path,
            align.key,
            indices,
            [inverts[k].key for k in indices],
            [keys[k].key for k in indices],
            edit.composite_config,
        )
        add("composite", edit.name, f"composite-{edit.name}", material)
    return out


def _judge(
    ctx: StageContext, photo: str, stage: str, what: str, slot: str, material: KeyMaterial
) -> SlotStatus:
    status = SlotStatus(photo, stage, what, slot, material, TO_COMPUTE)
    if ctx.store.exists(stage, material.key):
        status.state = CACHED
        return status
    ref = ctx.store.read_ref(photo, slot)
    if ref is None:
        status.why = "never computed"
    elif ref.get("key") == material.key:
        status.why = "result missing (removed or damaged)"
    else:
        status.state = STALE
        status.why = explain_change(ref["material"], material.to_dict())
    return status


def used_keys(statuses: list[SlotStatus]) -> set[tuple[str, str]]:
    return {(s.stage, s.material.key) for s in statuses}


def summarise(statuses: list[SlotStatus]) -> dict[str, Any]:
    counts = {CACHED: 0, TO_COMPUTE: 0, STALE: 0}
    for status in statuses:
        counts[status.state] += 1
    return counts
