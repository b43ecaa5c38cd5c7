"""What every transport shares: the envelope, the outbox the training thread fills."""

from __future__ import annotations

import abc
import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

from .._protocol import Identity, new_message_id, progress_message

__all__ = ["Envelope", "Outbox", "Transport"]


@dataclass
class Envelope:
    """One message on its way: its AMQP ``message_id``, its body and whether it ends the run."""

    message_id: str
    body: dict[str, Any]
    terminal: bool = False
    #: A message from the spool of an earlier run, replayed before this run's own.
    replayed: bool = False
    queue: str | None = None

    @property
    def step(self) -> int | None:
        """The step of a progress message, else None."""
        step = self.body.get("step")
        return step if isinstance(step, int) else None


#: Bound on progress entries kept in every-step mode while the broker is slower or away.
EVERY_STEP_BACKLOG = 10_000


class Outbox:
    """The hand-off between the training thread and the I/O thread.

    The training thread only appends to a bounded deque (one atomic C call, no lock, no
    I/O): a bare ``step`` (an ``int``, whose percentage is ``step / total_steps * 100``,
    clamped to 0..100) or a ``(step, percentage)`` tuple. A bare int allocates nothing, so
    the hot path is cheaper and can never set off the garbage collector. The I/O thread
    builds the messages. With ``max_rate`` the deque keeps only the newest entry, so
    progress coalesces to the newest step and memory stays constant however long the
    broker is away.
    """

    def __init__(
        self, identity: Identity, max_rate: float | None, total_steps: int | None = None
    ) -> None:
        self.identity = identity
        self.max_rate = max_rate
        self._min_interval = 1.0 / max_rate if max_rate else 0.0
        self._scale = 100.0 / total_steps if total_steps else 0.0
        maxlen = 1 if max_rate else EVERY_STEP_BACKLOG
        self.pending: collections.deque[int | tuple[int, float]] = collections.deque(maxlen=maxlen)
        self.push = self.pending.append  # the hot path: one bound C method
        self._next_allowed = 0.0
        self._terminal: Envelope | None = None
        self.terminal_set = threading.Event()
        self.last_progress: Envelope | None = None

    def take_progress(self, *, ignore_rate: bool = False) -> Envelope | None:
        """The next progress message to publish, or None (nothing new, or rate limit)."""
        if not self.pending:
            return None
        if self.max_rate:
            now = time.monotonic()
            if not ignore_rate and now < self._next_allowed:
                return None
            self._next_allowed = now + self._min_interval
            try:
                item = self.pending.pop()
            except IndexError:
                return None
            self.pending.clear()
        else:
            try:
                item = self.pending.popleft()
            except IndexError:
                return None
        if isinstance(item, int):
            step = item
            percentage = min(100.0, max(0.0, step * self._scale))
        else:
            step, percentage = item
        body = progress_message(self.identity, step, round(percentage, 4))
        envelope = Envelope(new_message_id(), body)
        self.last_progress = envelope
        return envelope

    def set_terminal(self, body: dict[str, Any]) -> Envelope:
        """Queue the run's one terminal message; later calls return the first one."""
        if self._terminal is None:
            self._terminal = Envelope(new_message_id(), body, terminal=True)
            self.terminal_set.set()
        return self._terminal

    @property
    def terminal(self) -> Envelope | None:
        """The terminal message once set."""
        return self._terminal


class Transport(abc.ABC):
    """Delivers one run's messages from a daemon thread of its own.

    Subclasses own every resource they open; the training thread only ever touches the
    :class:`Outbox`. A transport is the pluggable part: AMQP to the platform, a local file
    for the offline default, nothing when disabled.
    """

    name = "transport"

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @abc.abstractmethod
    def start(self) -> None:
        """Start the I/O thread. Never blocks on the network."""

    @abc.abstractmethod
    def finish(self, timeout: float) -> bool:
        """Deliver the terminal message (already in the outbox) and stop.

        Waits at most ``timeout`` seconds; True when the terminal message was confirmed.
        What was not confirmed is kept in the local spool by the transport.
        """

    def wake(self) -> None:
        """Ask the I/O thread to look at the outbox now (a terminal message is waiting)."""
        return None

    def abandon(self) -> None:
        """Forget everything without touching sockets or files (in a forked child)."""
        return None
