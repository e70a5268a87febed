"""``python -m shufflelib.train``: see :mod:`shufflelib.train.cli`."""

import sys

from .cli import main

sys.exit(main())
