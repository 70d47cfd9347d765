"""A drag interrupted at step k and resumed from its state (saved as safetensors + JSON) ends
exactly where the uninterrupted drag ends, in both modes; states of other runs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, save

from draggan import DragConfig, DragganError, DragResumeError, DragState, drag
from draggan.dragging import DragInputError
from draggan.native_format import load_native

WEIGHTS = Path(__file__).resolve().parent / "fixtures" / "disc_generator.safetensors"
HANDLE = [[32.0, 32.0]]  # the disc's centre pixel (see test_drag_real.py)
TARGET = [[41.0, 32.0]]
BASE = dict(lr=0.005, r1=3.0, r2=6.0, max_steps=60, feature_resolution=32, stall_tolerance=1.5)
# official: integer points, one shared w, ends 'stalled' (step 19) after the stall anchor
# moved; fast: sub-pixel handles, w+, a mask, images every 4 steps, converges.
CASES = {
    "official": (DragConfig(mode="official", w_plus=False, layers=10, stall_steps=10, **BASE), 14),
    "fast": (
        DragConfig(
            mode="fast",
            w_plus=True,
            layers=6,
            stall_steps=10,
            render_every=4,
            subpixel_tracking=True,
            **BASE,
        ),
        9,
    ),
}


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def G():
    # Bit-identical resumption needs the same thread count: the suite runs on one (conftest).
    return load_native(WEIGHTS).eval()


@pytest.fixture(scope="module")
def ws(G):
    with torch.no_grad():
        return G.mapping(torch.zeros(1, G.z_dim))


def movable_mask(G, mode):
    if mode == "official":
        return None
    mask = torch.zeros(G.img_resolution, G.img_resolution)
    mask[8:56, 16:60] = 1  # the disc and where it goes may change
    return mask


def roundtrip(state: DragState) -> DragState:
    """Through the bytes a checkpoint holds: safetensors tensors + JSON meta."""
    tensors, meta = state.to_tensors()
    return DragState.from_tensors(load(save(tensors)), json.loads(json.dumps(meta)))


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(G, ws):
    """Per mode: (result, {step: (tensors, meta)} of the state offered at every step)."""
    out = {}
    for mode, (config, _) in CASES.items():
        states = {}

        def keep(progress, states=states):
            states[progress.step] = progress.state().to_tensors()

        result = drag(G, ws, HANDLE, TARGET, movable_mask(G, mode), config, callback=keep)
        out[mode] = (result, states)
    return out


def test_the_cases_exercise_what_a_state_carries(uninterrupted):
    official, official_states = uninterrupted["official"]
    k = CASES["official"][1]
    # official: interrupted after its stall anchor moved, stalled later
    assert official.stop_reason == "stalled" and official.steps > k
    assert official_states[k][1]["stall_anchor_step"] > 0
    fast, fast_states = uninterrupted["fast"]
    assert fast.converged and fast.steps > CASES["fast"][1] + 5
    # sub-pixel handles and a stall anchor that moved before the interruption
    tensors, meta = fast_states[CASES["fast"][1]]
    assert meta["stall_anchor_step"] > 0 and float(tensors["handles"].frac().abs().sum()) > 0
    assert sorted(k for k in tensors if k.startswith("optimizer.")) == [
        "optimizer.0.exp_avg",
        "optimizer.0.exp_avg_sq",
        "optimizer.0.step",
    ]


def test_a_state_callback_does_not_change_the_drag(G, ws, uninterrupted):
    config, _ = CASES["fast"]
    plain = drag(G, ws, HANDLE, TARGET, movable_mask(G, "fast"), config)
    result, _ = uninterrupted["fast"]
    assert torch.equal(plain.ws, result.ws) and plain.history == result.history


@pytest.mark.parametrize("mode", ["official", "fast"])
def test_interrupted_drag_resumes_to_the_same_result(G, ws, uninterrupted, mode):
    config, k = CASES[mode]
    mask = movable_mask(G, mode)
    saved = {}

    def interrupt(progress):
        if progress.step == k:
            saved["state"] = roundtrip(progress.state())
            raise Interrupt

    with pytest.raises(Interrupt):
        drag(G, ws, HANDLE, TARGET, mask, config, callback=interrupt)
    resume = saved["state"]
    assert resume.step == k and len(resume.history) == k

    later = {}

    def record_states(progress):
        later[progress.step] = progress.state().to_tensors()

    resumed = drag(G, ws, HANDLE, TARGET, mask, config, callback=record_states, resume=resume)
    expected, states = uninterrupted[mode]
    assert torch.equal(resumed.ws, expected.ws)
    assert torch.equal(resumed.image, expected.image)
    assert torch.equal(resumed.handles, expected.handles)
    assert resumed.history == expected.history
    assert (resumed.steps, resumed.stop_reason, resumed.converged) == (
        expected.steps,
        expected.stop_reason,
        expected.converged,
    )
    # The resumed loop carries the same state as the uninterrupted one at every later step.
    assert sorted(later) == list(range(k, expected.steps + 1))
    for step, (tensors, meta) in later.items():
        assert same_tensors(tensors, states[step][0]), step
        assert meta == states[step][1], step


@pytest.mark.parametrize("mode", ["official", "fast"])
def test_state_continues_a_drag_capped_at_its_step(G, ws, uninterrupted, mode):
    """A drag stopped at step k (the editor's Stop) is finished as the drag capped at k:
    the state of the longer drag continues it and gives exactly the capped drag's result."""
    config, k = CASES[mode]
    mask = movable_mask(G, mode)
    capped = DragConfig(**{**config.to_dict(), "max_steps": k})
    expected = drag(G, ws, HANDLE, TARGET, mask, capped)
    assert (expected.steps, expected.stop_reason) == (k, "max_steps")
    state = roundtrip(DragState.from_tensors(*uninterrupted[mode][1][k]))
    assert state.config["max_steps"] == config.max_steps != k
    finished = drag(G, ws, HANDLE, TARGET, mask, capped, resume=state)
    assert torch.equal(finished.ws, expected.ws) and torch.equal(finished.image, expected.image)
    assert finished.history == expected.history and finished.stop_reason == "max_steps"
    # ... but not a drag capped before the state's step.
    shorter = DragConfig(**{**config.to_dict(), "max_steps": k - 1})
    with pytest.raises(DragResumeError, match=f"step {k} with {k} records"):
        drag(G, ws, HANDLE, TARGET, mask, shorter, resume=state)


def test_state_of_step_zero_starts_the_drag_afresh(G, ws, uninterrupted):
    config, _ = CASES["official"]
    state = roundtrip(DragState.from_tensors(*uninterrupted["official"][1][0]))
    result = drag(G, ws, HANDLE, TARGET, config=config, resume=state)
    assert result.history == uninterrupted["official"][0].history


@pytest.mark.parametrize(
    "change, names",
    [
        (dict(targets=[[40.0, 32.0]]), "ws, points or mask"),
        (dict(mask=torch.ones(64, 64).index_fill_(0, torch.tensor([0]), 0)), "ws, points or mask"),
        (dict(config=dict(lr=0.004)), "drag config"),
        (dict(generator=True), "generator"),
    ],
)
def test_a_state_of_another_run_is_refused(G, ws, uninterrupted, change, names):
    config, k = CASES["official"]
    state = roundtrip(DragState.from_tensors(*uninterrupted["official"][1][k]))
    model = G
    if change.get("generator"):
        model = load_native(WEIGHTS).eval()
        with torch.no_grad():
            next(model.parameters()).add_(1e-3)
    calls = []
    with pytest.raises(DragResumeError) as info:
        drag(
            model,
            ws,
            HANDLE,
            change.get("targets", TARGET),
            change.get("mask"),
            DragConfig(**{**config.to_dict(), **change.get("config", {})}),
            callback=calls.append,
            resume=state,
        )
    message = str(info.value)
    assert names in message and f"step {k}" in message and "\n" not in message
    assert isinstance(info.value, DragganError) and calls == []


def test_bad_states_are_refused_in_one_line(G, ws, uninterrupted):
    config, k = CASES["official"]
    tensors, meta = uninterrupted["official"][1][k]
    bad = [
        (tensors, {**meta, "kind": "inversion.tune"}, "expected a 'draggan.drag' state"),
        (tensors, {**meta, "version": 99}, "version 99"),
        ({n: t for n, t in tensors.items() if n != "latent"}, meta, "'latent' is missing"),
        (tensors, {**meta, "step": "3"}, "damaged"),
        (tensors, {n: v for n, v in meta.items() if n != "history"}, "damaged"),
    ]
    for t, m, words in bad:
        with pytest.raises(DragResumeError, match=words) as info:
            DragState.from_tensors(t, m)
        assert "\n" not in str(info.value)
    # Tensors that cannot continue this drag, with matching digests.
    wrong = DragState.from_tensors({**tensors, "handles": torch.zeros(2, 2)}, meta)
    with pytest.raises(DragResumeError, match=r"damaged: handles \[2, 2\]"):
        drag(G, ws, HANDLE, TARGET, config=config, resume=wrong)
    with pytest.raises(DragInputError, match="resume must be a DragState"):
        drag(G, ws, HANDLE, TARGET, config=config, resume=(tensors, meta))


def test_state_works_only_during_its_callback(G, ws):
    kept = []
    drag(
        G,
        ws,
        HANDLE,
        TARGET,
        config=DragConfig(**{**BASE, "max_steps": 1}),
        callback=lambda progress: kept.append(progress.state),
    )
    assert len(kept) == 2
    with pytest.raises(DragResumeError, match="only be called during the callback"):
        kept[0]()
