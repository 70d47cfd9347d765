"""Suite-wide setting: generators built by the tests (and the CLI processes they start) use
the autotuner's default candidates: nothing is measured, nothing is written to the user's
cache folder. The tuner's own tests pass an ``Autotuner`` of their own."""

import os

os.environ["DRAGPIPE_AUTOTUNE"] = "off"
