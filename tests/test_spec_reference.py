"""examples/spec_reference.yaml parses, and its points and masks fit the example photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.alignment import AlignConfig, find_faces, load_landmarks_json
from pipeline.alignment.ffhq import ffhq_quad
from pipeline.alignment.transform import AlignTransform, photo_to_aligned
from pipeline.photo import load_photo
from pipeline.spec import SpecError, load_spec
from pipeline.spec.masks import resolve_mask
from pipeline.spec.points import owning_face, resolve_points

REFERENCE = Path(__file__).resolve().parents[1] / "examples" / "spec_reference.yaml"
SIZE = 512  # the aligned side of the reference's 512 px generator


@pytest.fixture(scope="module")
def spec():
    return load_spec(REFERENCE, require_generator=False)


def test_reference_parses_and_only_lacks_the_generator(spec):
    assert [p.id for p in spec.photos] == ["grace", "astronaut", "astronaut-all"]
    with pytest.raises(SpecError) as info:
        load_spec(REFERENCE)
    (problem,) = info.value.problems
    assert problem.field == "generator" and "does not exist" in problem.message
    smile = spec.settings("grace", "smile")
    assert smile.drag.lr == pytest.approx(3e-3) and smile.drag.max_steps == 80
    assert smile.drag.tracking_norm == "l1" and smile.composite.feather == 0.04
    astronaut = spec.settings("astronaut")
    assert astronaut.project.num_steps == 300 and astronaut.project.w_avg_samples == 10000


def _face(photo, landmarks):
    transform = AlignTransform(quad=ffhq_quad(landmarks), output_size=SIZE, photo_size=photo.size)
    return photo_to_aligned(landmarks, transform), transform


def test_reference_points_and_masks_fit_the_example_faces(spec):
    grace = spec.photo("grace")
    photo = load_photo(grace.path)
    (face,) = find_faces(photo, AlignConfig())
    astro = spec.photo("astronaut")
    astro_photo = load_photo(astro.path)
    (astro_landmarks,) = load_landmarks_json(astro.landmarks)
    cases = [(grace, _face(photo, face.landmarks)), (astro, _face(astro_photo, astro_landmarks))]
    for photo_spec, (landmarks, transform) in cases:
        for edit in photo_spec.edits:
            handles, targets = resolve_points(edit, landmarks, transform)
            assert np.all(np.linalg.norm(targets - handles, axis=1) < 0.15 * SIZE), edit.name
            mask = resolve_mask(edit, landmarks, transform)
            # every handle may move, and the mask is a part of the face, not all of it
            assert all(mask[int(round(y)), int(round(x))] > 0.5 for x, y in handles), edit.name
            assert 0.005 < mask.mean() < 0.3, edit.name
    # face: all on the astronaut photo: the photo-space edit belongs to the real face only
    faces = find_faces(astro_photo, AlignConfig())
    transforms = [_face(astro_photo, f.landmarks)[1] for f in faces]
    both = spec.photo("astronaut-all")
    assert owning_face(both.edit("chin-down"), transforms) is None
    assert owning_face(both.edit("nose-left"), transforms) == 1
