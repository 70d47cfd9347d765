"""Landmark names (image-side convention) and the landmark override JSON."""

import json

import numpy as np
import pytest

from pipeline.alignment import LANDMARK_NAMES, landmark_index, landmark_name, load_landmarks_json
from pipeline.alignment.errors import LandmarksFileError
from pipeline.alignment.landmark_names import ANCHORS, LandmarkNameError
from pipeline.errors import UsageError


def test_named_anchors_have_dlib_indices():
    expected = {
        "chin": 8,
        "nose_tip": 30,
        "left_eye_outer": 36,
        "left_eye_inner": 39,
        "right_eye_inner": 42,
        "right_eye_outer": 45,
        "mouth_left": 48,
        "upper_lip_top": 51,
        "mouth_right": 54,
        "lower_lip_bottom": 57,
        "jaw_0": 0,
        "jaw_16": 16,
        "left_eyebrow_0": 17,
        "right_eyebrow_4": 26,
        "nose_bridge_0": 27,
        "inner_lip_7": 67,
    }
    for name, index in expected.items():
        assert LANDMARK_NAMES[name] == index, name


def test_every_index_has_a_group_name_and_anchors_win():
    group_points = {name for name in LANDMARK_NAMES if name not in ANCHORS}
    assert sorted(LANDMARK_NAMES[n] for n in group_points) == list(range(68))
    assert landmark_name(30) == "nose_tip" and landmark_name(1) == "jaw_1"
    assert all(landmark_index(landmark_name(i)) == i for i in range(68))


def test_landmark_index_accepts_names_indices_and_digit_strings():
    assert landmark_index("Nose-Tip") == 30
    assert landmark_index(" mouth_left ") == 48
    assert landmark_index(12) == 12 and landmark_index("12") == 12


def test_landmark_index_errors_list_the_valid_names():
    with pytest.raises(LandmarkNameError, match=r"unknown landmark 'nose'.*nose_tip.*mouth_left"):
        landmark_index("nose")
    with pytest.raises(LandmarkNameError, match="outside 0-67"):
        landmark_index(68)
    with pytest.raises(LandmarkNameError, match="name or an index"):
        landmark_index(True)
    # Usable both as a CLI error (exit 2) and inside a pydantic validator (ValueError).
    err = LandmarkNameError("x")
    assert isinstance(err, UsageError) and isinstance(err, ValueError) and err.exit_code == 2


def _points(offset=0.0):
    return [[float(i) + offset, 2.0 * i + 1.0] for i in range(68)]


def test_override_json_single_face_list(tmp_path):
    path = tmp_path / "lm.json"
    path.write_text(json.dumps(_points()))
    (face,) = load_landmarks_json(path)
    assert face.shape == (68, 2) and face.dtype == np.float64
    assert face[10].tolist() == [10.0, 21.0]


def test_override_json_faces_object_accepts_lists_and_records(tmp_path):
    path = tmp_path / "lm.json"
    records = {"faces": [_points(), {"index": 1, "landmarks": _points(100.0)}]}
    path.write_text(json.dumps(records))
    first, second = load_landmarks_json(path)
    assert second[0].tolist() == [100.0, 1.0] and first[0].tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON \(line 1, column 2"),
        (json.dumps(_points()[:67]), r"expected 68 \[x, y\] pairs .*got 67"),
        (json.dumps({"points": _points()}), r"expected a list of 68 .* keys \['points'\]"),
        (json.dumps({"faces": []}), "non-empty list"),
        (json.dumps({"faces": [{"box": [0, 0, 1, 1]}]}), "face 0: an object face needs"),
        (json.dumps(_points()[:60] + [[1.0, "a"]] + _points()[61:]), r"point 60 must be a pair"),
        (json.dumps(_points()[:5] + [[1.0, 2.0, 3.0]] + _points()[6:]), r"point 5 must be a pair"),
        (json.dumps([[3.0, 4.0]] * 68), "degenerate"),
        ('"hello"', "got str"),
    ],
)
def test_override_json_errors_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LandmarksFileError, match=message) as exc:
        load_landmarks_json(path)
    assert "bad.json" in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.exit_code == 2


def test_override_json_rejects_non_finite_and_missing_files(tmp_path):
    path = tmp_path / "nan.json"
    points = _points()
    points[7] = [float("nan"), 3.0]
    path.write_text(json.dumps(points))  # json writes NaN, which Python's json reads back
    with pytest.raises(LandmarksFileError, match="point 7 must be a pair of finite numbers"):
        load_landmarks_json(path)
    with pytest.raises(LandmarksFileError, match="not found"):
        load_landmarks_json(tmp_path / "missing.json")
