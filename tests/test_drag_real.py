"""Real drags on a fitted generator whose images are a shaded disc at a latent-controlled
position (tests/fixtures/make_disc_generator.py): the object itself must move, measured on
the final image, in both modes, and the two modes must agree."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from draggan import DragConfig, drag
from draggan.dragging import engine
from draggan.native_format import load_native

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WEIGHTS = FIXTURES / "disc_generator.safetensors"
DRAG = (9.0, 0.0)  # requested displacement (x, y) px
# Scaled-up official radii (at 64 px the defaults are 1 and 2 px); the b32 features (the
# clamped default, b64, is the last block: its features are only partly visible in the
# image); one w for all ws, which keeps this tiny generator's latent on its training
# manifold (it was fitted with one w per image).
BASE = dict(
    lr=0.005,
    r1=3.0,
    r2=6.0,
    max_steps=60,
    stall_steps=20,
    feature_resolution=32,
    w_plus=False,
    layers=10,
)
# Share of the 9 px drag the disc itself must follow, and the bounds on sideways motion and
# on the gap between the modes' final discs. Measured with the official loss of
# XingangPan/DragGAN 336f120 (lr 4e-3, 5e-3, 6e-3; both modes): one handle 0.54-0.56 (the
# stop rule ends the drag with the handle 2 px short, and the colour ramp lets part of a drag
# be met by shifting colours, see make_disc_generator.py), two handles 0.60-0.63; sideways
# at most 0.28 px; modes apart by 0.05-0.22 px. Thresholds keep about 0.3-0.5 px of margin
# on the followed distance and 2-3x on the others.
FOLLOWED_ONE = 0.50
FOLLOWED_TWO = 0.55
SIDEWAYS = 0.75  # px
MODES_GAP = 0.75  # px


def _disc_module():
    spec = importlib.util.spec_from_file_location(
        "make_disc_generator", FIXTURES / "make_disc_generator.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DISC = _disc_module()


@pytest.fixture(scope="module")
def threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is faster on a shared machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def G(threads):
    return load_native(WEIGHTS).eval()


@pytest.fixture(scope="module")
def ws(G):
    with torch.no_grad():
        return G.mapping(torch.zeros(1, G.z_dim))  # disc in the middle


def centroid(image: torch.Tensor) -> torch.Tensor:  # [1, 3, R, R] -> [2] (x, y)
    """Disc centre from the blue channel (BLUE inside, BACKGROUND outside)."""
    blue = image[0, 2].double()
    alpha = ((blue - DISC.BACKGROUND) / (DISC.BLUE - DISC.BACKGROUND)).clamp(0, 1)
    ys, xs = torch.meshgrid(
        torch.arange(blue.shape[0], dtype=torch.float64),
        torch.arange(blue.shape[1], dtype=torch.float64),
        indexing="ij",
    )
    return torch.stack([(alpha * xs).sum(), (alpha * ys).sum()]) / alpha.sum()


@pytest.fixture(scope="module")
def start(G, ws):
    """(initial disc centre, handle, target): the handle on the disc's centre pixel."""
    with torch.no_grad():
        c0 = centroid(G.synthesis(ws))
    handle = torch.round(c0)
    return c0, handle, handle + torch.tensor(DRAG, dtype=torch.float64)


@pytest.fixture(scope="module")
def runs(G, ws, start):
    _, handle, target = start
    out = {}
    for mode in ("official", "fast"):
        images = []
        params_before = [p.detach().clone() for p in G.parameters()]
        result = drag(
            G,
            ws,
            handle[None],
            target[None],
            config=DragConfig(mode=mode, **BASE),
            callback=lambda progress, images=images: images.append(
                (progress.step, progress.image is not None)
            ),
        )
        unchanged = all(
            torch.equal(a, b) for a, b in zip(params_before, G.parameters(), strict=True)
        )
        out[mode] = (result, images, unchanged)
    return out


def test_fixture_renders_a_disc_where_the_latent_says(G, ws, start):
    c0, _, _ = start
    expected = DISC.disc_center(torch.zeros(1, G.z_dim))[0].double()
    assert float((c0 - expected).norm()) < 3.0
    with torch.no_grad():
        image = G.synthesis(ws)
    target = DISC.disc_image(c0[None].float())
    assert float((image - target).square().mean()) < 0.01  # a disc, where we measured it


@pytest.mark.parametrize("mode", ["official", "fast"])
def test_drag_moves_the_object(runs, start, mode):
    c0, _, target = start
    result, _, _ = runs[mode]
    assert result.converged and result.stop_reason == "converged"
    assert float(result.distances.max()) <= result.stop_distance
    assert float((result.handles[0] - target).norm()) <= result.stop_distance
    moved = centroid(result.image) - c0
    wanted = torch.tensor(DRAG, dtype=torch.float64)
    along = float(moved @ wanted / wanted.norm())
    assert along >= FOLLOWED_ONE * float(wanted.norm()), f"disc moved {moved.tolist()}"
    assert abs(float(moved[1])) <= SIDEWAYS  # and not sideways


def test_modes_agree_on_where_the_object_ends(runs):
    official, fast = runs["official"][0], runs["fast"][0]
    gap = float((centroid(official.image) - centroid(fast.image)).norm())
    assert gap <= MODES_GAP


