"""How fast a running job goes: its recent steps per second and the time it has left.

The store keeps a few recent samples of each running job, ``(received, published, step,
percentage)``, at least :data:`SAMPLE_GAP` seconds apart (the newest one is replaced until
it is that far from the one before, so the newest news always counts). The rate is the
steps made over the time taken across those samples, which is exact whatever the batching:

- **pauses** (an evaluation, a checkpoint): an interval more than :data:`PAUSE_FACTOR`
  times the median one (and at least :data:`PAUSE_MIN` s) is left out, so the rate after a
  pause is the pace of training, not diluted by the wait;
- **a resumed run** whose first step is 5,000: only differences between samples count,
  never the step itself; a step that goes back (a restarted count) starts the samples over;
- **a backlog** delivered at once after ``serve`` was down: an interval lasts at least its
  publisher timestamps' difference less one second (they are whole seconds), so messages
  that arrive faster than they were made do not inflate the rate.

Until :data:`MIN_INTERVALS` intervals covering :data:`MIN_SPAN` s are kept, there is no
rate (None). The time left comes from the percentage's rate over the same intervals (None
while the percentage does not move).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Interval", "Pace", "Sample", "Speed"]

#: Samples kept at least this many seconds apart.
SAMPLE_GAP = 1.0
#: At most this many samples (so the rate covers the last ~30 intervals).
MAX_SAMPLES = 31
#: An interval this many times longer than the median one is a pause...
PAUSE_FACTOR = 4.0
#: ... when it is also at least this many seconds long.
PAUSE_MIN = 2.0
MIN_INTERVALS = 3
MIN_SPAN = 3.0


class Sample(NamedTuple):
    """One progress message as the rate sees it (a tuple: every batch reads back ~30 a job)."""

    at: float
    published: int | None
    step: int
    percentage: float


@dataclass(frozen=True)
class Speed:
    """A running job's recent pace, and the seconds it has left (None: not moving on)."""

    steps_per_second: float
    eta_seconds: float | None


class Interval(NamedTuple):
    """What the rate takes from two consecutive samples (kept beside them: a message
    changes only the newest interval, so the others are not worked out again)."""

    #: The time between the two samples (see :func:`_interval`).
    seconds: float
    received: float
    #: The publisher timestamps' difference (None: a sample had none).
    published: int | None
    steps: int
    percent: float


def _interval(a: Sample, b: Sample) -> Interval:
    """What two samples say. Their time apart is the time received, or the time published
    less the second the whole seconds may hide, when that says longer (a backlog arrives
    faster than it was made)."""
    received = b.at - a.at
    steps, percent = b.step - a.step, b.percentage - a.percentage
    if a.published is None or b.published is None:
        return Interval(received, received, None, steps, percent)
    published = b.published - a.published
    return Interval(max(received, published - 1.0), received, published, steps, percent)


