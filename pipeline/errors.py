"""User-facing errors of the pipeline package.

``PipelineError`` carries the process exit code the CLI should use (2: bad spec or usage,
1: a photo failed).
"""


class PipelineError(Exception):
    """A one-line, actionable error; ``exit_code`` is what the CLI exits with."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(PipelineError):
    """Bad command-line usage or a bad spec file (exit code 2)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a job, with what a rerun will do (e.g. 'rerun to resume from step 10 of
    the projection'); the CLI prints it and exits 130."""
