"""load_spec: a valid spec and its merged settings; every error path, located."""

from __future__ import annotations

import textwrap

import pytest
from PIL import Image

from pipeline.errors import UsageError
from pipeline.spec import SpecError, load_spec


def write_spec(tmp_path, body: str, generator: bool = True):
    """spec.yaml in tmp_path with photo.png (64x48) and, unless told, gen.pkl beside it."""
    Image.new("RGB", (64, 48), (120, 90, 60)).save(tmp_path / "photo.png")
    if generator:
        (tmp_path / "gen.pkl").write_bytes(b"\x80\x04 only its first bytes are read")
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
    return path


VALID = """
generator: gen.pkl
x-shared: &fast {max_steps: 40}
drag:
  lr: 1e-3
  max_steps: 100
invert:
  preset: nvidia
  project: {num_steps: 100}
composite: {transfer: lowpass}
photos:
  - id: grace
    path: photo.png
    face: all
    drag:
      <<: *fast
      tracking_norm: l1
    edits:
      - name: smile
        points:
          - handle: {landmark: mouth_left}
            target: {landmark: mouth_left, offset: [0.0, -0.04]}
          - [[10, 12], [11, 13]]
        mask: {shape: circle, center: {landmark: nose_tip}, radius: 0.2}
        drag: {lr: 3e-3}
      - name: wider
        from: smile
        space: aligned
        points: [{handle: [1, 2], target: [3, 4.5], space: photo}]
        composite: {feather: 0.05}
  - id: "no"
    path: ./photo.png
    invert: {preset: pti, tune: {max_steps: 20}}
"""


def problems(tmp_path, body: str, **kwargs) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(tmp_path, body), **kwargs)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


def test_valid_spec_parses_with_resolved_paths(tmp_path):
    spec = load_spec(write_spec(tmp_path, VALID))
    assert spec.path == tmp_path / "spec.yaml"
    assert spec.generator == tmp_path.resolve() / "gen.pkl"
    assert [p.id for p in spec.photos] == ["grace", "no"]  # quoted "no" stays a string
    grace = spec.photos[0]
    assert grace.face == "all" and grace.path == tmp_path.resolve() / "photo.png"
    smile, wider = grace.edits
    assert smile.points[0].handle.landmark == 48 and smile.points[0].target.offset == (0.0, -0.04)
    assert smile.points[1].handle == (10.0, 12.0) and smile.points[1].target == (11.0, 13.0)
    assert smile.mask[0].shape == "circle" and smile.mask[0].center.landmark == 30
    assert wider.from_ == "smile" and wider.space == "aligned" and wider.points[0].space == "photo"
    assert spec.photos[1].face == "largest" and spec.photos[1].edits == []
    assert smile.photo_id == "grace" and smile.where.endswith("spec.yaml:18:9")
    assert smile.point_where(1).endswith("spec.yaml:22:13")


def test_settings_merge_top_photo_edit_and_presets(tmp_path):
    spec = load_spec(write_spec(tmp_path, VALID))
    top_photo = spec.settings("grace")
    assert top_photo.drag.lr == pytest.approx(1e-3) and isinstance(top_photo.drag.lr, float)
    assert top_photo.drag.max_steps == 40  # photo (via the merge key) over top
    assert top_photo.drag.tracking_norm == "l1"
    smile = spec.settings("grace", "smile")
    assert smile.drag.lr == pytest.approx(3e-3) and smile.drag.max_steps == 40
    assert smile.composite.transfer == "lowpass"
    wider = spec.settings(spec.photos[0], spec.photos[0].edits[1])
    assert wider.drag.lr == pytest.approx(1e-3) and wider.composite.feather == 0.05
    # preset 'nvidia' at the top: lr 0.1 and 10000 samples, but the explicit steps win.
    assert top_photo.project.initial_learning_rate == 0.1
    assert top_photo.project.w_avg_samples == 10000 and top_photo.project.num_steps == 100
    # photo 'no' picks preset 'pti': its lr, the top's explicit steps still apply.
    other = spec.settings("no")
    assert other.project.initial_learning_rate == 0.01 and other.project.w_avg_samples == 600
    assert other.project.num_steps == 100 and other.tune.max_steps == 20
    assert top_photo.tune.max_steps == 350  # the default elsewhere
    assert other.composite.transfer == "lowpass" and other.drag.max_steps == 100


def test_spec_error_is_a_usage_error_with_exit_code_2(tmp_path):
    with pytest.raises(UsageError) as info:
        load_spec(write_spec(tmp_path, "generator: gen.pkl\nphotos: []\n"))
    assert info.value.exit_code == 2
    assert str(info.value) == (
        f"{tmp_path / 'spec.yaml'}:2:9: photos: too few items (got a list of 0 items); "
        "expected at least 1 item"
    )


