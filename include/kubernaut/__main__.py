"""``python -m kubernaut``: the ``kubernaut`` command without the console script on PATH."""

import sys

from kubernaut.cli import main

sys.exit(main())