def _median(values: Sequence[float]) -> float:
    """The median (``statistics.median`` costs more than the rest of :meth:`Pace.speed`)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


#: Compact JSON (one encoder: ``json.dumps`` with separators builds one per call).
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _text(sample: Sample) -> str:
    """One sample as the JSON array :meth:`Pace.dumps` writes."""
    at, published, step, percentage = sample
    # The usual sample written directly: the same text as the encoder's (float and int
    # reprs, null), a third of its cost. Anything else (from a stored text) is encoded.
    if (
        type(at) is float
        and type(percentage) is float
        and type(step) is int
        and (published is None or type(published) is int)
        and at - at == 0.0  # finite: JSON writes NaN and Infinity differently
        and percentage - percentage == 0.0
    ):
        shown = "null" if published is None else published
        return f"[{at!r},{shown},{step},{percentage!r}]"
    return _encode(sample)  # a tuple: a JSON array


class _Recent:
    """The paces written lately, by their text: a batch reads back what the one before it
    wrote, so a text seen again is not parsed again. Bounded; shared by every store of the
    process (the text says everything, whichever process wrote it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._paces: dict[str, Pace] = {}
        self._lock = threading.Lock()

    def get(self, text: str) -> Pace | None:
        with self._lock:
            return self._paces.get(text)

    def put(self, text: str, pace: Pace) -> None:
        with self._lock:
            self._paces[text] = pace
            if len(self._paces) > self.size:
                del self._paces[next(iter(self._paces))]  # the oldest written


#: Paces kept by their text: the newest text of each job of a fleet of 1,000 sending in
#: turn, with room to spare. A full pace (31 samples) with its text takes about 16 KB, so
#: at most about 32 MB. A job whose text has left is parsed again (``json.loads``, and
#: its intervals worked out anew: about 6 µs a message for a short pace).
RECENT = 2048
_RECENT = _Recent(RECENT)


@dataclass(frozen=True)
class Pace:
    """A running job's recent samples."""

    samples: tuple[Sample, ...] = ()
    #: Each sample's JSON text (or empty: made when first needed), so that :meth:`dumps`
    #: encodes one new sample, not all of them, per message.
    texts: tuple[str, ...] = field(default=(), compare=False, repr=False)
    #: The intervals between the samples (or empty: worked out when first needed).
    intervals: tuple[Interval, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def loads(cls, text: str | None) -> Pace:
        """The pace stored as :meth:`dumps` wrote it (empty for None or a bad text)."""
        if not text:
            return cls()
        known = _RECENT.get(text)
        if known is not None:
            return known
        try:
            rows = json.loads(text)
            samples = tuple([Sample(float(a), p, int(s), float(c)) for a, p, s, c in rows])
        except (ValueError, TypeError):
            return cls()
        # Each sample's text as written, so that the next dumps() encodes one sample only.
        compact = text.startswith("[[") and text.endswith("]]")
        pieces = text[2:-2].split("],[") if samples and compact else []
        texts = tuple([f"[{piece}]" for piece in pieces]) if len(pieces) == len(samples) else ()
        return cls(samples, texts)

    def dumps(self) -> str:
        """The samples as compact JSON, for a text column."""
        texts = self.texts if len(self.texts) == len(self.samples) else map(_text, self.samples)
        text = "[" + ",".join(texts) + "]"
        _RECENT.put(text, self)
        return text

    def add(self, sample: Sample) -> Pace:
        """The pace with ``sample`` (the job's newest progress) taken in."""
        kept, texts, spans = self.samples, self._texts(), self._intervals()
        if kept and sample.step < kept[-1].step:  # the count restarted: start over
            kept, texts, spans = (), (), ()
        if spans and spans[-1].seconds < SAMPLE_GAP:
            # the newest sample was too close to the one before: replaced
            kept, texts, spans = kept[:-1], texts[:-1], spans[:-1]
        if kept:
            spans += (_interval(kept[-1], sample),)
        kept += (sample,)
        texts += (_text(sample),)
        if len(kept) > MAX_SAMPLES:
            kept, texts, spans = kept[1:], texts[1:], spans[1:]
        return Pace(kept, texts, spans)

    def _texts(self) -> tuple[str, ...]:
        if len(self.texts) == len(self.samples):
            return self.texts
        return tuple(map(_text, self.samples))

    def _intervals(self) -> tuple[Interval, ...]:
        if len(self.intervals) == max(0, len(self.samples) - 1):
            return self.intervals
        return tuple(map(_interval, self.samples, self.samples[1:]))

    def speed(self) -> Speed | None:
        """The recent pace, or None until there is enough signal."""
        spans = self._intervals()
        if len(spans) < MIN_INTERVALS:
            return None
        # Column by column: zip and sum run in C (a loop over ~30 intervals cost 13 µs).
        timed, received, published, steps, percent = zip(*spans)
        limit = max(PAUSE_MIN, PAUSE_FACTOR * _median(timed))
        if max(timed) > limit:  # pauses: left out
            kept = [i for i in spans if i.seconds <= limit]
            if len(kept) < MIN_INTERVALS:
                return None
            timed, received, published, steps, percent = zip(*kept)
        # The time the kept intervals took, from both clocks (see _interval).
        if None in published:
            span = max(sum(received), sum(timed))
        else:
            span = max(sum(received), sum(published) - 1.0)
        if span < MIN_SPAN:
            return None
        moved = sum(percent)
        left = 100.0 - self.samples[-1].percentage
        eta = left / (moved / span) if moved > 0 else None
        return Speed(sum(steps) / span, eta)
