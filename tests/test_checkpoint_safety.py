"""Hostile, corrupt, truncated and mismatched checkpoints: refused with one-line errors."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess

import pytest
import torch
from checkpoint_writers import dump, official_pickle_bytes, official_tree, stand_in_modules

from draggan import CheckpointError, UnsafeCheckpointError, load_generator
from draggan.safe_unpickle import parse_legacy_storage, safe_load


class _Reduce:
    """Pickles as ``func(*args)``, like a malicious ``__reduce__``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _marker_cases(marker):
    return [
        (_Reduce(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
        (_Reduce(builtins.eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"),
        (_Reduce(subprocess.Popen, ["touch", str(marker)]), "subprocess.Popen"),
        (_Reduce(builtins.open, str(marker), "w"), f"{builtins.open.__module__}.open"),
    ]


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("protocol", [3, 4])
def test_hostile_globals_are_refused_and_nothing_runs(tmp_path, case, protocol):
    marker = tmp_path / "created-by-the-pickle"
    payload, global_name = _marker_cases(marker)[case]
    # Hide the payload deep inside an otherwise well-formed checkpoint.
    data = {"G_ema": None, "training_set_kwargs": {"path": payload}}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert f"'{global_name}'" in message and str(path) in message and "\n" not in message
    assert not marker.exists()


def test_hostile_global_inside_a_network_pickle_is_refused(tmp_path, checkpoint_generator):
    marker = tmp_path / "created"
    G = checkpoint_generator(seed=31)
    with stand_in_modules() as ns:
        data = {
            "G_ema": official_tree(G, ns),
            "augment_pipe": _Reduce(builtins.open, str(marker), "w"),
        }
        (tmp_path / "x.pkl").write_bytes(dump(data, 4, ns))
    with pytest.raises(UnsafeCheckpointError, match=r"(io|builtins)\.open"):
        load_generator(tmp_path / "x.pkl")
    assert not marker.exists()


def test_module_source_in_the_pickle_is_never_executed(tmp_path, checkpoint_generator):
    marker = tmp_path / "module_src_ran"
    G = checkpoint_generator(seed=32)
    src = f"open({str(marker)!r}, 'w').write('ran')\ndef update_emas(): pass\n"
    (tmp_path / "g.pkl").write_bytes(official_pickle_bytes(G, module_src=src))
    H = load_generator(tmp_path / "g.pkl")
    assert not marker.exists() and H.config == G.config


def test_hostile_global_inside_a_storage_stream_is_refused(tmp_path):
    # torch.storage._load_from_bytes payload whose inner pickle asks for os.system.
    inner = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, inner, protocol=2)
    pickle.dump(_Reduce(os.system, "true"), inner, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        parse_legacy_storage(inner.getvalue())


def test_storage_stream_round_trip_matches_torch():
    t = torch.arange(10, dtype=torch.float16)
    _, (payload,) = t._typed_storage().__reduce__()  # what pickling a tensor writes
    flat = parse_legacy_storage(payload)
    assert flat.dtype == torch.float16 and torch.equal(flat, t)
    with pytest.raises(Exception, match="truncated"):
        parse_legacy_storage(payload[:-3])


def _one_line_error(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_generator(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_truncated_and_corrupt_pickles(tmp_path, checkpoint_generator):
    data = official_pickle_bytes(checkpoint_generator(seed=33), protocol=4)
    path = tmp_path / "g.pkl"
    for cut in (len(data) // 3, len(data) - 1, 3):
        path.write_bytes(data[:cut])
        assert str(path) in _one_line_error(path, "truncated|corrupt")
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(corrupt))
    _one_line_error(path, "corrupt|truncated|refused|not a valid")


def test_not_a_checkpoint_missing_empty_and_directory(tmp_path):
    text = tmp_path / "notes.pkl"
    text.write_text("hello, this is not a network\n")
    _one_line_error(text, "not a StyleGAN2 checkpoint")
    _one_line_error(tmp_path / "absent.pkl", "no such file")
    (tmp_path / "empty.pkl").write_bytes(b"")
    _one_line_error(tmp_path / "empty.pkl", "empty")
    _one_line_error(tmp_path, "directory")
    zipped = tmp_path / "weights.pkl"
    torch.save({"a": torch.zeros(1)}, zipped)
    _one_line_error(zipped, "torch.save archive")
    plain = tmp_path / "dict.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1, 2]}, protocol=4))
    _one_line_error(plain, "no 'G_ema' generator")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"synthesis.b8.conv1.weight": torch.zeros(8, 8, 3, 2)}, r"b8.conv1.weight has shape"),
        ({"synthesis.b8.conv1.noise_const": None}, "missing: synthesis.b8.conv1.noise_const"),
        ({"synthesis.b8.conv1.bonus": torch.zeros(1)}, "unexpected.*synthesis.b8.conv1.bonus"),
    ],
)
def test_mismatched_official_tensors(tmp_path, override, message, checkpoint_generator):
    G = checkpoint_generator(seed=34)
    path = tmp_path / "g.pkl"
    path.write_bytes(official_pickle_bytes(G, state_override=override))
    _one_line_error(path, message)


def test_unknown_official_setting_is_named(tmp_path, checkpoint_generator):
    G = checkpoint_generator(seed=35)
    path = tmp_path / "g.pkl"
    path.write_bytes(official_pickle_bytes(G, extra_synthesis_kwargs={"magic": 1}))
    _one_line_error(path, "unknown generator setting.*synthesis.magic")


def test_stand_in_modules_are_removed_after_writing():
    import sys

    with stand_in_modules("numpy1"):
        assert "torch_utils.persistence" in sys.modules
    assert "torch_utils.persistence" not in sys.modules and "dnnlib.util" not in sys.modules
    assert safe_load  # the loader itself never needs them


def test_malformed_network_structures_are_one_line_errors(tmp_path):
    from checkpoint_writers import _Persistent

    path = tmp_path / "odd.pkl"
    with stand_in_modules() as ns:
        odd_modules = _Persistent(ns.reconstruct, "Generator", "", {"_modules": [1, 2]})
        path.write_bytes(dump({"G_ema": odd_modules}, 4, ns))
    _one_line_error(path, "_modules of the network is not a dict")
    with stand_in_modules() as ns:
        no_kwargs = _Persistent(ns.reconstruct, "Generator", "", {"_init_args": 5})
        path.write_bytes(dump({"G_ema": no_kwargs}, 4, ns))
    _one_line_error(path, "malformed network data|no 'mapping' network")
