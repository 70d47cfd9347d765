"""The ``dragpipe`` command line: global options, subcommand discovery, error handling.

Every subcommand lives in its own module in ``pipeline.commands`` (see that package's
docstring). Errors a user can cause arrive here as one of the packages' error classes and
are printed as one line, never as a traceback; exit codes: 0 ok, 1 some photo failed,
2 bad spec or usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

import pipeline.commands
from draggan.errors import DragganError
from draggan.version import __version__
from inversion.errors import InversionError
from pipeline.errors import PipelineError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our usage code (2) and a one-line message."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"dragpipe: error: {message}\n")


def _command_modules() -> list:
    modules = []
    for info in sorted(pkgutil.iter_modules(pipeline.commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        modules.append(importlib.import_module(f"pipeline.commands.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one subparser per command module."""
    parser = _Parser(
        prog="dragpipe",
        description="Edit real face photos with DragGAN: align, invert (PTI), drag, composite.",
    )
    parser.add_argument("--version", action="version", version=f"dragpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors and results")
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of unexpected errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dragpipe`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("dragpipe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`dragpipe inspect X | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except PipelineError as exc:
        print(f"dragpipe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (DragganError, InversionError) as exc:
        print(f"dragpipe: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # an unexpected bug: one line unless --debug
        if args.debug:
            raise
        print(
            f"dragpipe: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
