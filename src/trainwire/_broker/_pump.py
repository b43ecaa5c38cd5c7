"""The pump of one connection: moves what waits onto the wire, one timer at a time."""

from __future__ import annotations

import logging
import time
from enum import Enum
from typing import Any

from .._spec._config import Endpoint
from ._notices import Trouble
from ._pikaio import abort_connection, coalesce_writes
from ._publisher import Publisher

__all__ = ["POLL_INTERVAL", "Flow", "Pump"]

#: How often the I/O thread looks at the outbox when nothing woke it.
POLL_INTERVAL = 0.02
#: In a cluster, a node that confirms nothing for this long is left for another one (a
#: partition shows no error: only pika's heartbeat check would notice, much later).
CONFIRM_PATIENCE = 5.0


class Flow(Enum):
    """Whether the broker lets this connection publish."""

    OPEN = "open"
    BLOCKED = "blocked"  # connection.blocked: a memory or disk alarm


class Pump:
    """Runs every ``POLL_INTERVAL`` while connected, and at once after a confirm or a wake."""

    def __init__(self, connection: Any, publisher: Publisher, node: Endpoint) -> None:
        self.connection = connection
        self.publisher = publisher
        self.node = node
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
        if self._should_leave():
            return
        now = time.monotonic()
        if self.flow is Flow.BLOCKED or now < publisher.pause_until:
            self.soon(max(POLL_INTERVAL, publisher.pause_until - now))
            return
        try:
            publisher.order.fill(channel)
            coalesce_writes(conn)
        except Exception as exc:
            publisher.notices.say(
                Trouble.PUBLISH, logging.WARNING, f"publish failed ({exc!r}); reconnecting"
            )
            if conn.is_open:
                conn.close()  # the session's on_close puts what was in flight back in line
            return
        self.soon(POLL_INTERVAL)

    def _should_leave(self) -> bool:
        """In a cluster: leave a node that refused a message or stopped confirming."""
        publisher = self.publisher
        if publisher.nodes < 2 or self.flow is Flow.BLOCKED:
            return False  # one node: nowhere to go; an alarm blocks every node alike
        waited = publisher.confirms.waited()
        if publisher.leave is None and waited > CONFIRM_PATIENCE:
            publisher.leave = f"no confirm for {waited:.1f} s"
        reason, publisher.leave = publisher.leave, None
        if reason is None:
            return False
        text = f"{reason} from {self.node}: moving to another node of the cluster"
        publisher.notices.say(Trouble.MOVED, logging.WARNING, text)
        abort_connection(self.connection, reason)
        return True
