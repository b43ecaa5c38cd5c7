"""How much of a flood of output ``trainwire run`` reads for progress.

The progress reader must not hold back the copying of the command's output, nor take the
CPU from the training. Each stream's reader has a budget of :data:`SHARE` of the wall
time (a bucket refilled as time passes, holding at most :data:`BURST` seconds) and
measures what reading costs per character. A read whose predicted cost the budget cannot
pay is a flood: of those, only one every :data:`INTERVAL` seconds is read, and only its
newest whole lines (at most :data:`NEWEST` characters). Progress is sent newest first
anyway (``--max-rate``, 10 a second by default); what a flood costs is the steps in between.
"""

from __future__ import annotations

import re
import time
from typing import Callable

__all__ = ["BURST", "INTERVAL", "NEWEST", "SHARE", "ReadingBudget"]

#: Share of the wall time the progress reader of one stream may take, on average.
SHARE = 0.2
#: Seconds of reading the budget can hold (a burst of output after a quiet while).
BURST = 0.1
#: In a flood, the newest characters of a read that are read for progress.
NEWEST = 4096
#: In a flood, seconds between two reads read for progress (above ``--max-rate``'s 10/s).
INTERVAL = 0.05
#: What a character costs before anything was measured (a slow reader: 1 MB/s).
_FIRST_COST = 1e-6
#: Weight of the newest measurement in the cost per character.
_SMOOTHING = 0.2
_LINE_END = re.compile(r"[\r\n]")


class ReadingBudget:
    """Decides, read by read, what of the output the progress reader reads.

    :param clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.flooded = False
        self._clock = clock
        self._cost = _FIRST_COST  # seconds per character of a whole read
        self._credit = BURST
        self._last = clock()
        self._last_part = -INTERVAL
        self._unread = ""  # the newest output not read, kept for the end

    def part(self, text: str) -> str:
        """``text`` whole, or in a flood nothing or its newest whole lines after a line end
        (which ends the line the reader held back from before the gap)."""
        now = self._clock()
        self._credit = min(BURST, self._credit + SHARE * (now - self._last))
        self._last = now
        self.flooded = len(text) * self._cost > self._credit
        if not self.flooded:
            self._unread = ""
            return text
        if now - self._last_part < INTERVAL:
            self._unread = (self._unread + text)[-NEWEST:]
            return ""
        self._last_part, self._unread = now, ""
        return _newest_lines(text)

    def rest(self) -> str:
        """At the end of the output: the newest lines a flood left unread (the last state
        of a bar), in the form :meth:`part` gives."""
        text, self._unread = self._unread, ""
        return _newest_lines(text)

    def spent(self, text: str, whole: str, seconds: float) -> None:
        """Reading ``text`` (the part of ``whole`` that :meth:`part` gave) took ``seconds``."""
        self._credit -= seconds
        if text is whole and len(text) >= 512:  # shorter reads: mostly fixed costs
            self._cost += _SMOOTHING * (seconds / len(text) - self._cost)


def _newest_lines(text: str) -> str:
    line_end = _LINE_END.search(text, max(0, len(text) - NEWEST))
    return "\n" + text[line_end.end() :] if line_end else ""
