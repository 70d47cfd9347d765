"""The ONNX Runtime backend against the PyTorch engine on the disc fixture (tests/fixtures):
exported inference graphs, the first step's loss, ws after 5 steps, handles of a 30-step
drag; ORT's Adam == torch's Adam; artifact reuse, refusal of stale ones, atomic export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime.training.api")

from draggan import DragConfig, DragInputError, drag  # noqa: E402
from draggan.native_format import load_native  # noqa: E402
from draggan.onnx import export as onnx_export  # noqa: E402
from draggan.onnx.params import ExportParams  # noqa: E402

WEIGHTS = Path(__file__).resolve().parent / "fixtures" / "disc_generator.safetensors"
HANDLES = [[32.0, 32.0], [27.0, 32.0]]  # two points on the disc (see test_drag_real.py)
TARGETS = [[41.0, 32.0], [36.0, 34.0]]
BASE = dict(lr=0.005, r1=3.0, r2=6.0, feature_resolution=32, stall_steps=None, stop_distance=1.0)
# fast: w+ on 6 ws with sub-pixel tracking; official: one w for all 10 ws; both with a mask.
MODES = {
    "fast": dict(mode="fast", w_plus=True, layers=6, subpixel_tracking=True, **BASE),
    "official": dict(mode="official", w_plus=False, layers=10, **BASE),
}


@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_graph_sampling_equals_grid_sample_and_interpolate(padding):
    """The exported graph's Gather-based bilinear reads (ORT has no GridSample / Resize
    gradient) against torch's ops, points inside, on and outside the map."""
    import torch.nn.functional as F

    from draggan.onnx.bilinear import sample_bilinear, upsample_bilinear

    gen = torch.Generator().manual_seed(1)
    feat = torch.randn(1, 5, 7, 9, generator=gen)
    x = torch.rand(200, generator=gen) * 12 - 1.5  # map index space, beyond both edges
    y = torch.rand(200, generator=gen) * 10 - 1.5
    grid = torch.stack([x / 8 * 2 - 1, y / 6 * 2 - 1], dim=1).reshape(1, 1, -1, 2)
    want = F.grid_sample(feat, grid, padding_mode=padding, align_corners=True)[0, :, 0]
    got = sample_bilinear(feat.reshape(5, -1), 7, 9, x, y, border=padding == "border")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    square = feat[:, :, :7, :7]
    want = F.interpolate(square, [32, 32], mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsample_bilinear(square, 32), want, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def G():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_native(WEIGHTS).eval()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ws(G):
    with torch.no_grad():
        return G.mapping(torch.zeros(1, G.z_dim))


@pytest.fixture(scope="module")
def mask():
    movable = torch.zeros(64, 64)
    movable[12:52, 14:58] = 1  # the disc and its path may move
    return movable


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return {mode: tmp_path_factory.mktemp(f"onnx-{mode}") / "artifacts" for mode in MODES}


def run(G, ws, mask, mode, backend, steps, artifacts=None):
    config = DragConfig(backend=backend, max_steps=steps, **MODES[mode])
    images = []
    result = drag(
        G,
        ws,
        HANDLES,
        TARGETS,
        mask=mask,
        config=config,
        artifacts=artifacts,
        callback=lambda progress: images.append(progress.image is not None),
    )
    return result, images


@pytest.fixture(scope="module")
def drags(G, ws, mask, artifacts):
    """(torch, onnxruntime) results of a 5-step and a 30-step drag in each mode."""
    out = {}
    for mode in MODES:
        for steps in (5, 30):
            out[mode, steps] = tuple(
                run(G, ws, mask, mode, backend, steps, artifacts[mode])
                for backend in ("torch", "onnxruntime")
            )
    return out


def test_exported_inference_graphs_equal_torch(G, artifacts, drags):
    import onnxruntime

    directory = artifacts["fast"]
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, G.z_dim, generator=gen)
    mapping = onnxruntime.InferenceSession(str(directory / onnx_export.MAPPING))
    (ws,) = mapping.run(None, {"z": z.numpy(), "truncation_psi": np.array(0.7, dtype=np.float32)})
    with torch.no_grad():
        want_ws = G.mapping(z, truncation_psi=0.7)
    np.testing.assert_allclose(ws, want_ws.numpy(), rtol=0, atol=1e-4)
    synthesis = onnxruntime.InferenceSession(str(directory / onnx_export.SYNTHESIS))
    (image,) = synthesis.run(None, {"ws": ws[:1]})
    with torch.no_grad():
        want = G.synthesis(torch.from_numpy(ws[:1]))
    assert float(want.abs().max()) > 0.5  # a real image, not a blank
    np.testing.assert_allclose(image, want.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("mode", list(MODES))
def test_first_step_loss_and_ws_after_five_steps_agree(drags, ws, mode):
    (ref, _), (ort, _) = drags[mode, 5]
    first, first_ort = ref.history[0], ort.history[0]
    assert first.loss_motion > 0 and first.loss > 0
    assert abs(first_ort.loss - first.loss) <= 1e-4 * first.loss
    assert abs(first_ort.loss_motion - first.loss_motion) <= 1e-4 * first.loss_motion
    assert ort.steps == ref.steps == 5
    assert float((ref.ws - ws).abs().max()) > 1e-3  # the drag moved the latent
    assert float((ort.ws - ref.ws).abs().max()) <= 1e-4
    assert torch.equal(ort.ws[:, 10:], ws[:, 10:])


@pytest.mark.parametrize("mode", list(MODES))
def test_thirty_step_drag_follows_torch_handle_for_handle(drags, mode):
    (ref, ref_images), (ort, ort_images) = drags[mode, 30]
    assert len(ort.history) == len(ref.history) == 31
    moved = max(abs(a - b) for a, b in zip(ref.history[-1].handles[0], HANDLES[0], strict=True))
    assert moved >= 3  # the handles travelled
    for a, b in zip(ref.history, ort.history, strict=True):
        assert a.step == b.step and a.updated == b.updated
        gaps = np.abs(np.asarray(a.handles) - np.asarray(b.handles))
        assert gaps.max() <= 1.0, f"step {a.step}: {a.handles} vs {b.handles}"
    # Same records, callbacks and result layout as the PyTorch backend.
    assert ort_images == ref_images
    assert (ort.stop_reason, ort.converged) == (ref.stop_reason, ref.converged)
    assert ort.history[-1].handles == tuple(tuple(p) for p in ort.handles.tolist())
    assert ort.image.shape == ref.image.shape
    assert float((ort.image - ref.image).abs().max()) < 0.05


def test_ort_adamw_at_weight_decay_0_is_torch_adam(G, ws, mask, artifacts, drags):
    """The exported optimizer, fed ORT's own gradients, against torch.optim.Adam fed the
    same gradients: the update of PyTorch's Adam (adam_mode 0, eps 1e-8, no decay)."""
    from draggan.dragging.engine import _make_mode
    from draggan.dragging.inputs import check_inputs
    from draggan.onnx.steps import OrtSteps

    config = DragConfig(backend="onnxruntime", max_steps=5, **MODES["fast"])
    inputs = check_inputs(G, ws, HANDLES, TARGETS, mask, config)
    params = config.resolve(G.img_resolution, G.num_ws)
    mode = _make_mode(G, config, params, inputs)
    with OrtSteps.open(G, inputs, params, config, artifacts["fast"]) as steps:
        latent = torch.from_numpy(steps._latent().copy()).requires_grad_(True)
        adam = torch.optim.Adam([latent], lr=config.lr)
        for step in range(4):
            feat, _ = steps.forward(False)
            if step == 0:
                steps.start(feat)
                mode.start(feat)
            mode.track(feat)
            steps.losses(mode, feat, update=True)
            grad = np.asarray(steps.state.parameters["latent"].grad)
            assert np.abs(grad).max() > 0
            latent.grad = torch.from_numpy(grad.copy())
            adam.step()
            steps.update(0.0)
            got = steps._latent()
            scale = float(latent.detach().abs().max())
            np.testing.assert_allclose(got, latent.detach().numpy(), rtol=0, atol=1e-6 * scale)


def test_artifacts_are_reused_and_stale_ones_refused(G, artifacts, drags, tmp_path):
    directory = artifacts["fast"]
    spec = ExportParams(**json.loads((directory / onnx_export.MANIFEST).read_text())["params"])
    checkpoint = directory / onnx_export.CHECKPOINT
    before = checkpoint.stat().st_mtime_ns
    reports = []
    onnx_export.open_artifacts(G, directory, spec, report=reports.append)
    assert reports == [] and checkpoint.stat().st_mtime_ns == before  # reused as is

    copy = tmp_path / "copy"
    onnx_export.export_artifacts(G, copy, spec)
    good = (copy / onnx_export.MANIFEST).read_text()
    for change, why in (
        (lambda m: m["generator"].update(digest="0" * 64), "another generator"),
        (lambda m: m.update(dragpipe="0.0.1"), "another version"),
        (lambda m: m["params"].update(handles=3), "other drag parameters"),
    ):
        manifest = json.loads(good)
        change(manifest)
        (copy / onnx_export.MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(onnx_export.ArtifactMismatch, match=why):
            onnx_export.check_artifacts(copy, G, spec)
    # The last stale one (another generator's digest would do the same) is exported again.
    reports.clear()
    fresh = onnx_export.open_artifacts(G, copy, spec, report=reports.append)
    assert len(reports) == 1 and "other drag parameters" in reports[0]
    assert fresh["params"] == spec.to_dict()
    onnx_export.check_artifacts(copy, G, spec)  # a complete, matching export again
    with open(copy / onnx_export.EVAL, "r+b") as handle:  # a damaged file
        handle.seek(100)
        handle.write(b"\0\1\2\3")
    with pytest.raises(onnx_export.ArtifactMismatch, match="damaged"):
        onnx_export.check_artifacts(copy, G, spec)


def test_interrupted_export_leaves_nothing_that_looks_complete(G, tmp_path, monkeypatch):
    spec = ExportParams.for_drag(
        DragConfig(**MODES["fast"]), DragConfig(**MODES["fast"]).resolve(64, G.num_ws), 1
    )

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "_export_training", killed)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_artifacts(G, tmp_path / "artifacts", spec)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the partial directory


def test_resume_and_state_are_refused_with_onnxruntime(G, ws, artifacts, drags):
    from draggan import DragResumeError, DragState

    config = DragConfig(backend="onnxruntime", max_steps=2, **MODES["fast"])
    assert not config.resumable and DragConfig(**MODES["fast"]).resumable
    seen = []

    def callback(progress):
        seen.append(progress.record.step)
        progress.state()

    with pytest.raises(DragResumeError, match="offers no loop state"):
        drag(G, ws, HANDLES, TARGETS, config=config, artifacts=artifacts["fast"], callback=callback)
    assert seen == [0]  # the callback got its progress; state() refused at once

    state = DragState(
        step=0,
        latent=torch.zeros(1, 6, 32),
        optimizer={},
        handles=torch.zeros(1, 2),
        stall_anchor=torch.zeros(1, 2),
        stall_anchor_step=0,
    )
    config = DragConfig(backend="onnxruntime", **MODES["fast"])
    with pytest.raises(DragInputError, match="resume is not available"):
        drag(G, ws, HANDLES[:1], TARGETS[:1], config=config, resume=state)
