"""Progress read from what a training program prints.

``trainwire run`` passes the child's output through unchanged and, on the side, feeds it
to a :class:`LineParser` per stream. Recognised lines become :class:`Reading` objects; a
shared :class:`ProgressTracker` turns them into the ``(step, percentage)`` pairs that are
sent as ``training_ing``. The shapes of line it knows are in
:mod:`trainwire._tools._progress_shapes` (tqdm, Lightning's tqdm and rich bars, Keras,
XGBoost/LightGBM evaluation lines, ``N/M`` counters in log lines, the plain
``trainwire step=N total=T`` line); ANSI escapes and control characters are removed and
``\\r``-separated updates count as lines.

Which tqdm bar counts (per stream): bars described as an evaluation (``Validation``,
``Evaluating``, ``Testing``, ``Predicting``, ...) or as data work never do. Of the others,
the first one seen is the training bar. A bar nested below it (tqdm draws it a line lower)
that appears before the first one moved, with a larger total, is its inner loop: the
first bar then counts epochs and the inner one steps (``epoch x inner total + n``). Any
other bar (Hugging Face's evaluation bar, which has no description) is not training. The
first bar starting again (a new epoch of a plain loop) continues the step count.

Interface for the supervisor: ``LineParser.feed(text)`` (or ``feed_bytes(data)``, which
decodes UTF-8 split anywhere) returns the readings of complete lines; ``tail()`` the
reading of the unfinished last line, without changing what the parser knows;
``ProgressTracker.update(reading)`` the ``(step, percentage)`` to send, or None;
``ProgressTracker.knows_total`` tells whether the percentage comes from a known total
(False: the steps are real, the percentage is held at its last value, 0 at first).
"""

from __future__ import annotations

import codecs
import enum
import re
from dataclasses import dataclass, field

from ._progress_shapes import CURSOR_UP, Form, Shape, is_evaluation, may_hold_progress, shape_of

__all__ = ["LineParser", "ProgressTracker", "Reading", "clean", "parse_line"]

#: A line longer than this without ``\r``/``\n`` is cut (a program printing without newlines).
MAX_LINE = 8192
#: Steps above this are not reported (far below the protocol's 2**63 - 1).
MAX_STEP = 2**53

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_SEGMENT = re.compile(r"[\r\n]")
_DIGITS = re.compile(r"\d+")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass  # not frozen: a frozen dataclass takes 7 times as long to make, per frame
class Reading:
    """One progress state seen in one line (read-only by convention).

    ``n`` of ``total`` in the current bar; ``epoch`` (from 0) and ``epochs`` when the
    format tells them; ``absolute`` for a step that is already global (the plain
    ``trainwire step=...`` line, boosting rounds, ``step 40/1000``), which may carry its
    own ``percentage``; ``coarse`` for a count of epochs (``Epoch 3/10`` and no finer
    counter), used only until a finer reading is seen.
    """

    n: int
    total: int | None
    epoch: int | None = None
    epochs: int | None = None
    absolute: bool = False
    percentage: float | None = None
    bar: str = ""
    coarse: bool = False


