"""The newest progress the I/O thread took, and whether the broker confirmed it."""

from __future__ import annotations

import threading

from ._transport import Envelope, Outbox

__all__ = ["NewestProgress"]


class NewestProgress:
    """Takes progress from the outbox and remembers the newest taken and confirmed.

    With the outbox's final step, the newest taken is what the write-ahead keeps: one lock
    makes the spool and the wire agree on it.
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._lock = threading.Lock()
        self._taken: Envelope | None = None
        self._confirmed: str | None = None

    def take(self, *, ignore_rate: bool) -> Envelope | None:
        """The next progress message to publish (see :meth:`Outbox.take_progress`)."""
        taken = self.take_many(1, ignore_rate=ignore_rate)
        return taken[0] if taken else None

    def take_many(self, limit: int, *, ignore_rate: bool) -> list[Envelope]:
        """Up to ``limit`` progress messages to publish (see :meth:`Outbox.take_many`)."""
        with self._lock:
            taken = self.outbox.take_many(limit, ignore_rate=ignore_rate)
            if taken:
                self._taken = taken[-1]
            return taken

    def confirmed(self, envelope: Envelope) -> None:
        """The broker confirmed this progress message."""
        self._confirmed = envelope.message_id

    def unconfirmed_final(self) -> Envelope | None:
        """The newest progress of this run not yet confirmed (the write-ahead keeps it)."""
        with self._lock:
            newest = self.outbox.final_progress() or self._taken
        if newest is not None and newest.message_id == self._confirmed:
            return None
        return newest

    def is_stale(self, envelope: Envelope) -> bool:
        """True when a newer step than ``envelope`` exists: sending it again would go back."""
        return envelope is not self._taken or self.outbox.has_pending()
