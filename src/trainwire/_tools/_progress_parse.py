"""Progress read from what a training program prints: tqdm, Keras, Lightning, or a plain line.

``trainwire run`` passes the child's output through unchanged and, on the side, feeds it
to a :class:`LineParser` per stream. Recognised lines become :class:`Reading` objects; a
shared :class:`ProgressTracker` turns them into the ``(step, percentage)`` pairs that are
sent as ``training_ing``. Recognised formats (after ANSI colours and backspaces are
removed; ``\\r``-separated updates count as lines):

- tqdm: ``Desc:  45%|████▌     | 90/200 [00:01<00:02, 45.00it/s]``;
- Lightning (tqdm bar): ``Epoch 3:  45%|████▌     | 9/20 [...]`` (epoch counted from 0);
  its ``Validation``/``Sanity Checking``/``Testing``/``Predicting`` bars are ignored;
- Lightning (rich bar): ``Epoch 3/9  ━━━━━━━━━━ 9/20 0:00:01 • ...`` (3 of 0..9);
- Keras 3: ``Epoch 2/10`` on its own line, then ``12/100 ━━━━━━━━━━ 1s 10ms/step - loss: ...``;
  Keras 2: ``12/100 [==>.........] - ETA: 1s - loss: ...``;
- the plain line any language can print: ``trainwire step=12 total=400`` or
  ``trainwire step=12 percentage=3.5`` (``step`` is the global step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LineParser", "ProgressTracker", "Reading", "clean", "parse_line"]

#: A line longer than this without ``\r``/``\n`` is cut (a program printing without newlines).
MAX_LINE = 8192

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_SEGMENT = re.compile(r"[\r\n]")

_NUMBER = r"\d+(?:\.\d+)?[kMGTPEZY]?"
_TQDM = re.compile(
    r"(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<n>" + _NUMBER + r")/(?P<total>" + _NUMBER + r")(?![\w/])"
)
_RICH = re.compile(
    r"^\s*Epoch\s+(?P<epoch>\d+)/(?P<last>\d+)\s+[━╸╺╾╼─\s]+?\s(?P<n>\d+)/(?P<total>\d+)\b"
)
_KERAS3 = re.compile(r"^\s*(?P<n>\d+)/(?P<total>\d+)\s+[━╸╺]")
_KERAS2 = re.compile(r"^\s*(?P<n>\d+)/(?P<total>\d+)\s+\[[=>.]*\]")
_KERAS_EPOCH = re.compile(r"^\s*Epoch\s+(?P<epoch>\d+)/(?P<epochs>\d+)\s*$")
_LIGHTNING_EPOCH = re.compile(r"^Epoch\s+(?P<epoch>\d+)\b")
_PLAIN = re.compile(r"^\s*trainwire\s+(?P<pairs>\w+=\S+(?:\s+\w+=\S+)*)\s*$")
#: Bars that are not training steps (Lightning's evaluation loops and the like).
_IGNORED_BARS = re.compile(
    r"^(Validation|Validating|Sanity Checking|Testing|Test|Predicting|Predict|Eval)", re.I
)
_SCALE = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}


@dataclass(frozen=True)
class Reading:
    """One progress state seen in one line.

    ``n`` of ``total`` in the current bar; ``epoch`` (from 0) and ``epochs`` when the
    format tells them; ``absolute`` for the plain ``trainwire step=...`` line, whose step
    is already global and may carry its own ``percentage``.
    """

    n: int
    total: int | None
    epoch: int | None = None
    epochs: int | None = None
    absolute: bool = False
    percentage: float | None = None
    bar: str = ""


def clean(text: str) -> str:
    """``text`` without ANSI escape sequences and backspaces."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return text.replace("\b", "")


def _number(text: str) -> float | None:
    scale = _SCALE.get(text[-1:], 1.0)
    if scale != 1.0:
        text = text[:-1]
    try:
        return float(text) * scale
    except ValueError:
        return None


def _plain(match: re.Match[str]) -> Reading | None:
    values = dict(pair.split("=", 1) for pair in match.group("pairs").split())
    try:
        step = int(values["step"])
        total = int(values["total"]) if "total" in values else None
        percentage = float(values["percentage"]) if "percentage" in values else None
    except (KeyError, ValueError):
        return None
    if step < 0 or (total is not None and total <= 0):
        return None
    if percentage is not None and not 0.0 <= percentage <= 100.0:
        return None
    return Reading(step, total, absolute=True, percentage=percentage)


def _tqdm(line: str, match: re.Match[str]) -> Reading | None:
    n, total = _number(match.group("n")), _number(match.group("total"))
    if n is None or total is None or total <= 0 or n > total:
        return None
    desc = line[: match.start()].strip().rstrip(":").strip()
    if _IGNORED_BARS.match(desc):
        return None
    epoch = _LIGHTNING_EPOCH.match(desc)
    # Numbers in a description ("epoch 3") would split one bar into many: key without them.
    bar = re.sub(r"\d+", "#", desc)
    return Reading(int(n), int(total), epoch=int(epoch.group("epoch")) if epoch else None, bar=bar)