def clean(text: str) -> str:
    """``text`` without ANSI escape sequences, backspaces and other control characters
    (``\t`` kept)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return _CONTROLS.sub("", text)


def parse_line(line: str, *, epoch: int | None = None, epochs: int | None = None) -> Reading | None:
    """The progress in one cleaned line taken alone, or None (no stream state: every
    tqdm bar counts). ``epoch``/``epochs``: the Keras epoch (from 0) and epoch count of an
    earlier ``Epoch 2/10`` line, for Keras step lines."""
    shape = shape_of(line)
    if shape is None:
        return None
    if shape.form is Form.BAR:
        return Reading(shape.n, shape.total, bar=_bar_key(shape.desc))
    if shape.form is Form.KERAS:
        return Reading(shape.n, shape.total, epoch=epoch, epochs=epochs, bar="keras")
    if shape.form is Form.EPOCH_BAR:
        return Reading(shape.n, shape.total, shape.epoch, bar="Epoch")
    return _simple(shape, None)


def _bar_key(desc: str) -> str:
    # Numbers in a description ("epoch 3") would split one bar into many: key without them.
    return _DIGITS.sub("#", desc) if desc else desc


def _simple(shape: Shape, per_epoch: int | None) -> Reading | None:
    """The reading of a shape that needs no stream state (``per_epoch``: the step count of
    an epoch seen in earlier counters, for an epoch end)."""
    form = shape.form
    if form is Form.GLOBAL:
        return Reading(shape.n, shape.total, absolute=True, percentage=shape.percentage)
    if form is Form.EPOCH_COUNTER:
        return Reading(shape.n, shape.total, shape.epoch, shape.epochs, bar=shape.desc)
    if form is Form.EPOCH_COUNT:
        return Reading(shape.n, shape.total, coarse=True)
    if form is Form.EPOCH_END and per_epoch:
        return Reading(per_epoch, per_epoch, epoch=shape.epoch)
    return None


class _Role(enum.Enum):
    """What a tqdm bar of one stream is, decided when it is first seen."""

    TRAINING = "training"  # the first bar: steps (or epochs, once it has an inner bar)
    INNER = "inner"  # nested below the training bar before that moved: the steps
    OTHER = "other"  # evaluation, or any other bar


@dataclass
class _Bars:
    """The tqdm bars of one stream and their roles (see the module docstring)."""

    roles: dict[tuple[str, int], _Role] = field(default_factory=dict)
    first: tuple[str, int] | None = None
    first_n: int = 0
    first_total: int = 0
    inner: tuple[str, int] | None = None
    #: inner loops finished since the first bar last moved (an epoch is one of them)
    finished: int = 0

    def reading(self, shape: Shape, *, complete: bool) -> Reading | None:
        """The reading of one bar frame; ``complete``: the frame's line has ended (only
        then may a new bar get a role, or the roles change)."""
        key = (_bar_key(shape.desc), shape.total or 0)
        role = self.roles.get(key)
        if role is None:
            if not complete:
                return None
            role = self.roles[key] = self._role_of_new(key, shape)
        if role is _Role.OTHER:
            return None
        if role is _Role.INNER:
            if complete and shape.n == shape.total:
                self.finished += 1
            return Reading(shape.n, shape.total, epoch=self.first_n, epochs=self.first_total)
        if complete and self.inner is not None and shape.n > self.first_n:
            if self.finished == 0:  # it moved with no inner loop done: that was no epoch
                self.roles[self.inner], self.inner = _Role.OTHER, None
            self.finished = 0
        if complete:
            self.first_n = shape.n
        if self.inner is not None:
            return Reading(0, self.inner[1], epoch=shape.n, epochs=key[1])
        return Reading(shape.n, shape.total, bar=key[0])

    def _role_of_new(self, key: tuple[str, int], shape: Shape) -> _Role:
        if is_evaluation(shape.desc):
            return _Role.OTHER
        if self.first is None:
            self.first, self.first_n, self.first_total = key, shape.n, key[1]
            return _Role.TRAINING
        # An inner loop of epochs has more steps than the outer bar has epochs; an
        # evaluation at the start (Hugging Face's eval_on_start) has fewer than training.
        nested = shape.position > 0 and self.first_n == 0 and key[1] > self.first_total
        if self.inner is None and nested:
            self.inner = key
            return _Role.INNER
        return _Role.OTHER


class LineParser:
    """Splits one output stream into lines (``\\r`` or ``\\n``) and parses each.

    Keeps the state of its stream: the Keras epoch header, the step count of an epoch
    seen in counters, the roles of tqdm bars. Not thread-safe: one per stream.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._epoch: int | None = None
        self._epochs: int | None = None
        self._per_epoch: int | None = None
        #: 0 or 1: what the first "Epoch N" bar of the stream counted from
        self._epoch_base: int | None = None
        self._bars = _Bars()

    def feed_bytes(self, data: bytes) -> list[Reading]:
        """:meth:`feed` for raw output: UTF-8 (split anywhere), invalid bytes replaced."""
        return self.feed(self._decoder.decode(data))

    def feed(self, text: str) -> list[Reading]:
        """Readings from the complete lines of ``text`` (plus what was held back before)."""
        data = self._pending + text
        if not may_hold_progress(data):
            cut = max(data.rfind("\n"), data.rfind("\r"))
            self._pending = data[cut + 1 :][-MAX_LINE:]
            return []
        parts = _SEGMENT.split(data)
        self._pending = parts.pop()[-MAX_LINE:]
        readings = []
        last = len(parts) - 1
        for index, part in enumerate(parts):
            if not part or not may_hold_progress(part):
                continue
            if index < last and _same_bar(part, parts[index + 1]):
                continue  # a frame drawn over by the next one: only the newest counts
            reading = self._line(part, complete=True)
            if reading is not None:
                readings.append(reading)
        return readings

    def tail(self) -> Reading | None:
        """The reading of the unfinished last line, if it parses (tqdm ends a line with its
        next ``\\r``, so the newest bar state is usually still pending). Changes nothing:
        the line is read again once it is complete."""
        if not self._pending or not may_hold_progress(self._pending):
            return None
        return self._line(self._pending, complete=False)

    def _line(self, raw: str, *, complete: bool) -> Reading | None:
        line = clean(raw)
        shape = shape_of(line, raw) if line.strip() else None
        if shape is None:
            return None
        form = shape.form
        if not complete and not _redrawn(shape, line):
            return None
        if form is Form.BAR:
            return self._bars.reading(shape, complete=complete)
        if form is Form.KERAS:
            return Reading(shape.n, shape.total, self._epoch, self._epochs, bar="keras")
        if form is Form.EPOCH_BAR:
            return self._epoch_bar(shape, complete=complete)
        if complete and form is Form.EPOCH_HEADER:
            self._epoch, self._epochs = shape.n - 1, shape.total
        if form is Form.EPOCH_COUNTER and shape.desc == "":
            self._per_epoch = shape.total
        return _simple(shape, self._per_epoch)

    def _epoch_bar(self, shape: Shape, *, complete: bool) -> Reading | None:
        """A bar described ``Epoch N`` or ``Epoch N/E``: Lightning counts from 0 (``Epoch 0``
        first), a user's loop often from 1 (``Epoch 1/10`` first)."""
        if self._epoch_base is None:
            if not complete or shape.epoch is None:
                return None
            self._epoch_base = 1 if shape.epoch == 1 else 0
        base = self._epoch_base
        epoch = (shape.epoch or 0) - base
        if epoch < 0:
            return None
        epochs = shape.epochs + 1 - base if shape.epochs is not None else None
        return Reading(shape.n, shape.total, epoch, epochs, bar="Epoch")


