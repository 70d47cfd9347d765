"""``dragpipe edit SPEC``: pick points with the mouse in a local web page (``pipeline.editor``).

A SPEC that does not exist is created for one photo: ``--photo PATH --generator CKPT``.
With an existing SPEC, ``--photo`` names the photo to open (its id); a path to an image the
spec does not have adds it as a new photo first.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pipeline.commands import _shared
from pipeline.errors import UsageError

NAME = "edit"
HELP = "edit a spec in the browser: choose a face, click handles and targets, drag, save"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _shared.add_spec_argument(parser)
    parser.add_argument(
        "--photo",
        metavar="ID|PATH",
        help="the photo to open (its id in the spec); a new SPEC needs a photo file here",
    )
    parser.add_argument(
        "--generator", metavar="CKPT", help="the generator checkpoint of a new SPEC"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)"
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="print the URL, do not open a browser"
    )
    _shared.add_store_arguments(parser)
    parser.add_argument(
        "--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, mps"
    )


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it is below it, else absolute."""
    path = path.resolve()
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def photo_id_of(path: Path, taken: set[str]) -> str:
    """A file-name-safe photo id from an image's name, unique among ``taken``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._") or "photo"
    if not stem[0].isalnum():
        stem = "p" + stem
    stem = stem[:90]
    candidate, n = stem, 2
    while candidate in taken:
        candidate, n = f"{stem}-{n}", n + 1
    return candidate


def _image(value: str | None, what: str) -> Path:
    if not value:
        raise UsageError(f"{what}: give the photo file with --photo PATH")
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(f"--photo {value}: no such file; give an image file (JPEG, PNG, ...)")
    return path


def prepare_spec(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The spec to edit (created or extended as the options say) and the photo to open."""
    from draggan.atomic_write import write_bytes_atomic
    from pipeline.editor import spec_text
    from pipeline.spec import load_spec, load_spec_text

    spec_path = Path(args.spec)
    if not spec_path.exists():
        photo = _image(args.photo, f"{spec_path} does not exist; to create it")
        if not args.generator:
            raise UsageError(
                f"{spec_path} does not exist; to create it give --generator CKPT (a StyleGAN2 "
                ".pkl or a dragpipe .safetensors)"
            )
        generator = Path(args.generator).expanduser()
        if not generator.is_file():
            raise UsageError(f"--generator {args.generator}: no such file")
        base = spec_path.resolve().parent
        base.mkdir(parents=True, exist_ok=True)
        ident = photo_id_of(photo, set())
        text = spec_text.new_spec(
            _relative(generator, base), {"id": ident, "path": _relative(photo, base)}
        )
        load_spec_text(text, spec_path)
        write_bytes_atomic(spec_path, text.encode("utf-8"))
        print(f"dragpipe edit: created {spec_path} for photo {ident!r}")
        return spec_path, ident
    if args.generator:
        raise UsageError(f"--generator is for a new spec; {spec_path} exists (edit its generator:)")
    spec = load_spec(spec_path)
    ids = [photo.id for photo in spec.photos]
    if args.photo is None or args.photo in ids:
        return spec_path, args.photo
    path = Path(args.photo).expanduser()
    if not path.is_file():
        raise UsageError(
            f"--photo {args.photo}: {spec_path} has no photo with that id ({', '.join(ids)}) "
            "and no such file exists"
        )
    base = spec_path.resolve().parent
    ident = photo_id_of(path, set(ids))
    text = spec_text.add_photo(
        spec_path.read_text(encoding="utf-8"),
        {"id": ident, "path": _relative(path, base)},
        str(spec_path),
    )
    load_spec_text(text, spec_path)
    write_bytes_atomic(spec_path, text.encode("utf-8"))
    print(f"dragpipe edit: added photo {ident!r} to {spec_path}")
    return spec_path, ident


def run(args: argparse.Namespace) -> int:
    from pipeline.editor.server import EditorServer
    from pipeline.editor.session import EditorSession

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    spec_path, photo = prepare_spec(args)
    session = EditorSession(spec_path, _shared.workdir_of(args, str(spec_path)), args.device)
    try:
        server = EditorServer(session, port=args.port)
    except OSError as exc:
        session.close()
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    url = server.url + (f"&photo={photo}" if photo else "")
    print(f"dragpipe edit: {spec_path} at {url}\n(Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("dragpipe edit: stopped", file=sys.stderr)
    finally:
        server.close()
    return 0
