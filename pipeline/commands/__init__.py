"""CLI subcommands, one module each.

A command module defines ``NAME`` (str), ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int`` (the exit code). ``pipeline.cli`` discovers every module in this
package, so adding a command means adding a module here and nothing else.
"""
