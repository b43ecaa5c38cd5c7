"""The one hint ``trainwire run`` prints when it recognises no progress in the output.

Without it a user whose script prints nothing trainwire can read believes the job's
progress is reported, while the platform shows none. After :data:`HINT_AFTER_SECONDS` or
:data:`HINT_AFTER_LINES` lines of output (whichever first) without one recognised step,
one line on stderr names the three ways to report progress. Never twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

__all__ = ["HINT", "HINT_AFTER_LINES", "HINT_AFTER_SECONDS", "ProgressHint"]

log = logging.getLogger("trainwire")

HINT_AFTER_SECONDS = 60.0
HINT_AFTER_LINES = 200
HINT = (
    "trainwire: no training progress recognised in the command's output so far, so the "
    "platform shows none: print lines `trainwire step=N total=T`, pass --total-steps N when "
    "the output counts steps without a total, or report from the script with the SDK "
    "(trainwire.init(), run.progress(step))"
)


class ProgressHint:
    """Says :data:`HINT` once, unless progress was recognised first.

    :param quiet: asked just before saying it; True keeps it unsaid (the command reports
        through the SDK itself).
    """

    def __init__(
        self,
        quiet: Callable[[], bool],
        *,
        seconds: float = HINT_AFTER_SECONDS,
        lines: int = HINT_AFTER_LINES,
    ) -> None:
        self._quiet = quiet
        self._seconds = seconds
        self._limit = lines
        self._lines = 0
        self._settled = False  # said, or no longer needed
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        """Start the clock (the command has started)."""
        self._timer = threading.Timer(self._seconds, self._say)
        self._timer.daemon = True
        self._timer.start()

    def output(self, lines: int) -> None:
        """``lines`` more lines of output were seen."""
        if self._settled or not lines:
            return
        with self._lock:
            self._lines += lines
            due = self._lines >= self._limit
        if due:
            self._say()

    def progress(self) -> None:
        """Progress was recognised: no hint from now on."""
        self._settled = True

    def stop(self) -> None:
        """The command ended: no hint any more."""
        self._settled = True
        if self._timer is not None:
            self._timer.cancel()

    def _say(self) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
        if not self._quiet():
            log.warning(HINT)
