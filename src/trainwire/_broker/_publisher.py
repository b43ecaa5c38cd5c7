"""What the publisher knows whatever connection it is on: the run's reporting phase, the
sequence of messages, what the broker confirmed, and the write-ahead."""

from __future__ import annotations

import logging
import time
from typing import Any

from .._spec._config import Config
from ._confirms import Confirms, Slot, Verdict
from ._newest import NewestProgress
from ._notices import Trouble
from ._order import WireOrder
from ._phase import Reporting
from ._sentences import missing_queue_fix
from ._transport import Envelope, Outbox
from ._writeahead import WriteAhead

__all__ = ["NACK_PAUSE", "Publisher"]

#: Pause before sending again what the broker nacked.
NACK_PAUSE = 0.5


class Publisher(Reporting):
    """The run's messages in one sequence, across connections (and nodes)."""

    def __init__(self, outbox: Outbox, config: Config, nodes: int = 1) -> None:
        super().__init__()
        #: How many broker nodes the config names (more than one: a cluster to move in).
        self.nodes = nodes
        #: Why the current node should be left for another one at once, if it should.
        self.leave: str | None = None
        self.outbox = outbox
        self.config = config
        self.confirms = Confirms()
        self.newest = NewestProgress(outbox)
        self.write_ahead = WriteAhead(config)
        self.order = WireOrder(outbox, config, self.confirms, self.newest, self.write_ahead)
        self.delivered = 0
        self.pause_until = 0.0

    def keep_final(self) -> None:
        """Write the terminal message (and the newest progress) ahead to the spool."""

        def final() -> list[Envelope] | None:
            terminal = self.outbox.terminal
            if self.confirmed.is_set() or terminal is None:
                return None
            return [e for e in (self.newest.unconfirmed_final(), terminal) if e is not None]

        self.write_ahead.write(final)

    def on_confirm(self, method: Any) -> int:
        """A ``basic.ack``/``basic.nack``: returns how many messages it confirmed."""
        acked = 0
        progress = None
        for slot, verdict in self.confirms.settle(method):
            if verdict is not Verdict.ACK:
                self._refused(slot, verdict)
                continue
            acked += 1
            self.delivered += 1  # before the terminal's events: finish() may read it next
            if slot.envelope.terminal:
                self.terminal_confirmed()
                self.write_ahead.settle()
            else:
                progress = slot.envelope
        if progress is not None:
            self.newest.confirmed(progress)  # only the newest of them counts there
        return acked

    def _refused(self, slot: Slot, verdict: Verdict) -> None:
        """The broker nacked or returned a message: send it again where that is right."""
        envelope = slot.envelope
        if verdict is Verdict.RETURNED and self._unroutable(envelope.message_id):
            return  # no such queue on any node: said once; the terminal stays in the spool
        if self.nodes > 1:
            self._refused_in_cluster(slot, verdict)
            return
        if not envelope.terminal and self.newest.is_stale(envelope):
            return  # a newer step exists: sending this one again would put it after it
        self.confirms.again(slot)
        self.pause_until = max(self.pause_until, time.monotonic() + NACK_PAUSE)

    def _refused_in_cluster(self, slot: Slot, verdict: Verdict) -> None:
        """A node that cannot reach a quorum queue's leader (an election after a node's
        loss) refuses every message for a while: none is lost. The node is left at once;
        what was in flight goes again on the next, one message at a time until one is
        confirmed, so that steps keep their order."""
        if slot.seq < self.confirms.newest_acked:
            return  # a later message is in already: this one again would go back a step
        self.confirms.again(slot)
        self.confirms.probing = True
        self.leave = f"the broker refused a message ({verdict.value})"

    def _unroutable(self, message_id: str) -> bool:
        """True once every node returned the message (one node: the first time)."""
        return self.confirms.returns[message_id] >= self.nodes

    def on_return(self, message_id: str, reply_text: str) -> None:
        """A message came back unroutable: there is no queue of that name."""
        self.confirms.returned(message_id)
        if not self._unroutable(message_id):
            return  # sent again to another node once its ack (or nack) has come
        terminal = self.outbox.terminal
        if terminal is not None and message_id == terminal.message_id:
            self.settled.set()  # no queue: waiting cannot help; the spool keeps it
        self.notices.say(
            Trouble.UNROUTABLE,
            logging.ERROR,
            f"the broker has no queue named {self.config.queue_name!r} (message returned: "
            f"{reply_text}): {missing_queue_fix(self.config)}",
        )
