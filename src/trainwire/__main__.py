"""``python -m trainwire`` is the ``trainwire`` command."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    main(prog_name="trainwire")
