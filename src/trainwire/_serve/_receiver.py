"""The receiving side: an AMQP consumer that stores every message before it acks it, and
the watcher that turns silent running jobs ``abnormal``.

The consumer is a pika ``BlockingConnection`` owned by one thread (pika objects are not
thread-safe). What the broker has handed over (at most the prefetch count) is settled by
:meth:`Store.receive_many` in one transaction and acknowledged only after that transaction
committed (one ``basic.ack`` with ``multiple``). If the store fails, the connection is
closed without acking, so the broker requeues everything unacknowledged, and the consumer
reconnects after a pause: nothing is lost and, thanks to the ``message_id`` table, nothing
is applied twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._config import Config
from ._store import Delivery, Outcome, Store

__all__ = ["BrokerSource", "Receiver", "StaleWatcher"]

log = logging.getLogger("trainwire.serve")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0
HEARTBEAT = 30


@dataclass(frozen=True)
class BrokerSource:
    """Where to consume: connection parameters, the queue, and how to explain failures."""

    params: Any
    queue: str
    #: ``amqp://user@host:port/vhost`` without the password, for messages.
    description: str
    #: The training config the parameters came from, if any (for error sentences).
    config: Config | None = None

    def explain(self, exc: BaseException) -> tuple[str, str, bool]:
        """``(kind, sentence, retry?)`` for a failed connect, never echoing a password."""
        from .._transport._amqp import describe_connect_error

        if self.config is not None:
            return describe_connect_error(self.config, exc)
        kind, sentence, retry = describe_connect_error(_url_config(self.params), exc)
        sentence = sentence.replace("in <--amqp-url>", "in --amqp-url").replace(
            "'message_id' and 'message_pw'", "the user and password"
        )
        return kind, sentence, retry


def _url_config(params: Any) -> Config:
    """A stand-in config so that ``describe_connect_error`` can word an --amqp-url failure."""
    from pathlib import Path

    from .._protocol import Kind

    return Config(
        path=Path("<--amqp-url>"),
        kind=Kind.TRAINING,
        project_key="-",
        job_id="-",
        model_write_path=Path("."),
        message_host=params.host,
        message_port=params.port,
        message_id=getattr(params.credentials, "username", "?"),
        message_vhost=params.virtual_host,
    )


class _StoreFailed(Exception):
    """Raised out of the consumer callback to drop the connection without acking."""


@dataclass
class ReceiverStats:
    """What this process received, by outcome (the store holds the durable truth)."""

    received: int = 0
    #: ``applied`` or a rejection reason -> count.
    outcomes: dict[str, int] = field(default_factory=dict)
    #: Applied messages that were older than what their job already showed.
    superseded: int = 0


class Receiver:
    """Consumes ``source.queue`` into ``store`` in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        store: Store,
        source: BrokerSource,
        *,
        project_keys: frozenset[str] = frozenset(),
        prefetch: int = 50,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.project_keys = project_keys
        self.prefetch = prefetch
        self.on_change = on_change
        self.stats = ReceiverStats()
        self.state = "starting"
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._fatal: str | None = None
        self._said: set[str] = set()
        self._stored = False
        self._db_warned = False
        self._thread = threading.Thread(target=self._main, name="trainwire-receiver", daemon=True)

    # -- control -------------------------------------------------------------------

    def start(self) -> None:
        """Start consuming in the background."""
        self._thread.start()

    def wait_started(self, timeout: float) -> str | None:
        """Wait until the first connect succeeded or failed for good.

        Returns None when consuming (or still retrying a broker that is down), or the
        sentence of an error that retrying cannot fix (wrong password, unknown vhost).
        """
        self._started.wait(timeout)
        return self._fatal

    def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming; unacknowledged deliveries go back to the queue."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def consuming(self) -> bool:
        """True while connected and consuming."""
        return self.state == "consuming"

    # -- the consumer thread ---------------------------------------------------------

    def _say(self, sentence: str) -> None:
        if sentence not in self._said:
            self._said.add(sentence)
            log.warning("trainwire serve: %s", sentence)

    def _main(self) -> None:
        import pika  # type: ignore[import-untyped,unused-ignore]
        import pika.exceptions  # type: ignore[import-untyped,unused-ignore]

        backoff = BACKOFF_FIRST
        first = True
        while not self._stop.is_set():
            self.state = "connecting"
            try:
                conn = pika.BlockingConnection(self.source.params)
            except Exception as exc:
                _kind, sentence, retry = self.source.explain(exc)
                self.state, self.last_error = "down", sentence
                if first and not retry:
                    self._fatal = sentence
                    self._started.set()
                    return
                self._say(f"{sentence}; retrying in the background")
                self._started.set()
                first = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            first = False
            try:
                channel = self._open(conn)
                self.state, self.last_error = "consuming", None
                self._said.clear()
                log.info("trainwire serve: consuming %s", self.source.description)
                self._started.set()
                self._stored = False
                self._consume(channel)
                channel.close()
            except _StoreFailed as exc:
                self.state = "down"
                self.last_error = f"the database failed: {exc}"
                if not self._db_warned:  # once per outage, not once per retry
                    self._db_warned = True
                    log.warning(
                        "trainwire serve: %s; the broker keeps the messages, retrying",
                        self.last_error,
                    )
            except pika.exceptions.AMQPError as exc:
                self.state = "down"
                self.last_error = f"lost the broker connection ({type(exc).__name__}: {exc})"
                self._say(f"{self.last_error}; reconnecting")
            except Exception as exc:  # a bug must not kill the consumer for good
                self.state = "down"
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("trainwire serve: the consumer failed; reconnecting")
            finally:
                try:
                    if conn.is_open:
                        conn.close()
                except Exception:
                    pass
            self._started.set()
            if self._stored:  # the last round worked for a while: start over gently
                backoff = BACKOFF_FIRST
            if not self._stop.is_set():
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        self.state = "stopped"

    def _open(self, conn: Any) -> Any:
        import pika.exceptions  # type: ignore[import-untyped,unused-ignore]

        channel = conn.channel()
        try:
            channel.queue_declare(self.source.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            channel = conn.channel()
            channel.queue_declare(self.source.queue, durable=True)
            log.info("trainwire serve: declared the durable queue %r", self.source.queue)
        channel.basic_qos(prefetch_count=self.prefetch)
        return channel

    def _consume(self, channel: Any) -> None:
        """Settle what has arrived in batches until :meth:`stop`."""
        batch: list[Delivery] = []
        last_tag = 0
        for method, properties, body in channel.consume(
            self.source.queue, auto_ack=False, inactivity_timeout=0.25
        ):
            if self._stop.is_set():
                break
            if method is None:  # nothing for a while
                continue
            batch.append(
                Delivery(
                    body=body,
                    message_id=properties.message_id or None,
                    timestamp=properties.timestamp
                    if isinstance(properties.timestamp, int)
                    else None,
                )
            )
            last_tag = method.delivery_tag
            if len(batch) < self.prefetch and channel.get_waiting_message_count() > 0:
                continue  # more is already here: settle it in the same transaction
            try:
                outcomes = self.store.receive_many(batch, time.time(), self.project_keys)
            except Exception as exc:
                raise _StoreFailed(str(exc) or type(exc).__name__) from exc
            channel.basic_ack(last_tag, multiple=True)
            if self._db_warned:
                self._db_warned = False
                log.warning("trainwire serve: the database works again")
            self._stored = True
            batch = []
            for outcome in outcomes:
                self._count(outcome)
            if self.on_change is not None:
                self.on_change()

    def _count(self, outcome: Outcome) -> None:
        stats = self.stats
        stats.received += 1
        stats.outcomes[outcome.outcome] = stats.outcomes.get(outcome.outcome, 0) + 1
        stats.superseded += outcome.superseded
        if outcome.rejected:
            first = stats.outcomes[outcome.outcome] == 1
            (log.warning if first else log.info)(
                "trainwire serve: ignored a message (%s%s): %s",
                outcome.outcome,
                f", {outcome.kind} {outcome.job_id!r}" if outcome.job_id else "",
                outcome.detail,
            )


class StaleWatcher:
    """Marks running jobs that stayed silent longer than ``stale_after`` s ``abnormal``."""

    def __init__(
        self,
        store: Store,
        stale_after: float,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.stale_after = stale_after
        self.interval = min(max(stale_after / 4, 0.2), 10.0)
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trainwire-stale", daemon=True)

    def start(self) -> None:
        """Check every ``interval`` seconds in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def check(self) -> list[tuple[str, str]]:
        """Check once now; the jobs that became abnormal."""
        changed = self.store.mark_stale(time.time(), self.stale_after)
        for kind, job_id in changed:
            log.warning(
                "trainwire serve: %s job %r sent nothing for %gs while running: abnormal",
                kind,
                job_id,
                self.stale_after,
            )
        if changed and self.on_change is not None:
            self.on_change()
        return changed

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:
                log.warning("trainwire serve: checking for silent jobs failed: %s", exc)
