"""``python -m benchmarks``: see ``benchmarks.harness`` (``main(argv) -> int`` is the entry point)."""

import sys

from .harness import main

if __name__ == "__main__":
    sys.exit(main())
