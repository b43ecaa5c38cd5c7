"""The channel of one connection, in confirm mode: what the broker says about each message."""

from __future__ import annotations

import logging
from typing import Any

from .._spec._config import Endpoint
from ._notices import Trouble
from ._pump import Pump

__all__ = ["ConfirmChannel"]


class ConfirmChannel:
    """Opens a channel on ``pump``'s connection and hands the broker's answers on."""

    def __init__(self, pump: Pump, node: Endpoint) -> None:
        self.pump = pump
        self.publisher = pump.publisher
        self.node = node
        #: True once the broker confirmed the channel is in confirm mode.
        self.confirming = False
        #: True once a message was confirmed on it.
        self.acked = False

    def open(self) -> None:
        """Ask for the channel (the answers come as callbacks in the I/O thread)."""
        self.pump.connection.channel(on_open_callback=self._on_open)

    def _on_open(self, channel: Any) -> None:
        self.publisher.confirms.new_channel()
        self.pump.channel = channel
        channel.add_on_close_callback(self._on_close)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_ok)

    def _on_confirm_ok(self, frame: Any) -> None:
        self.confirming = True
        self.publisher.notices.forget(Trouble.LOST, Trouble.MOVED)
        self.pump.soon(0)

    def _on_close(self, channel: Any, exc: BaseException) -> None:
        self.publisher.confirms.requeue()
        self.pump.channel = None
        conn = self.pump.connection
        if not conn.is_open:
            return
        if "ACCESS_REFUSED" in str(exc):  # e.g. no write permission: retrying cannot help
            self.publisher.switch_off(Trouble.PERMISSION.value, self._no_permission(exc))
        else:
            text = f"the broker closed the channel ({exc!r})"
            self.publisher.notices.say(Trouble.CHANNEL, logging.WARNING, text)
        conn.close()

    def _no_permission(self, exc: BaseException) -> str:
        config = self.publisher.config
        return (
            f"the broker at {self.node} does not let user {config.message_id!r} publish to "
            f"queue {config.queue_name!r} ({exc}): check 'message_id' in {config.path}, or "
            f"give that user write permission on virtual host {config.message_vhost!r}"
        )

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.publisher.on_return(properties.message_id, method.reply_text)

    def _on_confirm(self, frame: Any) -> None:
        if self.publisher.on_confirm(frame.method):
            self.acked = True
        conn = self.pump.connection
        if not self.publisher.running:
            if conn.is_open:
                conn.close()  # the terminal is confirmed: nothing more to send
        else:
            self.pump.soon(0)
