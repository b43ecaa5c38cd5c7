"""What every transport shares: the envelope, the outbox the training thread fills."""

from __future__ import annotations

import abc
import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

from .._spec._protocol import Identity, ProgressTemplate, encode, new_message_id

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
    #: The body's bytes when they were built with it (progress, from a byte template).
    data: bytes | None = None

    def payload(self) -> bytes:
        """The body as it goes on the wire (:func:`encode`)."""
        return self.data if self.data is not None else encode(self.body)

    @property
    def step(self) -> int | None:
        """The step of a progress message, else None."""
        step = self.body.get("step")
        return step if isinstance(step, int) else None


#: Bound on progress entries kept in every-step mode while the broker is slower or away.
EVERY_STEP_BACKLOG = 10_000
#: At the end, at most this many of the newest waiting steps go before the terminal
#: message (every-step mode), so that a backlog never delays it.
FINAL_BACKLOG = 500


class Outbox:
    """The hand-off between the training thread and the I/O thread.

    The training thread only appends to a bounded deque (one atomic C call, no lock, no
    I/O): a bare ``step`` (an ``int``, whose percentage is ``step / total_steps * 100``,
    clamped to 0..100) or a ``(step, percentage)`` tuple. A bare int allocates nothing, so
    the hot path is cheaper and can never set off the garbage collector. The I/O thread
    builds the messages. With ``max_rate`` the deque keeps only the newest entry, so
    progress coalesces to the newest step and memory stays constant however long the
    broker is away.

    Once the terminal message is set the outbox is sealed: what was pushed before that is
    taken (the newest ``FINAL_BACKLOG`` steps in every-step mode, the newest with
    ``max_rate``), its last entry built once (:meth:`final_progress`); whatever is pushed
    later (a feeder thread racing the end) is never taken, so nothing follows the terminal
    and no backlog delays it. The training thread never takes ``_lock``.
    """

    def __init__(
        self, identity: Identity, max_rate: float | None, total_steps: int | None = None
    ) -> None:
        self.identity = identity
        self._template = ProgressTemplate(identity)
        self.max_rate = max_rate
        self._min_interval = 1.0 / max_rate if max_rate else 0.0
        self._scale = 100.0 / total_steps if total_steps else 0.0
        maxlen = 1 if max_rate else EVERY_STEP_BACKLOG
        self.pending: collections.deque[int | tuple[int, float]] = collections.deque(maxlen=maxlen)
        self.push = self.pending.append  # the hot path: one bound C method
        self._next_allowed = 0.0
        self._terminal: Envelope | None = None
        self._lock = threading.Lock()  # the I/O thread and the ending thread, never training
        self._sealed = False
        self._tail: collections.deque[int | tuple[int, float]] = collections.deque()
        self._final: Envelope | None = None
        self.terminal_set = threading.Event()

    def take_progress(self, *, ignore_rate: bool = False) -> Envelope | None:
        """The next progress message to publish, or None (nothing new, or rate limit)."""
        taken = self.take_many(1, ignore_rate=ignore_rate)
        return taken[0] if taken else None

    def take_many(self, limit: int, *, ignore_rate: bool = False) -> list[Envelope]:
        """Up to ``limit`` progress messages to publish, oldest first, under one lock (one
        at most with ``max_rate``); empty when nothing is new or the rate limit holds."""
        with self._lock:
            if self._terminal is not None:
                return self._take_tail(limit)
            if not self.pending:
                return []
            if self.max_rate:
                now = time.monotonic()
                if not ignore_rate and now < self._next_allowed:
                    return []
                self._next_allowed = now + self._min_interval
                item = self._pop()
                return [] if item is None else [self._envelope(item)]
            return [self._envelope(item) for item in self._pop_oldest(limit)]

    def _pop_oldest(self, limit: int) -> list[int | tuple[int, float]]:
        """Every-step mode: up to ``limit`` entries, oldest first (the training thread may
        append meanwhile: the deque's own methods are atomic; a full deque drops its oldest
        on append, so its length never shrinks under us)."""
        pending = self.pending
        # Only this thread takes, under the lock: what is there now stays at least as long.
        return [pending.popleft() for _ in range(min(limit, len(pending)))]

    def _take_tail(self, limit: int) -> list[Envelope]:
        """After the terminal is set: the sealed steps, the last one as the final envelope."""
        self._seal()
        taken: list[Envelope] = []
        tail = self._tail
        while tail and len(taken) < limit:
            item = tail.popleft()
            final = self._final
            taken.append(final if not tail and final is not None else self._envelope(item))
        return taken

    def final_progress(self) -> Envelope | None:
        """After the terminal is set: the newest step pushed before it (one envelope), or None."""
        with self._lock:
            self._seal()
            return self._final

    def has_pending(self) -> bool:
        """True while a step waits to be taken (after the end: only the final one counts)."""
        if self._sealed:
            return bool(self._tail)
        return bool(self.pending) or self._terminal is not None

    def _pop(self) -> int | tuple[int, float] | None:
        try:
            # maxlen 1 (rate limited): pop() empties it; every-step: oldest first.
            return self.pending.pop() if self.max_rate else self.pending.popleft()
        except IndexError:
            return None

    def _seal(self) -> None:
        if self._sealed:
            return
        self._sealed = True
        # What is there now, and not a step more: a feeder may go on pushing meanwhile.
        waiting = len(self.pending)
        for index in range(waiting):
            item = self._pop()
            if item is not None and index >= waiting - FINAL_BACKLOG:
                self._tail.append(item)
        if self._tail:
            self._final = self._envelope(self._tail[-1])

    def _envelope(self, item: int | tuple[int, float]) -> Envelope:
        if isinstance(item, int):
            step = item
            percentage = min(100.0, max(0.0, step * self._scale))
        else:
            step, percentage = item
        body, data = self._template.rounded(step, percentage)
        return Envelope(new_message_id(), body, data=data)

    def set_terminal(self, body: dict[str, Any]) -> Envelope:
        """Queue the run's one terminal message; later calls return the first one."""
        with self._lock:
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

    def begin_finish(self) -> None:
        """The terminal message is in the outbox: make it safe now, before any waiting.

        Several runs ending together each begin, then each finishes, so that their flushes
        overlap. The AMQP transport writes the terminal message ahead to its spool here.
        """
        self.wake()

    @abc.abstractmethod
    def finish(self, timeout: float) -> bool:
        """Deliver the terminal message (already in the outbox) and stop.

        Waits at most ``timeout`` seconds; True when the terminal message was confirmed.
        What was not confirmed is kept in the local spool by the transport.
        """

    def hurry(self) -> None:
        """Stop waiting for the broker now (a second Ctrl+C): the spool keeps the rest."""
        return None

    def wake(self) -> None:
        """Ask the I/O thread to look at the outbox now (a terminal message is waiting)."""
        return None

    def abandon(self) -> None:
        """Forget everything without touching sockets or files (in a forked child)."""
        return None