@pytest.mark.parametrize("mode", ["official", "fast"])
def test_result_is_consistent(G, ws, runs, mode):
    result, images, unchanged = runs[mode]
    assert unchanged and all(p.grad is None for p in G.parameters())
    assert not torch.equal(result.ws, ws)
    # w_plus=False: one w shared by every optimised layer.
    assert torch.equal(result.ws, result.ws[:, :1].expand_as(result.ws))
    assert len(result.history) == result.steps + 1
    assert [r.step for r in result.history] == list(range(result.steps + 1))
    assert [r.updated for r in result.history] == [True] * result.steps + [False]
    assert result.history[-1].handles == tuple(tuple(p) for p in result.handles.tolist())
    with torch.no_grad():
        again = G.synthesis(result.ws, fused_modconv=True)
    torch.testing.assert_close(result.image, again, atol=1e-5, rtol=0)
    rendered = [step for step, has_image in images if has_image]
    if mode == "official":
        assert rendered == list(range(result.steps + 1))
    else:
        every = DragConfig().render_every
        assert rendered == list(range(0, result.steps + 1, every))
    assert result.history[0].loss_motion > 0
    assert result.trajectory_dict()["history"][0]["step"] == 0


def test_fast_is_as_accurate_as_official(runs):
    official, fast = runs["official"][0], runs["fast"][0]
    assert fast.converged and fast.steps <= official.steps + 5
    # Both stop as soon as every handle is within stop_distance.
    assert float(fast.distances.mean()) <= max(float(official.distances.mean()), fast.stop_distance)


def test_default_w_plus_keeps_the_later_ws(G, ws, start):
    _, handle, target = start
    config = DragConfig(**{**BASE, "w_plus": True, "layers": 6, "max_steps": 3})
    result = drag(G, ws, handle[None], target[None], config=config)
    assert torch.equal(result.ws[:, 6:], ws[:, 6:])
    assert not torch.equal(result.ws[:, :6], ws[:, :6])


def test_callback_stops_the_drag(G, ws, start):
    _, handle, target = start
    result = drag(
        G,
        ws,
        handle[None],
        target[None],
        config=DragConfig(**BASE),
        callback=lambda progress: progress.step == 2,
    )
    assert (result.steps, result.stop_reason, result.converged) == (2, "callback", False)
    assert result.history[-1].updated is False


def test_stalled_drag_ends_unconverged(G, ws, start):
    _, handle, target = start
    config = DragConfig(**{**BASE, "lr": 1e-7, "stall_steps": 4})
    result = drag(G, ws, handle[None], target[None], config=config)
    assert (result.stop_reason, result.converged, result.steps) == ("stalled", False, 4)
    assert float(result.distances[0]) > result.stop_distance


@pytest.mark.parametrize("mode", ["official", "fast"])
def test_two_handles_on_the_disc_move_it_together(G, ws, start, mode):
    c0, handle, target = start
    offset = torch.tensor([5.0, 0.0], dtype=torch.float64)  # a second point left of the centre
    handles = torch.stack([handle, handle - offset])
    targets = torch.stack([target, target - offset])
    result = drag(G, ws, handles, targets, config=DragConfig(mode=mode, **BASE))
    assert result.converged
    assert float((result.handles - targets).norm(dim=1).max()) <= result.stop_distance
    moved = centroid(result.image) - c0
    wanted = torch.tensor(DRAG, dtype=torch.float64)
    along = float(moved @ wanted / wanted.norm())
    assert along >= FOLLOWED_TWO * float(wanted.norm()), f"disc moved {moved.tolist()}"
    assert abs(float(moved[1])) <= SIDEWAYS


def test_fast_windows_hold_everything_a_step_reads(G, ws, start, monkeypatch):
    """Fast mode without a mask computes the feature block only in windows around the
    handles. With NaN instead of zeros outside them, a drag (two handles, sub-pixel
    tracking) takes the path it takes with the whole map computed: nothing outside the
    windows is read, and their values equal the map's up to rounding."""
    _, handle, _ = start
    handles = torch.stack([handle, handle + torch.tensor([0.0, 10.0], dtype=torch.float64)])
    targets = handles + torch.tensor(DRAG, dtype=torch.float64)
    settings = {**BASE, "max_steps": 8, "stall_steps": None, "subpixel_tracking": True}
    config = DragConfig(mode="fast", **settings)

    def nan_outside(parts, boxes, size):
        canvas = parts[0].new_full((*parts[0].shape[:2], size, size), float("nan"))
        for part, (top, left, bottom, right) in zip(parts, boxes, strict=True):
            canvas[:, :, top:bottom, left:right] = part
        calls.append(boxes)
        return canvas

    calls = []
    monkeypatch.setattr(engine, "paste", nan_outside)
    windowed = drag(G, ws, handles, targets, config=config)
    whole = drag(G, ws, handles, targets, config=dataclasses.replace(config, feature_windows=False))
    assert len(calls) == len(windowed.history) >= 5  # every step, render steps too
    assert all(len(boxes) == 2 for boxes in calls)
    assert torch.isfinite(windowed.ws).all() and torch.isfinite(windowed.image).all()
    for a, b in zip(windowed.history, whole.history, strict=True):
        gap = torch.tensor(a.handles) - torch.tensor(b.handles)
        assert float(gap.abs().max()) <= 0.25
    torch.testing.assert_close(windowed.ws, whole.ws, rtol=0, atol=1e-4)
