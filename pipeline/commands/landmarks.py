"""``dragpipe landmarks PHOTO``: show the faces and 68 landmarks an edit can refer to.

Writes ``OUTPUT`` (the photo with every face's box, landmarks, indices and named anchors)
and ``OUTPUT_STEM_aligned_<i>.png`` per face (its FFHQ crop with the same points), prints
the faces found (index, box, score, crop size), and with ``--json`` the landmarks in the
format ``--landmarks`` / the spec's ``landmarks:`` accept, ready to correct by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from draggan.atomic_write import atomic_write
from pipeline.alignment import (
    AlignConfig,
    align_face,
    face_warning,
    find_faces,
    load_landmarks_json,
    photo_to_aligned,
    select_faces,
)
from pipeline.alignment.preview import aligned_preview, photo_preview
from pipeline.errors import UsageError
from pipeline.photo import load_photo

NAME = "landmarks"
HELP = "show the faces and the 68 landmarks (indices, named anchors) found in a photo"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", type=Path, help="the photo (JPEG, PNG, TIFF, ...)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="preview PNG (default: PHOTO_STEM.landmarks.png in the current directory); "
        "aligned crops go to OUTPUT_STEM_aligned_<i>.png",
    )
    parser.add_argument(
        "--landmarks",
        type=Path,
        default=None,
        metavar="JSON",
        help="use these 68 landmarks instead of detecting (a list of 68 [x, y] pairs, or "
        '{"faces": [...]})',
    )
    parser.add_argument(
        "--size",
        type=_positive,
        default=1024,
        metavar="N",
        help="side of the aligned crops (default 1024: FFHQ)",
    )
    parser.add_argument(
        "--transform-size",
        type=_positive,
        default=AlignConfig.transform_size,
        metavar="N",
        help="supersampled warp size (default 4096, as FFHQ; smaller is faster)",
    )
    parser.add_argument(
        "--face",
        default="all",
        help="faces whose aligned crop to write: 'all' (default), 'largest' or an index",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the faces (box, score, landmarks, aligned landmarks, transform) as JSON",
    )
    parser.add_argument(
        "--upsample",
        type=int,
        default=AlignConfig.upsample,
        help="dlib detector upsampling (default 1; 2 finds smaller faces, slower)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=AlignConfig.detect_max_side,
        metavar="N",
        help="detect on a copy at most N pixels long (default 1600; 0: full size; larger "
        "finds smaller faces in big photos but is slower)",
    )


def _write_atomic(path: Path, write) -> None:
    """``write(tmp)`` through ``atomic_write`` (no half-written files; the user's umask)."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"output directory {directory} does not exist: create it first")
    with atomic_write(path) as tmp:
        write(tmp)


def _save_png(image: Image.Image, path: Path) -> None:
    # Fast zlib level: previews are big and looked at once.
    _write_atomic(path, lambda tmp: image.save(tmp, format="PNG", compress_level=1))


def run(args: argparse.Namespace) -> int:
    if args.upsample not in range(0, 5):
        raise UsageError(f"--upsample must be 0-4, got {args.upsample}")
    if args.max_side != 0 and args.max_side < 64:
        raise UsageError(f"--max-side must be 0 (full size) or at least 64, got {args.max_side}")
    output = args.output or Path(f"{args.photo.stem}.landmarks.png")
    if output.suffix.lower() != ".png":
        raise UsageError(f"--output {output} must be a .png file")
    config = AlignConfig(
        output_size=args.size,
        transform_size=args.transform_size,
        upsample=args.upsample,
        detect_max_side=args.max_side or None,
    )
    photo = load_photo(args.photo)
    override = load_landmarks_json(args.landmarks) if args.landmarks else None
    faces = find_faces(photo, config, override)
    chosen = select_faces(faces, args.face)
    say = (lambda *_: None) if args.quiet else print

    say(f"{photo.path}: {photo.size[0]}x{photo.size[1]} {photo.mode}, {len(faces)} face(s)")
    say(f"{'face':>4}  {'box (left, top, right, bottom)':<34} {'score':>8}  {'crop px':>7}")
    for face in faces:
        box = "(" + ", ".join(f"{v:.0f}" for v in face.box) + ")"
        score = "override" if face.source == "override" else f"{face.score:.3f}"
        say(f"{face.index:>4}  {box:<34} {score:>8}  {face.size:>7.0f}")

    _save_png(photo_preview(photo.rgb, faces), output)
    say(f"wrote {output}")
    records = []
    for face in faces:
        record = {
            "index": face.index,
            "box": [float(v) for v in face.box],
            "score": None if face.source == "override" else float(face.score),
            "source": face.source,
            "landmarks": face.landmarks.tolist(),
        }
        if any(face is c for c in chosen):
            warning = face_warning(face, args.size)
            if warning:
                say(f"warning: {warning}")
            aligned, transform = align_face(photo, face.landmarks, config)
            points = photo_to_aligned(face.landmarks, transform)  # [68, 2]
            path = output.with_name(f"{output.stem}_aligned_{face.index}.png")
            _save_png(aligned_preview(aligned, points), path)
            say(f"wrote {path}")
            record["aligned_landmarks"] = np.round(points, 4).tolist()
            record["transform"] = transform.to_dict()
        records.append(record)
    if args.json:
        data = {"photo": str(photo.path), "photo_size": list(photo.size), "faces": records}
        text = json.dumps(data, indent=1) + "\n"
        _write_atomic(args.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        say(f"wrote {args.json}")
    return 0
