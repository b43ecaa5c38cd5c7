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
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Pace", "Sample", "Speed"]

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


def _seconds(a: Sample, b: Sample) -> float:
    """The time between two samples: received, or published less the second the whole
    seconds may hide, when that says longer (a backlog arrives faster than it was made)."""
    dt = b.at - a.at
    if a.published is not None and b.published is not None:
        dt = max(dt, b.published - a.published - 1.0)
    return dt


def _median(values: list[float]) -> float:
    """The median (``statistics.median`` costs more than the rest of :meth:`Pace.speed`)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _span(kept: list[tuple[Sample, Sample, float]]) -> float:
    """The time the kept intervals took, from both clocks (see :func:`_seconds`)."""
    received = sum(b.at - a.at for a, b, _ in kept)
    published = 0.0
    for a, b, dt in kept:
        if a.published is None or b.published is None:
            return max(received, sum(dt for _, _, dt in kept))
        published += b.published - a.published
    return max(received, published - 1.0)


@dataclass(frozen=True)
class Pace:
    """A running job's recent samples."""

    samples: tuple[Sample, ...] = ()

    @classmethod
    def loads(cls, text: str | None) -> Pace:
        """The pace stored as :meth:`dumps` wrote it (empty for None or a bad text)."""
        try:
            rows = json.loads(text) if text else []
            return cls(tuple([Sample(float(a), p, int(s), float(c)) for a, p, s, c in rows]))
        except (ValueError, TypeError):
            return cls()

    def dumps(self) -> str:
        """The samples as compact JSON, for a text column."""
        return json.dumps(self.samples, separators=(",", ":"))  # tuples: JSON arrays

    def add(self, sample: Sample) -> Pace:
        """The pace with ``sample`` (the job's newest progress) taken in."""
        kept = self.samples
        if kept and sample.step < kept[-1].step:  # the count restarted: start over
            kept = ()
        if len(kept) >= 2 and _seconds(kept[-2], kept[-1]) < SAMPLE_GAP:
            kept = kept[:-1]  # the newest sample was too close to the one before: replaced
        return Pace((*kept, sample)[-MAX_SAMPLES:])

    def speed(self) -> Speed | None:
        """The recent pace, or None until there is enough signal."""
        pairs = list(zip(self.samples, self.samples[1:]))
        if len(pairs) < MIN_INTERVALS:
            return None
        lengths = [_seconds(a, b) for a, b in pairs]
        limit = max(PAUSE_MIN, PAUSE_FACTOR * _median(lengths))
        kept = [(a, b, dt) for (a, b), dt in zip(pairs, lengths) if dt <= limit]
        span = _span(kept)
        steps = sum(b.step - a.step for a, b, _ in kept)
        if len(kept) < MIN_INTERVALS or span < MIN_SPAN:
            return None
        percent = sum(b.percentage - a.percentage for a, b, _ in kept) / span
        left = 100.0 - self.samples[-1].percentage
        eta = left / percent if percent > 0 else None
        return Speed(steps / span, eta)
