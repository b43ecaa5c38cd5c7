"""The order of a run's messages on the wire: retries, progress, then the terminal alone."""

from __future__ import annotations

from typing import Any

from .._spec._config import Config
from ._confirms import Confirms
from ._frames import FramedPublisher
from ._newest import NewestProgress
from ._transport import Envelope, Outbox
from ._writeahead import SpoolState, WriteAhead

__all__ = ["WireOrder"]


class WireOrder:
    """Publishes what waits, in the run's one sequence, on the channel it is given."""

    def __init__(
        self,
        outbox: Outbox,
        config: Config,
        confirms: Confirms,
        newest: NewestProgress,
        write_ahead: WriteAhead,
    ) -> None:
        self.outbox = outbox
        self.queue = config.queue_name
        self.confirms = confirms
        self.newest = newest
        self.write_ahead = write_ahead
        self._terminal_sent = False
        self._framed = FramedPublisher()

    def fill(self, channel: Any) -> None:
        """Publish in sequence: retries, progress, then the terminal alone."""
        if self._send_retries(channel):
            self._send_progress(channel)
            self._send_terminal(channel)

    def _publish(self, channel: Any, envelope: Envelope, seq: int | None = None) -> None:
        self.confirms.sent(envelope, seq)
        self._framed.publish(
            channel, envelope.queue or self.queue, envelope.payload(), envelope.message_id
        )

    def _send_retries(self, channel: Any) -> bool:
        """Send the retry line again; True once it is empty."""
        confirms = self.confirms
        while confirms.retry and confirms.room():
            if confirms.retry[0].envelope.terminal and confirms.in_flight:
                return False  # a terminal message goes alone, after everything before it
            slot = confirms.retry.pop(0)
            self._publish(channel, slot.envelope, slot.seq)
        return not confirms.retry

    def _send_progress(self, channel: Any) -> None:
        ending = self.outbox.terminal is not None
        while self.confirms.room():
            batch = self.newest.take_many(self.confirms.room_left(), ignore_rate=ending)
            for index, progress in enumerate(batch):
                try:
                    self._publish(channel, progress)
                except BaseException:
                    self.confirms.hold(batch[index + 1 :])  # taken, not sent: next in line
                    raise
            if not batch or (self.outbox.max_rate and not ending):
                return

    def _send_terminal(self, channel: Any) -> None:
        terminal = self.outbox.terminal
        if (
            terminal is not None
            # written ahead first: a kill -9 cannot lose it
            and self.write_ahead.state is not SpoolState.NOT_WRITTEN
            and not self._terminal_sent
            and not self.confirms.in_flight
            and not self.outbox.has_pending()
        ):
            self._terminal_sent = True
            self._publish(channel, terminal)
