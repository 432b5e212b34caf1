"""``python -m xai_core``: see :mod:`xai_core.cli`."""

import sys

from .cli import main

sys.exit(main())