def parse_line(line: str, *, epoch: int | None = None, epochs: int | None = None) -> Reading | None:
    """The progress in one cleaned line, or None.

    ``epoch``/``epochs`` are the Keras epoch (from 0) and epoch count seen in an earlier
    ``Epoch 2/10`` line; they apply to Keras step lines only.
    """
    if "trainwire" in line:
        plain = _PLAIN.match(line)
        if plain:
            return _plain(plain)
    if "%|" in line:
        tqdm = _TQDM.search(line)
        if tqdm:
            return _tqdm(line, tqdm)
    if "/" not in line:
        return None
    rich = _RICH.match(line)
    if rich:
        n, total, last = int(rich.group("n")), int(rich.group("total")), int(rich.group("last"))
        if total <= 0 or n > total:
            return None
        return Reading(n, total, epoch=int(rich.group("epoch")), epochs=last + 1, bar="Epoch")
    keras = _KERAS3.match(line) or _KERAS2.match(line)
    if keras:
        n, total = int(keras.group("n")), int(keras.group("total"))
        if total <= 0 or n > total:
            return None
        return Reading(n, total, epoch=epoch, epochs=epochs, bar="keras")
    return None


def _may_hold_progress(text: str) -> bool:
    """A cheap test: can ``text`` contain a line any parser recognises? (Most log lines
    cannot, and a chatty program should not pay for regular expressions.)"""
    return (
        "%|" in text
        or "trainwire" in text
        or "Epoch" in text
        or "━" in text
        or ("/" in text and "[" in text)
    )


class LineParser:
    """Splits one output stream into lines (``\\r`` or ``\\n``) and parses each.

    Keeps the Keras epoch header state of its stream. Not thread-safe: one per stream.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._epoch: int | None = None
        self._epochs: int | None = None

    def feed(self, text: str) -> list[Reading]:
        """Readings from the complete lines of ``text`` (plus what was held back before)."""
        data = self._pending + text
        if not _may_hold_progress(data):
            cut = max(data.rfind("\n"), data.rfind("\r"))
            self._pending = data[cut + 1 :][-MAX_LINE:]
            return []
        parts = _SEGMENT.split(data)
        self._pending = parts.pop()[-MAX_LINE:]
        readings = []
        for part in parts:
            if not _may_hold_progress(part):
                continue
            reading = self._line(part)
            if reading is not None:
                readings.append(reading)
        return readings

    def tail(self) -> Reading | None:
        """The reading of the unfinished last line, if it parses (tqdm ends a line with its
        next ``\\r``, so the newest bar state is usually still pending)."""
        if not self._pending or not _may_hold_progress(self._pending):
            return None
        return self._line(self._pending, header=False)

    def _line(self, raw: str, *, header: bool = True) -> Reading | None:
        line = clean(raw)
        if not line.strip():
            return None
        if header and line.lstrip().startswith("Epoch"):
            keras_epoch = _KERAS_EPOCH.match(line)
            if keras_epoch:
                self._epoch = int(keras_epoch.group("epoch")) - 1
                self._epochs = int(keras_epoch.group("epochs"))
                return None
        return parse_line(line, epoch=self._epoch, epochs=self._epochs)


@dataclass
class _Bar:
    n: int
    total: int
    offset: int = 0


class ProgressTracker:
    """Turns readings into increasing ``(step, percentage)`` pairs.

    - a bar with an epoch: step = epoch x steps per epoch + n; the percentage covers all
      epochs when their count is known, else ``total_steps``, else the current epoch;
    - a bar without one that starts again (a new epoch of a user's loop) continues the step
      count from where the previous pass ended;
    - the plain line's step is used as is;
    - with ``total_steps`` (``trainwire run --total-steps``) the percentage is step/total.

    A reading that would move the step backwards (an evaluation bar, an outer loop's bar)
    gives nothing: the platform sees steps only increase.
    """

    def __init__(self, total_steps: int | None = None) -> None:
        self.total_steps = total_steps
        self._bars: dict[tuple[str, int], _Bar] = {}
        self._step = -1
        self._percentage = -1.0

    def update(self, reading: Reading) -> tuple[int, float] | None:
        """The ``(step, percentage)`` to report for ``reading``, or None."""
        found = self._compute(reading)
        if found is None:
            return None
        step, percentage = found
        percentage = min(100.0, max(0.0, percentage))
        if step < self._step or (step == self._step and percentage <= self._percentage):
            return None
        self._step, self._percentage = step, percentage
        return step, percentage

    def _compute(self, reading: Reading) -> tuple[int, float] | None:
        total_steps = self.total_steps
        if reading.absolute:
            step = reading.n
            if reading.percentage is not None:
                return step, reading.percentage
            total = reading.total or total_steps
            return (step, step * 100.0 / total) if total else None
        total = reading.total
        if not total:
            return None
        n = reading.n
        if reading.epoch is not None:
            step = reading.epoch * total + n
            if reading.epochs:
                return step, step * 100.0 / (reading.epochs * total)
            if total_steps:
                return step, step * 100.0 / total_steps
            return step, n * 100.0 / total
        key = (reading.bar, total)
        bar = self._bars.get(key)
        if bar is None:
            bar = self._bars[key] = _Bar(n, total)
        elif n < bar.n:  # the bar started again: count on from where the last pass ended
            bar.offset += bar.n
        bar.n = n
        step = bar.offset + n
        if total_steps:
            return step, step * 100.0 / total_steps
        return step, n * 100.0 / total
