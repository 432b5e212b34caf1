"""``python -m xai_core``: see :mod:`xai_core.cli.main`."""

import sys

from xai_core.cli.main import main

sys.exit(main())
