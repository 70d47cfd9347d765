"""``dragpipe inspect``: resolved configuration printed, bad files give one line and exit 1."""

from __future__ import annotations

import json

from checkpoint_writers import official_pickle_bytes

from draggan import save_generator
from pipeline.cli import main


def test_inspect_prints_the_resolved_configuration(tmp_path, capsys, checkpoint_generator):
    G = checkpoint_generator(seed=41, c_dim=2, num_fp16_res=2)
    path = tmp_path / "net.pkl"
    path.write_bytes(official_pickle_bytes(G, layout="sg3"))
    assert main(["inspect", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == "stylegan3 (networks_stylegan2) pickle"
    assert facts["network"] == "G_ema"
    assert facts["resolution"] == 16 and facts["num_ws"] == 6
    assert facts["channels"] == {"b4": 8, "b8": 8, "b16": 4}
    assert facts["mapping_layers"] == 2 and facts["conditional"] and facts["c_dim"] == 2
    assert facts["conv_clamp"] == 256 and facts["num_fp16_res"] == 2
    assert facts["fp16_blocks"] == ["b8", "b16"]
    assert facts["parameters"] == sum(p.numel() for p in G.parameters())

    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "resolution        16 x 16, 3 channels" in text
    assert "channels          b4 8, b8 8, b16 4" in text
    assert "conv_clamp        +-256" in text
    assert f"parameters        {sum(p.numel() for p in G.parameters()):,}" in text


def test_inspect_native_file(tmp_path, capsys, checkpoint_generator):
    G = checkpoint_generator(seed=42)
    save_generator(G, tmp_path / "g.safetensors")
    assert main(["inspect", str(tmp_path / "g.json"), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == "dragpipe (safetensors + JSON)"
    assert facts["code_base"] == "dragpipe" and facts["conv_clamp"] == 256


def test_inspect_bad_file_exits_nonzero_with_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"\x80\x04\x95 truncated")
    for path in (bad, tmp_path / "absent.pkl"):
        assert main(["inspect", str(path)]) == 1  # no exception escapes: no traceback
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"dragpipe: error: {path}")
