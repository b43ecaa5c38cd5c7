"""``python -m benchmarks``: run every benchmark and regenerate docs/benchmarks.md."""

from __future__ import annotations

import sys

from benchmarks.run import main

if __name__ == "__main__":
    sys.exit(main())