def test_unknown_key_suggests_the_closest_and_lists_the_choices(tmp_path):
    (line,) = problems(tmp_path, VALID.replace("    face: all", "    fase: all"))
    assert (
        ":13:5: photos[0].fase: unknown key (did you mean 'face'?) (got 'fase'); expected " in line
    )
    assert "expected one of: id, path, face, landmarks, edits, align, invert, drag" in line


def test_unknown_key_in_a_generated_stage_section(tmp_path):
    (line,) = problems(tmp_path, VALID.replace("  max_steps: 100", "  max_step: 100"))
    assert ":5:3: drag.max_step: unknown key (did you mean 'max_steps'?)" in line
    assert "lambda_mask" in line  # the choices come from DragConfig's fields


def test_yaml_11_traps(tmp_path):
    body = VALID.replace("tracking_norm: l1", "w_plus: yes").replace(
        "  max_steps: 100", "  stall_tolerance: 1e-1\n  subpixel_tracking: on"
    )
    found = problems(tmp_path, body)
    assert len(found) == 2
    assert ":6:22: drag.subpixel_tracking: a YAML 1.1 yes/no word is a string here" in found[0]
    assert "(got on); expected true or false" in found[0]
    assert ":17:15: photos[0].drag.w_plus: a YAML 1.1 yes/no word" in found[1]


def test_exponent_numbers_are_floats(tmp_path):
    body = VALID.replace("  lr: 1e-3", "  lr: 2E-4\n  stall_tolerance: 5e0")
    spec = load_spec(write_spec(tmp_path, body))
    assert spec.settings("no").drag.lr == pytest.approx(2e-4)
    assert spec.settings("no").drag.stall_tolerance == 5.0


def test_wrong_types(tmp_path):
    body = (
        VALID.replace("  lr: 1e-3", "  lr: fast\n  max_steps: 1.5")
        .replace("  max_steps: 100", "  layers: true")
        .replace('id: "no"', "id: 007")
    )
    found = problems(tmp_path, body)
    assert [line.split(": ", 1)[1] for line in found] == [
        "drag.lr: not a number (got fast); expected a number",
        "drag.max_steps: not an integer (got 1.5); expected an integer",
        "drag.layers: not an integer (got true); expected an integer",
        "photos[1].id: not a string (got 007); expected a name of letters, digits, '.', '_' or "
        "'-' starting with a letter or digit (quote numbers: '001')",
    ]
    assert found[0].startswith(f"{tmp_path / 'spec.yaml'}:4:7: ")


def test_duplicate_key(tmp_path):
    found = problems(tmp_path, VALID.replace("    face: all", "    face: all\n    face: 1"))
    assert found == [
        f"{tmp_path / 'spec.yaml'}:14:5: photos[0].face: duplicate key (got 'face'); "
        "expected each key once in a mapping (first at line 13)"
    ]


def test_bad_landmark_name_and_index(tmp_path):
    body = VALID.replace("{landmark: nose_tip}", "{landmark: nose_tipp}").replace(
        "target: {landmark: mouth_left,", "target: {landmark: 68,"
    )
    found = problems(tmp_path, body)
    assert (
        ":21:32: photos[0].edits[0].points[0].target.landmark: landmark index out of range "
        in (found[0])
    )
    assert "(got 68); expected 0-67" in found[0]
    assert (
        ":23:50: photos[0].edits[0].mask.center.landmark: unknown landmark name (did you mean "
        in (found[1])
    )
    assert "'nose_tip'?) (got nose_tipp)" in found[1]


def test_bad_from_and_cycles(tmp_path):
    body = VALID.replace("from: smile", "from: smiles")
    (line,) = problems(tmp_path, body)
    assert (
        ":26:15: photos[0].edits[1].from: no edit of this photo has that name (got smiles); "
        in (line)
    )
    assert "expected the name of another edit of this photo (smile, wider)" in line
    cycle = VALID.replace("      - name: smile\n", "      - name: smile\n        from: wider\n")
    (line,) = problems(tmp_path, cycle)
    assert "photos[0].edits[0].from: chained edits form a cycle (got smile -> wider -> smile)" in (
        line
    )
    itself = VALID.replace("from: smile", "from: wider")
    (line,) = problems(tmp_path, itself)
    assert "from: an edit cannot start from itself (got wider)" in line


def test_duplicate_ids_and_edit_names(tmp_path):
    body = VALID.replace("name: wider", "name: smile").replace('id: "no"', "id: grace")
    found = problems(tmp_path, body)
    assert any(
        ":25:15: photos[0].edits[1].name: duplicate edit name (got smile); expected a name "
        "unique within this photo (also used at line 18)" in line
        for line in found
    )
    assert any(
        "photos[1].id: duplicate photo id (got grace); expected a unique id (also used at line 11)"
        in line
        for line in found
    )
    bad = VALID.replace("name: wider", "name: ../wider")
    assert any(
        "edits[1].name: not usable as a file name (got ../wider)" in p
        for p in problems(tmp_path, bad)
    )


