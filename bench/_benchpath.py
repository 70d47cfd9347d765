"""Keep bench/ off the import path once a bench script has started.

Python puts a script's own folder first on ``sys.path``; bench/inversion.py is named like
the ``inversion`` package, so any bench script importing our packages would import it
instead. Every bench script imports this module first (it is found because bench/ is on
the path at that moment) and it removes the folder.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
