"""Writing edits into a spec file: only the changed values change, comments and layout stay,
values read back exactly, and a layout the splice cannot handle is refused, never broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.editor import spec_text
from pipeline.editor.spec_text import SpecTextError, add_photo, new_spec, set_edit, set_photo_key
from pipeline.spec import load_spec_text
from pipeline.spec.yaml_loader import load_yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REFERENCE = (EXAMPLES / "spec_reference.yaml").read_text()


def changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """(lines only in old, lines only in new), in order."""
    import difflib

    removed, added = [], []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def edit_of(text: str, photo: int, name: str) -> dict:
    edits = load_yaml(text).data["photos"][photo]["edits"]
    return next(edit for edit in edits if edit["name"] == name)


def test_an_unchanged_edit_leaves_the_file_byte_for_byte():
    smile = edit_of(REFERENCE, 0, "smile")
    assert set_edit(REFERENCE, "grace", smile) == REFERENCE


def test_changing_one_value_changes_only_its_lines():
    smile = edit_of(REFERENCE, 0, "smile")
    points = [{"handle": [233.41, 281.07], "target": {"landmark": "mouth_left"}}]
    new = set_edit(REFERENCE, "grace", {**smile, "points": points})
    removed, added = changed_lines(REFERENCE, new)
    assert added == [
        "          - handle: [233.41, 281.07]",
        "            target: {landmark: mouth_left}",
    ]
    assert [line.split("#")[0].strip() for line in removed] == [
        "- handle: [233, 281]",
        "target: [226, 270]",
        "- [[300, 277], [307, 266]]",
    ]
    # the mask's comments, the drag and composite sections and everything else are kept
    assert "feather: 0.01                 # soft edge" in new
    assert edit_of(new, 0, "smile") == {**smile, "points": points}
    assert load_spec_text(new, EXAMPLES / "spec_reference.yaml", require_generator=False)


def test_new_keys_and_removed_keys():
    smile = edit_of(REFERENCE, 0, "smile")
    changed = {k: v for k, v in smile.items() if k != "composite"}
    changed["drag"] = {"lr": 0.003, "max_steps": 17}
    new = set_edit(REFERENCE, "grace", changed)
    removed, added = changed_lines(REFERENCE, new)
    assert added == ["        drag: {lr: 0.003, max_steps: 17}"]
    assert [line.strip() for line in removed] == [
        "drag:                             # this edit only (over the photo's and the top)",
        "lr: 3e-3",
        "composite:",
        "feather: 0.04",
    ]
    assert edit_of(new, 0, "smile") == changed


def test_a_new_edit_goes_after_the_last_one_at_the_files_indentation():
    text = (EXAMPLES / "example.yaml").read_text()
    edit = {
        "name": "web",
        "from": "lift",
        "points": [{"handle": [210.27, 167.54], "target": [235.28, 146.34]}],
        "mask": [{"png": "masks/grace-web.png", "space": "aligned"}],
        "drag": {"max_steps": 7},
    }
    new = set_edit(text, "grace", edit)
    assert new.startswith(text.rstrip("\n"))
    assert new[len(text.rstrip("\n")) :] == (
        "\n      - name: web\n"
        "        from: lift\n"
        "        points:\n"
        "          - handle: [210.27, 167.54]\n"
        "            target: [235.28, 146.34]\n"
        "        mask:\n"
        "          - png: masks/grace-web.png\n"
        "            space: aligned\n"
        "        drag: {max_steps: 7}\n"
    )
    assert edit_of(new, 0, "web") == edit


@pytest.mark.parametrize("value", [0.1, 1e-05, 233.41000000000003, 2.0, -0.0, 12345678.9])
def test_numbers_read_back_bit_for_bit(value):
    text = "photos:\n  - id: a\n    edits:\n      - name: e\n        points: []\n"
    new = set_edit(text, "a", {"name": "e", "points": [[value, 1.5]]})
    assert load_yaml(new).data["photos"][0]["edits"][0]["points"] == [[value, 1.5]]


@pytest.mark.parametrize("name", ["yes", "1e3", "null", "a: b", "with # hash", "ünï", "007"])
def test_strings_that_look_like_something_else_are_quoted(name):
    assert load_yaml(f"x: {spec_text.scalar(name)}\n").data == {"x": name}


def test_flow_style_edits_are_rewritten_whole():
    text = "photos:\n  - {id: a, path: a.jpg, edits: [{name: e, points: [[[1, 2], [3, 4]]]}]}\n"
    edit = {"name": "e", "points": [[[1, 2], [5, 6]]]}
    new = set_edit(text, "a", edit)
    assert load_yaml(new).data["photos"][0]["edits"] == [edit]
    added = set_edit(new, "a", {"name": "f", "points": [[[1, 2], [3, 4]]]})
    assert [e["name"] for e in load_yaml(added).data["photos"][0]["edits"]] == ["e", "f"]


def test_photo_keys_new_photos_and_new_specs():
    text = (EXAMPLES / "example.yaml").read_text()
    new = set_photo_key(text, "grace", "face", 1)
    assert changed_lines(text, new) == ([], ["    face: 1"])
    two = add_photo(new, {"id": "astronaut", "path": "photos/astronaut.png"})
    assert load_yaml(two).data["photos"][1] == {"id": "astronaut", "path": "photos/astronaut.png"}
    assert two.startswith(new.rstrip("\n"))
    fresh = new_spec("demo/generator.safetensors", {"id": "grace", "path": "photos/g h.jpg"})
    assert load_yaml(fresh).data == {
        "generator": "demo/generator.safetensors",
        "photos": [{"id": "grace", "path": "photos/g h.jpg"}],
    }


def test_unknown_photos_and_broken_files_are_refused_in_one_line():
    with pytest.raises(SpecTextError, match="has no photo with id 'nobody'"):
        set_edit(REFERENCE, "nobody", {"name": "e", "points": []})
    with pytest.raises(SpecTextError, match=r"spec.yaml:3:1: YAML syntax error.*fix the spec file"):
        set_edit("photos:\n  - id: [\n", "a", {"name": "e"}, "spec.yaml")


def test_a_splice_that_would_not_read_back_is_refused(monkeypatch):
    text = (EXAMPLES / "example.yaml").read_text()
    monkeypatch.setattr(spec_text, "item", lambda value, column: "name: broken")
    with pytest.raises(SpecTextError, match="could not update the spec in place"):
        set_edit(text, "grace", {"name": "web", "points": [[[1.0, 2.0], [3.0, 4.0]]]})