def _same_bar(frame: str, following: str) -> bool:
    """Are two raw lines frames of the same tqdm bar (description, total and position)?
    A cheap test on the text, so that a fast bar costs one parse per read, not per frame."""
    cut = frame.find("%|")
    if cut < 3 or following.find("%|") != cut or frame[: cut - 3] != following[: cut - 3]:
        return False
    slash, other = frame.find("/", cut), following.find("/", cut)
    if slash < 0 or other < 0:
        return False
    end, other_end = frame.find(" ", slash), following.find(" ", other)
    return frame[slash:end] == following[other:other_end] and frame.endswith(
        CURSOR_UP
    ) == following.endswith(CURSOR_UP)


def _redrawn(shape: Shape, line: str) -> bool:
    """May ``shape``, seen in an unfinished line, be read already? Only a bar drawn over
    in place, cut after its counter (a log line ends with its newline; a cut "12/12" of
    "12/120" must not count)."""
    if shape.form is Form.KERAS:  # its counter starts the line, its bar follows it
        return True
    drawn = shape.form in (Form.BAR, Form.EPOCH_BAR) or (
        shape.form is Form.EPOCH_COUNTER and shape.desc == "Epoch"
    )
    return drawn and not line.rstrip()[-1:].isdigit()


@dataclass
class _Pass:
    """A bar without an epoch: its last ``n`` and the steps of its earlier passes."""

    n: int
    offset: int = 0


class ProgressTracker:
    """Turns readings into ``(step, percentage)`` pairs; steps and percentages never go
    down, percentages stay within 0..100.

    - a reading with an epoch: step = epoch x steps per epoch + n; the percentage covers
      all epochs when their count is known;
    - a bar without one that starts again (a new epoch of a user's loop) continues the step
      count from where the previous pass ended; its own percentage counts only for its
      first pass;
    - a global step (plain line, boosting round, ``step 40/1000``) is used as is;
    - a count of epochs is used only until a finer reading comes;
    - with ``total_steps`` (``trainwire run --total-steps``) the percentage is step/total,
      except for the plain line's own ``total``/``percentage``.

    Without a known total the percentage is held at its last value (0 at first).
    """

    def __init__(self, total_steps: int | None = None) -> None:
        self.total_steps = total_steps
        #: True once a percentage came from a known total.
        self.knows_total = False
        self._passes: dict[tuple[str, int], _Pass] = {}
        self._fine = False
        self._step = -1
        self._percentage = 0.0

    def update(self, reading: Reading) -> tuple[int, float] | None:
        """The ``(step, percentage)`` to report for ``reading``, or None."""
        found = self._compute(reading)
        if found is None:
            return None
        step, percentage = found
        if not 0 <= step <= MAX_STEP or step < self._step:
            return None
        if percentage is not None and percentage == percentage:  # not NaN
            self.knows_total = True
            percentage = max(self._percentage, min(100.0, percentage))
        else:
            percentage = self._percentage
        if step == self._step and percentage <= self._percentage:
            return None
        self._step, self._percentage = step, percentage
        return step, percentage

    def _compute(self, reading: Reading) -> tuple[int, float | None] | None:
        if reading.coarse:
            if self._fine or not reading.total:
                return None
            return reading.n, reading.n * 100.0 / reading.total
        self._fine = True
        if reading.absolute:
            if reading.percentage is not None:
                return reading.n, reading.percentage
            return reading.n, _share(reading.n, reading.total or self.total_steps)
        total = reading.total
        if not total:
            return None
        if reading.epoch is not None:
            step = reading.epoch * total + reading.n
            whole = reading.epochs * total if reading.epochs else None
            return step, _share(step, self.total_steps or whole)
        return self._bar_pass(reading, total)

    def _bar_pass(self, reading: Reading, total: int) -> tuple[int, float | None]:
        key = (reading.bar, total)
        bar = self._passes.get(key)
        if bar is None:
            bar = self._passes[key] = _Pass(reading.n)
        elif reading.n < bar.n:  # the bar started again: its last pass went to its total
            bar.offset += total
        bar.n = reading.n
        step = bar.offset + reading.n
        if self.total_steps:
            return step, _share(step, self.total_steps)
        return step, (_share(step, total) if bar.offset == 0 else None)


def _share(step: int, total: int | None) -> float | None:
    """``step`` as a percentage of ``total``; None when the total is unknown."""
    return step * 100.0 / total if total else None
