"""Align-stage timings on big photos: load, detection, FFHQ alignment (1024 / 4096).

Builds a 12-megapixel (4000 x 3000) and a 48-megapixel (8000 x 6000) JPEG from the example
portrait (upscaled, so the face is large), then times ``load_photo``, ``find_faces``
(detection on a reduced copy) and ``align_face`` at output 1024 / transform 4096, and
prints the process's peak resident memory after each photo.

Optionally (``--reference DIR``, a directory holding ``ref.py`` with a reconstruction of
NVIDIA's ``recreate_aligned_images`` as ``ref_align(img, lm, output_size, transform_size)``)
it also times the reference on the same landmarks and prints the largest pixel difference.
The bench does not need it.

    python bench/align.py [--reference /tmp/align] [--skip-48mp]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.alignment import AlignConfig, align_face, detect_faces, find_faces, select_faces
from pipeline.photo import load_photo

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = ROOT / "examples" / "photos" / "grace_hopper.jpg"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def make_photo(path: Path, width: int, height: int) -> None:
    """The portrait upscaled to the photo's height, centred on a grey background."""
    portrait = Image.open(PORTRAIT).convert("RGB")
    scale = height / portrait.height
    face = portrait.resize((round(portrait.width * scale), height), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (width, height), (118, 124, 131))
    canvas.paste(face, ((width - face.width) // 2, 0))
    canvas.save(path, quality=92)


def load_reference(directory: str | None):
    if not directory:
        return None
    spec = importlib.util.spec_from_file_location("ffhq_reference", Path(directory) / "ref.py")
    if spec is None or spec.loader is None:
        sys.exit(f"no ref.py in {directory}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ref_align


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start, time.process_time() - cpu


def bench_photo(label: str, path: Path, config: AlignConfig, ref_align) -> None:
    photo, *t_load = timed(load_photo, path)
    faces, *t_detect = timed(find_faces, photo, config)
    (face,) = select_faces(faces, "largest")
    (aligned, transform), *t_align = timed(align_face, photo, face.landmarks, config)
    width, height = photo.size
    print(
        f"{label}: {width}x{height} ({width * height / 1e6:.0f} MP), face crop "
        f"{face.size:.0f} px, {len(faces)} face(s)        wall s   CPU s"
    )
    rows = [
        ("load_photo", t_load, ""),
        ("find_faces", t_detect, f"detection on a copy <= {config.detect_max_side} px"),
        ("align_face", t_align, f"output {config.output_size}, transform {config.transform_size}"),
        ("detect + align", [t_detect[0] + t_align[0], t_detect[1] + t_align[1]], ""),
    ]
    if ref_align is not None:
        image = Image.fromarray(photo.rgb)
        reference, *t_ref = timed(
            ref_align, image, face.landmarks, config.output_size, config.transform_size
        )
        diff = np.abs(np.asarray(reference, int) - np.asarray(aligned, int)).max()
        rows.append(("reference align", t_ref, f"max pixel difference to ours: {diff}"))
    for name, (wall, cpu), note in rows:
        print(f"  {name:<16} {wall:7.2f} {cpu:7.2f}  {note}")
    print(f"  peak memory so far {peak_rss_mb():6.0f} MB")
    del photo, aligned, transform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=None, help="directory holding ref.py (optional)")
    parser.add_argument("--skip-48mp", action="store_true", help="only the 12-megapixel photo")
    args = parser.parse_args()
    ref_align = load_reference(args.reference)
    config = AlignConfig(output_size=1024, transform_size=4096)
    sizes = [("12 MP", 4000, 3000)] + ([] if args.skip_48mp else [("48 MP", 8000, 6000)])
    detect_faces(np.zeros((64, 64, 3), np.uint8))  # load dlib's models outside the timings
    print(f"measured on this machine (timings noisy under load); baseline {peak_rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory(prefix="dragpipe-bench-align-") as tmp:
        for label, width, height in sizes:
            path = Path(tmp) / f"portrait_{width}x{height}.jpg"
            make_photo(path, width, height)
            bench_photo(label, path, config, ref_align)
            path.unlink()


if __name__ == "__main__":
    main()
