"""The pump of one connection: moves what waits onto the wire, one timer at a time."""

from __future__ import annotations

import logging
import time
from enum import Enum
from typing import Any

from ._notices import Trouble
from ._publisher import Publisher

__all__ = ["POLL_INTERVAL", "Flow", "Pump"]

#: How often the I/O thread looks at the outbox when nothing woke it.
POLL_INTERVAL = 0.02


class Flow(Enum):
    """Whether the broker lets this connection publish."""

    OPEN = "open"
    BLOCKED = "blocked"  # connection.blocked: a memory or disk alarm


class Pump:
    """Runs every ``POLL_INTERVAL`` while connected, and at once after a confirm or a wake."""

    def __init__(self, connection: Any, publisher: Publisher) -> None:
        self.connection = connection
        self.publisher = publisher
        #: The channel in confirm mode, once it is ready.
        self.channel: Any = None
        self.flow = Flow.OPEN
        self._timer: Any = None

    def soon(self, delay: float) -> None:
        """Run in ``delay`` seconds; wake-ups and confirms reschedule the one timer."""
        if self._timer is not None:
            self.connection.ioloop.remove_timeout(self._timer)
        self._timer = self.connection.ioloop.call_later(delay, self._run)

    def _run(self) -> None:
        self._timer = None
        conn, channel, publisher = self.connection, self.channel, self.publisher
        if not conn.is_open or channel is None or not channel.is_open:
            return
        if not publisher.running:
            conn.close()  # confirmed, given up (the spool has it) or abandoned
            return
        now = time.monotonic()
        if self.flow is Flow.BLOCKED or now < publisher.pause_until:
            self.soon(max(POLL_INTERVAL, publisher.pause_until - now))
            return
        try:
            publisher.order.fill(channel)
        except Exception as exc:
            publisher.notices.say(
                Trouble.PUBLISH, logging.WARNING, f"publish failed ({exc!r}); reconnecting"
            )
            if conn.is_open:
                conn.close()  # the session's on_close puts what was in flight back in line
            return
        self.soon(POLL_INTERVAL)
