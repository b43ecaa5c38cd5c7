"""Publisher confirms: which delivery tag carries which message, and what goes out again.

Every message gets a sequence number once, when it is first published; a message sent
again (connection lost before its confirm, nack) keeps it, so the retry line is kept in
the original order.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from enum import Enum
from typing import Any, NamedTuple

from ._transport import Envelope

__all__ = ["MAX_IN_FLIGHT", "Confirms", "Slot", "Verdict"]

#: Unconfirmed messages allowed on the wire at once.
MAX_IN_FLIGHT = 1000


class Slot(NamedTuple):
    """A message's place in the run's sequence."""

    seq: int
    envelope: Envelope
    #: When it went on the wire (``time.monotonic()``).
    sent_at: float = 0.0


class Verdict(Enum):
    """What the broker said about one published message."""

    ACK = "ack"
    NACK = "nack"
    RETURNED = "returned"  # acked, but returned unroutable first: no such queue


class Confirms:
    """Delivery tags of the current channel mapped to messages, and the retry line."""

    def __init__(self) -> None:
        self._seq = 0
        self._tag = 0
        self.in_flight: dict[int, Slot] = {}
        self.retry: list[Slot] = []
        self._returned: set[str] = set()
        #: How many times each message came back unroutable (a cluster: once per node).
        self.returns: collections.Counter[str] = collections.Counter()
        #: No wait for a confirm counts from before this (the broker was blocking us).
        self._clock_from = 0.0
        #: After a refusal in a cluster, one message at a time until one is confirmed: a
        #: queue that refuses for a while (a quorum queue electing its leader) then cannot
        #: take a later message before an earlier one that it refused.
        self.probing = False
        #: The highest sequence number the broker confirmed.
        self.newest_acked = 0

    def new_channel(self) -> None:
        """A channel in confirm mode numbers its deliveries from 1."""
        self._tag = 0

    def sent(self, envelope: Envelope, seq: int | None = None) -> None:
        """``envelope`` is being published (with its old ``seq`` when sent again)."""
        if seq is None:
            self._seq += 1
            seq = self._seq
        self._tag += 1
        self.in_flight[self._tag] = Slot(seq, envelope, time.monotonic())

    def returned(self, message_id: str) -> None:
        """The broker returned this message (its ack follows)."""
        self._returned.add(message_id)
        self.returns[message_id] += 1

    def settle(self, method: Any) -> list[tuple[Slot, Verdict]]:
        """The messages a ``basic.ack``/``basic.nack`` settles, with the verdict of each."""
        import pika.spec

        acked = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        slots = self._pop_up_to(tag) if method.multiple else self._pop(tag)
        if acked and slots and not self._returned:  # the usual case: acks, nothing returned
            self.probing = False
            self.newest_acked = max(self.newest_acked, max(slot.seq for slot in slots))
            return [(slot, Verdict.ACK) for slot in slots]
        settled = []
        for slot in slots:
            message_id = slot.envelope.message_id
            verdict = Verdict.ACK if acked else Verdict.NACK
            if message_id in self._returned:
                verdict = Verdict.RETURNED
            elif acked:
                self.probing = False
                self.newest_acked = max(self.newest_acked, slot.seq)
            self._returned.discard(message_id)
            settled.append((slot, verdict))
        return settled

    def _pop(self, tag: int) -> list[Slot]:
        slot = self.in_flight.pop(tag, None)
        return [] if slot is None else [slot]

    def _pop_up_to(self, tag: int) -> list[Slot]:
        """The slots in flight up to ``tag``: the oldest ones, since tags are added in
        ascending order (one channel's, from 1). Stops at the first later tag rather than
        looking at all (up to ``MAX_IN_FLIGHT``) on every confirm."""
        tags = []
        for t in self.in_flight:
            if t > tag:
                break
            tags.append(t)
        return [self.in_flight.pop(t) for t in tags]

    def hold(self, envelopes: Sequence[Envelope]) -> None:
        """``envelopes`` were taken to be published but were not: they go first on the
        next channel, after what is in flight, with sequence numbers of their own."""
        for envelope in envelopes:
            self._seq += 1
            self.retry.append(Slot(self._seq, envelope))
        self.retry.sort(key=lambda slot: slot.seq)

    def again(self, *slots: Slot) -> None:
        """Put ``slots`` in the retry line, in sequence order."""
        self.retry.extend(slots)
        self.retry.sort(key=lambda slot: slot.seq)

    def requeue(self) -> None:
        """The channel is gone: what was in flight goes out again, in order."""
        if self.in_flight:
            self.again(*self.in_flight.values())
            self.in_flight.clear()

    def restart_clock(self) -> None:
        """Count the wait for what is in flight from now (the broker was blocking us)."""
        self._clock_from = time.monotonic()

    def waited(self) -> float:
        """Seconds the oldest unconfirmed message has waited for its confirm (0: none)."""
        oldest = next(iter(self.in_flight.values()), None)
        if oldest is None:
            return 0.0
        return time.monotonic() - max(oldest.sent_at, self._clock_from)

    def room(self) -> bool:
        """True while another message may go on the wire."""
        return self.room_left() > 0

    def room_left(self) -> int:
        """How many more messages may go on the wire now."""
        return (1 if self.probing else MAX_IN_FLIGHT) - len(self.in_flight)
