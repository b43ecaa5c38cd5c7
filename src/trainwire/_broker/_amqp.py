"""The AMQP transport: one daemon I/O thread publishing a run's messages with pika.

Why this shape: pika objects are not thread-safe, and a ``BlockingConnection`` services
heartbeats only inside pika calls, so a long training step would kill it. Here the I/O
thread runs pika's event loop (``SelectConnection``) on its own: heartbeats keep flowing
while the training thread computes, publishes are pipelined with publisher confirms (many
in flight), and the training thread never waits for the network.

What it guarantees, whatever the broker or the network does:

- **Order.** Messages go out in one sequence: this run's progress, then its terminal
  message, published alone once everything before it is confirmed. A message that must
  be sent again (connection lost before its confirm, nack) keeps its place in that
  sequence; a nacked progress message is sent again only while nothing newer exists, so
  steps never go backwards.
- **A re-run supersedes what an earlier run kept.** Records of the same job left in the
  spool by an earlier run are not sent before this run: the platform ignores everything
  after a ``training_error``, so an old terminal message would discard the whole new run.
  They are moved to ``trainwire-spool.superseded.jsonl`` beside the spool, with one log
  line; records of other jobs stay for ``trainwire replay``.
- **Nothing lost.** When the run ends, its terminal message (and the newest progress not
  yet confirmed) is written to the spool *before* waiting for the broker, and removed once
  confirmed. A process that dies during the flush (a second SIGTERM, ``kill -9`` after a
  grace period) leaves it there for ``trainwire replay``.
- **Never blocked.** The training thread only appends to the outbox; reconnecting (with
  backoff and jitter, at least every second once the terminal message waits), a memory
  alarm (``connection.blocked``) and nacks are handled in the I/O thread.
- **Another node at once.** With several nodes in the config (a cluster), each process
  tries them in an order shuffled once. A node that goes away, refuses a message (nack or
  return) or confirms nothing for ``CONFIRM_PATIENCE`` is left for the next node at once;
  backoff comes only after every node failed in turn. What was not confirmed goes out
  again there first, in order and with the same ``message_id``: a consumer that drops
  copies by ``message_id`` sees every step once, in order.
- **Bounded exit.** ``finish`` waits at most its timeout; the I/O thread is a daemon.

The parts, one job each: :class:`~._publisher.Publisher` (the sequence, confirms, the
phase), :class:`~._session.Session` (one connection's callbacks), :class:`~._pump.Pump`
(one connection's timer), :class:`~._writeahead.WriteAhead` (the spool),
:class:`~._nodes.NodeRing` and :class:`~._nodes.Backoff` (which node next, and when).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .._spec._config import Config, Endpoint
from ._nodes import BACKOFF_MAX, Backoff, NodeRing
from ._params import connection_parameters, message_properties, node_parameters, nodes_of
from ._phase import Phase
from ._pikaio import IO_THREAD_PREFIX, quiet_pika_in_io_threads
from ._publisher import Publisher
from ._pump import POLL_INTERVAL
from ._sentences import Diagnosis, connect_sentence, describe_connect_error
from ._session import Session
from ._transport import Outbox, Transport

__all__ = [
    "POLL_INTERVAL",
    "AmqpTransport",
    "Diagnosis",
    "connect_sentence",
    "connection_parameters",
    "describe_connect_error",
    "message_properties",
    "nodes_of",
]


class AmqpTransport(Transport):
    """Publishes a run's messages to ``queue_name`` through the default exchange."""

    name = "amqp"

    def __init__(self, outbox: Outbox, config: Config) -> None:
        super().__init__(outbox)
        self.config = config
        self.publisher = Publisher(outbox, config, len(nodes_of(config)))
        self.spool = self.publisher.write_ahead.spool
        self._wakeup = threading.Event()  # cuts a backoff short
        self._session: Session | None = None
        self._thread = threading.Thread(target=self._main, name=IO_THREAD_PREFIX, daemon=True)
        self._pid = os.getpid()

    @property
    def delivered(self) -> int:
        """Messages the broker confirmed."""
        return self.publisher.delivered

    # -- the training thread's side -------------------------------------------------

    def start(self) -> None:
        self.publisher.write_ahead.supersede_earlier()
        self._thread.start()

    def wake(self) -> None:
        self._wakeup.set()
        session = self._session
        if session is not None:
            session.wake()

    def begin_finish(self) -> None:
        self.wake()
        if self.publisher.phase is not Phase.ABANDONED:
            # Write-ahead: from here on a death of the process cannot lose the terminal
            # message. Removed again once the broker confirmed it.
            self.publisher.keep_final()

    def finish(self, timeout: float) -> bool:
        publisher = self.publisher
        if publisher.phase is Phase.ABANDONED:
            return False
        publisher.keep_final()  # done by begin_finish() already, unless finish came alone
        if timeout > 0:
            publisher.settled.wait(timeout)
        if publisher.confirmed.is_set():
            publisher.write_ahead.settle()
            return True
        publisher.stop(Phase.GIVEN_UP)  # the spool owns what is left
        self.wake()
        publisher.write_ahead.report_kept(publisher.problem)
        return False

    def hurry(self) -> None:
        self.publisher.settled.set()

    def abandon(self) -> None:
        self.publisher.phase = Phase.ABANDONED
        if os.getpid() != self._pid:
            self._session = None  # a forked child: the socket is the parent's; drop it only
        else:
            self.wake()  # the same process: the I/O thread closes its connection and ends

    # -- the I/O thread ---------------------------------------------------------------

    def _parameters(self) -> list[tuple[Endpoint, Any]] | None:
        try:
            nodes = nodes_of(self.config)
            return list(zip(nodes, node_parameters(self.config)))
        except Exception as exc:
            kind, text, _ = describe_connect_error(self.config, exc)
            self.publisher.switch_off(kind.value, text)
            return None

    def _main(self) -> None:
        import pika.adapters.select_connection  # noqa: F401  (its loggers exist from here on)

        quiet_pika_in_io_threads()
        nodes = self._parameters()
        if nodes is None:
            return
        ring, backoff, publisher = NodeRing(nodes), Backoff(), self.publisher
        while publisher.running:
            node, params = ring.current
            session = self._session = Session(publisher, params, node, self._wakeup)
            session.run()
            self._session = None
            if not publisher.running:
                break
            if session.worked(BACKOFF_MAX):
                backoff.reset()
                ring.worked()
            if not ring.next():
                continue  # another node, at once: it is most likely up
            # A terminal message (wake) cuts the wait short so that it gets its chance.
            self._wakeup.wait(backoff.delay(ending=self.outbox.terminal is not None))
            self._wakeup.clear()
