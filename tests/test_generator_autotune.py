"""Autotuned layer candidates: numerics against impl='ref', the tuner's cache and overrides."""

import io
import json
import sys

import pytest
import torch
from test_generator_network import make, ws_for  # noqa: F401 (make: the fixture)

from draggan import Generator, GeneratorConfig, save_generator
from draggan.autotune import (
    OPS,
    AutotuneError,
    Autotuner,
    default_cache_path,
    device_tag,
    parse_override,
)
from pipeline.progress import Display
from pipeline.stages.context import StageContext

CPU = torch.device("cpu")


def grads(G, ws, impl):
    """Image, features, ws gradient and parameter gradients of one forward + backward."""
    G.zero_grad(set_to_none=True)
    w = ws.clone().requires_grad_()
    img, feats = G.synthesis(w, return_features=True, impl=impl)
    (img.square().sum() + sum(f.mean() for f in feats)).backward()
    params = {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}
    return img.detach(), [f.detach() for f in feats], w.grad, params


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("candidate", OPS["modulated_conv"])
def test_every_candidate_matches_the_reference_path(candidate, make):  # noqa: F811 (fixture)
    """Same function, different rounding: images within 2e-5 and every gradient within
    1e-4 of its largest magnitude (measured: about 2e-6), clamps active, batch 2."""
    G = make(architecture="skip", conv_clamp=0.5).requires_grad_(True)
    ws = ws_for(G, n=2)
    ref = grads(G, ws, "ref")
    G.synthesis.autotuner = Autotuner(override={"modulated_conv": candidate})
    fast = grads(G, ws, "fast")
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=2e-5)
    for a, b in zip(fast[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-5)
    assert relative(fast[2], ref[2]) < 1e-4
    assert set(fast[3]) == set(ref[3])
    for name in ref[3]:
        assert relative(fast[3][name], ref[3][name]) < 1e-4, name
    with torch.no_grad():
        torch.testing.assert_close(G.synthesis(ws), ref[0], rtol=0, atol=2e-5)


class FakeClock:
    """perf_counter stand-in: each candidate's call advances it by that candidate's cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def measure(self, costs, calls):
        def make_call(name):
            def call():
                calls.append(name)
                self.now += costs[name]

            return call

        return make_call


def test_tuner_measures_once_per_key_and_caches_on_disk(tmp_path):
    clock = FakeClock()
    path = tmp_path / "sub" / "tune.json"
    costs = {"a": 3.0, "b": 1.0, "c": 1.2}
    calls = []
    tuner = Autotuner(path, repeats=2, timer=clock)
    assert tuner.choose("op", "shape=1", ["a", "b", "c"], clock.measure(costs, calls), CPU) == "b"
    assert calls.count("a") == 1  # > 1.5 x the best: run once only
    assert calls.count("b") == calls.count("c") == 3  # close: 2 more rounds each
    assert tuner.choose("op", "shape=1", ["a", "b", "c"], clock.measure(costs, calls), CPU) == "b"
    assert len(calls) == 7  # cached in memory
    # Runs shorter than LONG_RUN are warm-ups, then measured again.
    short = []
    assert (
        tuner.choose("op", "s", ["a", "b"], clock.measure({"a": 0.01, "b": 0.001}, short), CPU)
        == "b"
    )
    assert short == ["a", "b", "b"]

    data = json.loads(path.read_text())
    key = next(k for k in data["entries"] if k.endswith("shape=1"))
    assert torch.__version__ in key and device_tag(CPU) in key and "shape=1" in key
    assert data["entries"][key]["seconds"] == pytest.approx({"a": 3.0, "b": 1.0, "c": 1.2})

    calls.clear()
    again = Autotuner(path, timer=clock)  # another process: reads the file, measures nothing
    assert again.choose("op", "shape=1", ["a", "b", "c"], clock.measure(costs, calls), CPU) == "b"
    assert calls == []
    costs["c"] = 0.5  # a new signature is measured on its own
    assert again.choose("op", "shape=2", ["a", "b", "c"], clock.measure(costs, calls), CPU) == "c"
    assert len(json.loads(path.read_text())["entries"]) == 3
    # The default candidate stays unless another beats it by more than the margin.
    assert (
        again.choose("op", "s3", ["a", "b"], clock.measure({"a": 1.0, "b": 0.99}, []), CPU) == "a"
    )


def test_overrides_are_respected_and_checked(tmp_path):
    def fail(name):
        raise AssertionError("measured despite an override")

    names = list(OPS["modulated_conv"])
    off = Autotuner(tmp_path / "t.json", override="off")
    assert off.choose("modulated_conv", "s", names, fail, CPU) == names[0]
    fixed = Autotuner(tmp_path / "t.json", override={"modulated_conv": "unfused-contiguous"})
    assert fixed.choose("modulated_conv", "s", names, fail, CPU) == "unfused-contiguous"
    # A caller that pins the modulation keeps the override's memory format.
    assert fixed.choose("modulated_conv", "s", names[:2], fail, CPU) == "fused-contiguous"
    assert not (tmp_path / "t.json").exists()

    assert parse_override(" off ") == "off"
    assert parse_override("modulated_conv=fused-contiguous") == {
        "modulated_conv": "fused-contiguous"
    }
    assert parse_override("") is None
    with pytest.raises(AutotuneError, match="unknown op 'conv'"):
        Autotuner(override={"conv": "fused-contiguous"})
    with pytest.raises(AutotuneError, match="no candidate 'fused'"):
        Autotuner(override={"modulated_conv": "fused"})
    with pytest.raises(AutotuneError, match="DRAGPIPE_AUTOTUNE"):
        parse_override("fused-contiguous")


def test_corrupt_or_unwritable_cache_is_ignored_with_a_warning(tmp_path):
    clock = FakeClock()
    costs = {"a": 2.0, "b": 1.0}
    path = tmp_path / "tune.json"
    path.write_text('{"format": "dragpipe-autotune", "version": 1, "entries": [')
    seen = []
    tuner = Autotuner(path, on_warning=seen.append, timer=clock)
    assert tuner.choose("op", "s", ["a", "b"], clock.measure(costs, []), CPU) == "b"
    assert len(seen) == 1 and "corrupt" in seen[0] and str(path) in seen[0]
    assert tuner.warnings == seen
    assert len(json.loads(path.read_text())["entries"]) == 1  # rewritten, valid

    blocker = tmp_path / "file"
    blocker.write_text("")
    seen.clear()
    tuner = Autotuner(blocker / "tune.json", on_warning=seen.append, timer=clock)
    assert tuner.choose("op", "s", ["a", "b"], clock.measure(costs, []), CPU) == "b"
    assert len(seen) == 1 and "cannot be written" in seen[0]
    assert tuner.choose("op", "s2", ["a", "b"], clock.measure(costs, []), CPU) == "b"
    assert len(seen) == 1  # reported once, then kept in memory


def test_generator_tunes_each_layer_once_and_reuses_the_file(tmp_path):
    path = tmp_path / "tune.json"
    G = Generator(
        GeneratorConfig(img_resolution=16, channel_base=256, channel_max=16, w_dim=16, z_dim=16),
        autotuner=Autotuner(path, repeats=1),
    ).eval()
    ws = G.mapping(torch.randn(1, 16)).detach().requires_grad_()
    G.synthesis(ws).sum().backward()
    entries = json.loads(path.read_text())["entries"]
    layers = [k for k in entries if "synthesis_layer" in k]
    assert len(layers) == 5  # b4.conv1, b8.conv0/1, b16.conv0/1
    assert all(e["choice"] in OPS["modulated_conv"] for e in entries.values())

    class Counting(Autotuner):
        measured = 0

        def _measure(self, *args):
            Counting.measured += 1
            return super()._measure(*args)

    G.synthesis.autotuner = Counting(path)
    G.synthesis(ws).sum().backward()
    assert Counting.measured == 0
    with torch.no_grad():  # another signature (no gradients): measured once per layer
        G.synthesis(ws)
    assert Counting.measured == 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG cache folder")
def test_pipeline_says_when_the_autotune_cache_is_unusable(tmp_path, monkeypatch):
    """The run's generator tunes into the user's cache folder and a corrupt cache file is
    reported on the run's display (the library itself never prints)."""
    monkeypatch.delenv("DRAGPIPE_AUTOTUNE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = default_cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_text("{ not json")
    G = Generator(
        GeneratorConfig(img_resolution=8, channel_base=64, channel_max=8, w_dim=8, z_dim=8)
    )
    save_generator(G, tmp_path / "g.safetensors")
    out = io.StringIO()
    display = Display(stream=out, tty=False)
    ctx = StageContext.open(tmp_path / "work", tmp_path / "g.safetensors", CPU, display)
    base = ctx.generators.base()
    with torch.no_grad():
        base.synthesis(base.mapping(torch.zeros(1, 8)))
    assert f"warning: autotune cache {cache} is corrupt" in out.getvalue()
    assert "synthesis_layer" in cache.read_text()  # rewritten with the measured choices
