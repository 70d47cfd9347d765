"""Composite stage benchmark: speed at 12 MP, identity checks, transfer methods compared.

Run: ``python bench/composite.py`` (CPU; about a minute). Prints measured figures only.

1. Transfer methods on synthetic edits with a known right answer
   (``pipeline.compositing.synthetic``: a textured blob moved inside an imperfectly
   reconstructed face): mean error against the ideal photo over the blended area, split
   into the pixels the edit moved and those it did not, and the seam ratio (gradient energy
   of the blend band over that of the untouched pixels beside it; the ideal's own ratio is
   printed for reference).
2. A 12-megapixel photo (4000x3000, face quad side 1400 px, aligned 1024): time of
   ``composite_faces`` per method, the no-op identity check and the outside-mask identity.
3. ``save_output`` on the example JPEG, a no-op and a painted 58x62 patch: time, file size,
   pixels changed, error of the untouched area (weight 0, and beyond the touched MCUs) and
   of the touched pixels, for JPEG 'keep' (block edit), quality 95 and PNG.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.compositing import CompositeConfig, CompositeResult, composite_faces, seam_ratio
from pipeline.compositing.config import TRANSFERS
from pipeline.compositing.synthetic import FacePlacement, make_scene
from pipeline.photo import load_photo
from pipeline.photo_output import save_output, working_rgb

EDITS = ((0, (12.0, -8.0)), (1, (25.0, 5.0)), (2, (4.0, 3.0)), (3, (-15.0, 10.0)))
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "photos" / "grace_hopper.jpg"


def _ring(face, config):
    return config.feather * face.transform.output_size * face.transform.scale


def compare_methods() -> None:
    print("== transfer methods on synthetic edits (mean |out - ideal|, grey levels) ==")
    print(f"{'method':<9} {'all':>6} {'moved':>6} {'still':>6} {'seam':>6} {'ideal seam':>10}")
    scenes = [
        make_scene(faces=(FacePlacement((320.0, 240.0), 150.0, 0.2, move=move),), seed=seed)
        for seed, move in EDITS
    ]
    for method in TRANSFERS:
        config = CompositeConfig(transfer=method)
        rows = []
        for scene in scenes:
            result = composite_faces(scene.photo, scene.faces, config)
            out = np.clip(np.rint(result.rgb), 0, 255)
            err = np.abs(out - scene.ideal)
            moved = np.any(scene.photo != scene.ideal, axis=2)
            ring = _ring(scene.faces[0], config)
            rows.append(
                (
                    err[result.changed].mean(),
                    err[moved].mean(),
                    err[result.changed & ~moved].mean(),
                    seam_ratio(out, result.weight, ring),
                    seam_ratio(scene.ideal.astype(np.float32), result.weight, ring),
                )
            )
        a, m, s, seam, ideal = np.mean(rows, axis=0)
        print(f"{method:<9} {a:6.2f} {m:6.2f} {s:6.2f} {seam:6.3f} {ideal:10.3f}")


def twelve_megapixels() -> None:
    print("== 12 MP photo (4000x3000), aligned 1024, quad side 1400 px ==")
    t0 = time.perf_counter()
    scene = make_scene(
        size=(4000, 3000),
        faces=(FacePlacement((2000.0, 1500.0), 700.0, 0.15, move=(40.0, -25.0)),),
        output_size=1024,
    )
    print(f"synthetic scene built in {time.perf_counter() - t0:.1f} s")
    for method in ("displace", "residual", "paste"):
        config = CompositeConfig(transfer=method)
        t0 = time.perf_counter()
        result = composite_faces(scene.photo, scene.faces, config)
        elapsed = time.perf_counter() - t0
        out = np.clip(np.rint(result.rgb), 0, 255).astype(np.uint8)
        outside = ~result.changed
        same = np.array_equal(out[outside], scene.photo[outside])
        print(
            f"{method:<9} composite {elapsed:5.2f} s, blended {result.changed.mean() * 100:.2f} % "
            f"of the photo, outside the mask identical: {same}"
        )
    noop = [dataclasses.replace(f, edited=f.reconstruction) for f in scene.faces]
    t0 = time.perf_counter()
    result = composite_faces(scene.photo, noop, CompositeConfig())
    identical = np.array_equal(result.rgb, scene.photo.astype(np.float32))
    print(
        f"no-op edit: output identical to the photo: {identical} ({time.perf_counter() - t0:.2f} s)"
    )


def output_files() -> None:
    print("== save_output ==")
    if not EXAMPLE.exists():
        print(f"(skipped: {EXAMPLE} not found)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        photo = load_photo(EXAMPLE)
        decoded = np.asarray(photo.image).astype(int)
        rgb = working_rgb(photo)
        weight = np.zeros(rgb.shape[:2], dtype=np.float32)
        weight[203:261, 197:259] = 1.0  # not aligned to the 8x8 grid
        rgb[203:261, 197:259] = rgb[203:261, 197:259] * 0.7 + 30.0
        untouched = weight == 0
        keep = np.ones(weight.shape, dtype=bool)  # beyond the touched 16x16 MCUs + 2 px
        keep[192 - 2 : 272 + 2, 192 - 2 : 272 + 2] = False
        noop = CompositeResult(rgb=working_rgb(photo), weight=np.zeros_like(weight))
        for label, config, name in (
            ("JPEG keep", CompositeConfig(), "out.jpg"),
            ("JPEG q95 ", CompositeConfig(jpeg_quality=95), "out95.jpg"),
            ("PNG      ", CompositeConfig(output_format="png"), "out.png"),
        ):
            for edit, result in (("no-op ", noop), ("edited", CompositeResult(rgb, weight))):
                t0 = time.perf_counter()
                path = save_output(photo, result, Path(tmp) / name, config)
                elapsed = time.perf_counter() - t0
                written = np.asarray(Image.open(path)).astype(int)
                diff = np.abs(written - decoded)
                line = (
                    f"{label} {edit} {elapsed * 1000:6.1f} ms, "
                    f"{path.stat().st_size / 1024:6.1f} KiB (input "
                    f"{EXAMPLE.stat().st_size / 1024:.1f}); pixels changed "
                    f"{100 * np.mean(diff.max(axis=2) > 0):5.2f}%; untouched (weight 0): mean "
                    f"{diff[untouched].mean():.3f} max {diff[untouched].max():2d}; beyond the "
                    f"touched MCUs: max {diff[keep].max():2d}"
                )
                if result.changed.any():
                    error = np.abs(written - result.rgb)[~untouched].mean()
                    line += f"; touched pixels vs the composite: mean {error:.2f}"
                print(line)


def main() -> int:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    compare_methods()
    twelve_megapixels()
    output_files()
    return 0


if __name__ == "__main__":
    sys.exit(main())
