"""Keep bench/ off the import path once a bench script has started.

Python puts a script's own folder first on ``sys.path``; bench/inversion.py is named like
the ``inversion`` package, so any bench script importing our packages would import it
instead. Every bench script imports this module first (it is found because bench/ is on
the path at that moment) and it removes the folder. ``sibling(name)`` imports another
bench module (``bench/NAME.py``) by its file path.
"""

import importlib.util
import os
import sys
from types import ModuleType

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def sibling(name: str) -> ModuleType:
    """The bench module ``bench/{name}.py`` (imported once, under ``bench_{name}``)."""
    key = f"bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(_HERE, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
