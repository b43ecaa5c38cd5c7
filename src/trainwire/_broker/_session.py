"""One connection to one broker node: pika's ``SelectConnection`` and its callbacks.

A session lives for one connection attempt, in the I/O thread: everything about that
connection (its channel, its pump, whether it ever opened or had a confirm) is dropped
with it, and what outlives it (the retry line, the phase) is the :class:`Publisher`'s.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from enum import Enum
from typing import Any

from .._spec._config import Endpoint
from ._channel import ConfirmChannel
from ._diagnosis import FailureKind
from ._notices import Trouble
from ._pikaio import inline_resolver_ioloop
from ._publisher import Publisher
from ._pump import Flow, Pump
from ._sentences import describe_connect_error

__all__ = ["Link", "Session"]

log = logging.getLogger("trainwire")

#: Connect trouble that may pass by itself: said once, and "connected" said when it did.
PASSING = (
    FailureKind.REFUSED,
    FailureKind.HOST,
    FailureKind.TIMEOUT,
    FailureKind.PROTOCOL,
    FailureKind.HANDSHAKE,
    FailureKind.VHOST_DOWN,
    FailureKind.OTHER,
)


class Link(Enum):
    """The session's connection."""

    CONNECTING = "connecting"
    OPEN = "open"  # the connection is open (its channel does the publishing)
    FAILED = "failed"  # the connect failed
    CLOSED = "closed"  # it was open and is gone


class Session:
    """Connects to ``node`` and pumps the publisher's messages until the link goes."""

    def __init__(
        self, publisher: Publisher, params: Any, node: Endpoint, wakeup: threading.Event
    ) -> None:
        self.publisher = publisher
        self.wakeup = wakeup
        self.params = params
        self.node = node
        self.link = Link.CONNECTING
        self.opened_at = 0.0
        self.connection: Any = None
        self.pump: Pump | None = None
        self.channel: ConfirmChannel | None = None

    def run(self) -> None:
        """Connect and run pika's loop until the connection ends (in the I/O thread)."""
        import pika

        ioloop = None
        try:
            ioloop = inline_resolver_ioloop()
            self.connection = pika.SelectConnection(
                self.params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_close,
                custom_ioloop=ioloop,
            )
            self.connection.ioloop.start()
        except Exception as exc:  # never let the I/O thread die silently
            key = (Trouble.LOOP, type(exc).__name__)
            self.publisher.notices.say(key, logging.WARNING, f"I/O error: {exc!r}")
        finally:
            if ioloop is not None:  # its poller and wake-up sockets: no fd leak per try
                with contextlib.suppress(Exception):
                    ioloop.close()

    def wake(self) -> None:
        """Any thread: look at the outbox now."""
        conn = self.connection
        if conn is not None:
            # The loop may be closing: then the I/O thread's own loop sees the change.
            with contextlib.suppress(Exception):
                conn.ioloop.add_callback_threadsafe(self._on_wake)

    def worked(self, long: float) -> bool:
        """True when this connection had a confirm or stayed open ``long`` seconds."""
        acked = self.channel is not None and self.channel.acked
        opened = self.link in (Link.OPEN, Link.CLOSED)
        return opened and (acked or time.monotonic() - self.opened_at > long)

    # -- the connection ---------------------------------------------------------------

    def _on_open(self, connection: Any) -> None:
        self.link = Link.OPEN
        self.opened_at = time.monotonic()
        self.wakeup.clear()
        self.publisher.leave = None  # a reason to leave the previous node is no reason here
        notices = self.publisher.notices
        if notices.said(*PASSING, Trouble.LOST, Trouble.MOVED):
            cluster = f" (node {self.node})" if self.publisher.nodes > 1 else ""
            log.info(
                "trainwire: connected to %s%s", self.publisher.config.describe_broker(), cluster
            )
        notices.forget(*PASSING)
        self.pump = Pump(connection, self.publisher, self.node)
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        self.channel = ConfirmChannel(self.pump, self.node)
        self.channel.open()

    def _on_open_error(self, connection: Any, exc: BaseException) -> None:
        self.link = Link.FAILED
        config, node = self.publisher.config, self.node
        kind, text, retry = describe_connect_error(config, exc, host=node.host, port=node.port)
        if retry:
            text += "; training goes on, retrying in background"
            self.publisher.notices.say(kind, logging.WARNING, text)
        else:
            self.publisher.switch_off(kind.value, text)
        connection.ioloop.stop()

    def _on_close(self, connection: Any, exc: BaseException) -> None:
        self.link = Link.CLOSED
        self.publisher.confirms.requeue()
        if self.publisher.running:
            text = f"lost the connection to the broker ({exc!r}); reconnecting in background"
            self.publisher.notices.say(Trouble.LOST, logging.WARNING, text)
        connection.ioloop.stop()

    def _on_blocked(self, connection: Any, frame: Any) -> None:
        if self.pump is not None:
            self.pump.flow = Flow.BLOCKED
        text = "the broker is blocking publishers (memory or disk alarm); messages wait, training "
        self.publisher.notices.say(Trouble.BLOCKED, logging.WARNING, text + "goes on")

    def _on_unblocked(self, connection: Any, frame: Any) -> None:
        self.publisher.notices.forget(Trouble.BLOCKED)
        self.publisher.confirms.restart_clock()  # no confirm was due while blocked
        if self.pump is not None:
            self.pump.flow = Flow.OPEN
            self.pump.soon(0)

    def _on_wake(self) -> None:
        if self.pump is not None:
            self.pump.soon(0)