def test_missing_files(tmp_path):
    body = (
        VALID.replace("path: ./photo.png", "path: ./nothere.jpg")
        .replace("mask: {shape", "mask: [{png: masks/m.png}, {shape")
        .replace("radius: 0.2}", "radius: 0.2}]")
    )
    spec = write_spec(tmp_path, body, generator=False)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    found = [str(p) for p in info.value.problems]
    assert len(found) == 3
    assert (
        f"generator: the generator file {tmp_path.resolve() / 'gen.pkl'} does not exist" in found[0]
    )
    assert (
        f":23:22: photos[0].edits[0].mask[0].png: the mask image {tmp_path.resolve()}" in found[1]
    )
    assert (
        "masks/m.png does not exist (got masks/m.png); expected an existing mask image"
        in (found[1])
    )
    assert (
        f"photos[1].path: the photo {tmp_path.resolve() / 'nothere.jpg'} does not exist"
        in (found[2])
    )
    # require_generator=False skips only the generator
    without = load_spec(write_spec(tmp_path, VALID, generator=False), require_generator=False)
    assert without.generator.name == "gen.pkl"
    (tmp_path / "notimage.png").write_text("hello")
    body = VALID.replace("path: ./photo.png", "path: notimage.png")
    (line,) = problems(tmp_path, body)
    assert "photos[1].path: the photo" in line and "is not an image format dragpipe can" in line


def test_landmarks_file_is_checked(tmp_path):
    (tmp_path / "lm.json").write_text("[[1, 2]]")
    body = VALID.replace("    face: all", "    face: all\n    landmarks: lm.json")
    (line,) = problems(tmp_path, body)
    assert ":14:16: photos[0].landmarks: bad landmarks file: " in line


def test_config_checks_run_at_load_and_point_at_the_field(tmp_path):
    body = VALID.replace("drag: {lr: 3e-3}", "drag: {lr: -3e-3}").replace(
        "composite: {transfer: lowpass}", "composite: {transfer: blend}"
    )
    found = problems(tmp_path, body)
    assert ":9:23: composite.transfer: rejected by the composite settings: " in found[0]
    assert "(got blend)" in found[0]
    assert ":24:20: photos[0].edits[0].drag.lr: rejected by the drag settings: " in found[1]
    assert "got -0.003 (got -3e-3)" in found[1]
    assert len(found) == 2  # the top-level problem is reported once, not once per photo


def test_many_problems_are_reported_together_in_file_order(tmp_path):
    body = """
    generator: gen.pkl
    drag: {lrr: 1}
    photos:
      - id: a
        path: photo.png
        face: biggest
        edits:
          - name: e1
            points: [{handle: [1, 2, 3], target: x}]
            mask: {shape: square}
          - points: []
    """
    found = problems(tmp_path, body)
    located = [line.split(": ", 2)[0].rsplit(":", 2)[1:] + [line.split(": ")[1]] for line in found]
    assert located == [
        ["2", "8", "drag.lrr"],
        ["6", "11", "photos[0].face"],
        ["9", "27", "photos[0].edits[0].points[0].handle"],
        ["9", "46", "photos[0].edits[0].points[0].target"],
        ["10", "23", "photos[0].edits[0].mask.shape"],
        ["11", "9", "photos[0].edits[1].name"],
        ["11", "17", "photos[0].edits[1].points"],
    ]
    assert "missing required key (got nothing); expected a 'name:' key here" in found[5]


def test_yaml_syntax_error_is_located(tmp_path):
    (line,) = problems(tmp_path, "generator: gen.pkl\nphotos: [\n  - id: a\n")
    assert line.startswith(f"{tmp_path / 'spec.yaml'}:3:")
    assert "YAML syntax error" in line


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("", "<spec>: empty spec (got nothing)"),
        ("- a\n- b\n", "<spec>: the spec is not a mapping (got a list of 2 items)"),
        ("generator: !!python/object:os.system x\nphotos: []\n", "unsupported YAML tag"),
    ],
)
def test_not_a_spec(tmp_path, body, needle):
    assert any(needle in line for line in problems(tmp_path, body))


def test_unreadable_spec_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.yaml")
    assert "cannot read the spec file: No such file or directory" in str(info.value)


def test_short_form_pairs_are_located_inside_the_pair(tmp_path):
    body = VALID.replace("- [[10, 12], [11, 13]]", "- [[10, x], [11, 13, 14]]")
    found = problems(tmp_path, body)
    assert (
        ":22:19: photos[0].edits[0].points[1][0][1]: not a number (got x); expected a number"
        in (found[0])
    )
    assert (
        ":22:23: photos[0].edits[0].points[1][1]: not a pair of numbers (got a list of 3 "
        in (found[1])
    )
