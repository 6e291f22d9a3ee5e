"""``python -m server`` is the ``strata`` command."""

import sys

from server.cli import main

sys.exit(main())
