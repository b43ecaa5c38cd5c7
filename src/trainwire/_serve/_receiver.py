"""The receiving side: an AMQP consumer that stores every message before it acks it, and
the watcher that turns silent running jobs ``abnormal``.

The consumer is a pika ``BlockingConnection`` owned by one thread (pika objects are not
thread-safe). What the broker has handed over, up to half the prefetch count, is settled
by :meth:`Store.receive_many` in one transaction and acknowledged only after that
transaction committed (one ``basic.ack`` with ``multiple``). Half, so that the broker sends
the next half while a batch is stored, and the consumer never waits for it. A batch also
ends once its bodies reach :data:`BATCH_BYTES`, so that memory is bounded by bytes, not by
the prefetch count.

Failures are told apart so that one bad message never blocks the queue:

- a body that cannot be read or checked is a rejection the store records (the batch
  goes on);
- when a batch fails otherwise and the database is not down (:meth:`Store.outage`), its
  messages are settled one at a time, each acked on its own; one that fails again even
  alone is kept as ``quarantined`` (:meth:`Store.settle_alone`) and acked;
- when the database is down, the connection is closed without acking, so the broker
  requeues everything unacknowledged, and the consumer reconnects after a pause: nothing
  is lost and, thanks to the ``message_id`` table, nothing is applied twice;
- when the connection itself fails (a broker restart, or a message pika cannot even
  decode), the consumer reconnects taking one message at a time for a while, so that
  only the culprit is redelivered again and again: a quorum queue's ``x-delivery-limit``
  then dead-letters it and no innocent message reaches the limit with it (docs/serve.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._broker._amqp import Diagnosis, describe_connect_error
from .._broker._diagnosis import ConnectFailure, FailureKind, diagnose, tls_verdict
from .._broker._nodes import BACKOFF_FIRST, BACKOFF_MAX
from .._spec._config import Config
from ._defaults import PREFETCH
from ._store import APPLIED, Delivery, Outcome, Store, StoreRejection

__all__ = ["BrokerSource", "Receiver", "StaleWatcher"]

log = logging.getLogger("trainwire.serve")

#: A batch is settled once its bodies hold this many bytes, whatever the prefetch count.
BATCH_BYTES = 4 << 20
#: After a failed message alone, wait this long before the try that may quarantine it.
ALONE_PAUSE = 0.2
#: Seconds over which the ingest rate is measured.
RATE_WINDOW = 60.0


@dataclass(frozen=True)
class BrokerSource:
    """Where to consume: connection parameters, the queue, and how to explain failures."""

    params: Any
    queue: str
    #: ``amqp://user@host:port/vhost`` without the password, for messages.
    description: str
    #: The training config the parameters came from, if any (for error sentences).
    config: Config | None = None
    #: Parameters of further nodes of a cluster, tried in turn after ``params``.
    others: tuple[Any, ...] = ()

    @property
    def nodes(self) -> list[Any]:
        """Every node's parameters, in the order they are tried."""
        return [self.params, *self.others]

    def explain(self, exc: BaseException) -> Diagnosis:
        """A failed connect classified and worded, never echoing a password."""
        if self.config is not None:
            return describe_connect_error(self.config, exc)
        tls = self.params.ssl_options is not None
        failure = diagnose(exc, tls=tls, verdict=lambda: tls_verdict(self.params))
        return Diagnosis(failure.kind, url_sentence(self.params, failure), failure.retry)


def url_sentence(params: Any, failure: ConnectFailure) -> str:
    """A failed connect to the broker of ``--amqp-url`` in words."""
    where = f"{params.host}:{params.port}"
    user = getattr(params.credentials, "username", "?")
    vhost = params.virtual_host
    kind = failure.kind
    if kind is FailureKind.AUTH:
        return (
            f"the broker at {where} refused the login of user {user!r}: check the user and "
            "password in --amqp-url"
        )
    if kind is FailureKind.VHOST:
        return (
            f"the broker at {where} does not let user {user!r} into virtual host {vhost!r}: "
            "check the virtual host (and the user's permissions) in --amqp-url"
        )
    if kind is FailureKind.VHOST_DOWN:
        return f"the broker at {where} has virtual host {vhost!r} down (still recovering?)"
    if kind is FailureKind.HOST:
        return f"the broker host {params.host!r} cannot be resolved: check --amqp-url"
    if kind is FailureKind.REFUSED:
        return (
            f"nothing accepts connections at {where} (connection refused): the broker is "
            "down, or the port in --amqp-url is wrong"
        )
    if kind is FailureKind.TIMEOUT:
        return f"connecting to {where} timed out: check --amqp-url and the network"
    if kind is FailureKind.PROTOCOL:
        return (
            f"the broker at {where} closed the connection during the AMQP handshake: check "
            "the port in --amqp-url (amqps:// for a TLS port)"
        )
    if kind is FailureKind.HANDSHAKE:
        return f"the connection to {where} was lost during the handshake (network trouble?)"
    if kind is FailureKind.TLS:
        return (
            f"the TLS connection to {where} failed ({failure.text[:160]}): check the port of "
            "the amqps:// URL and that this machine trusts the broker's certificate"
        )
    return f"cannot connect to the broker at {where}: {failure.text[:200]}"


class _StoreFailed(Exception):
    """Raised out of the consumer callback to drop the connection without acking."""


class _Pending(NamedTuple):
    """A delivery not acknowledged yet, with its delivery tag."""

    delivery: Delivery
    tag: int


@dataclass
class ReceiverStats:
    """What this process received, by outcome (the store holds the durable truth)."""

    received: int = 0
    #: ``applied`` or a rejection reason -> count.
    outcomes: dict[str, int] = field(default_factory=dict)
    #: Applied messages that were older than what their job already showed.
    superseded: int = 0
    #: ``time.monotonic()`` when this process started, and when it stored its last message.
    started: float = field(default_factory=time.monotonic)
    last_message: float | None = None
    #: (monotonic time, messages) of the batches stored in the last :data:`RATE_WINDOW` s.
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    def stored(self, count: int) -> None:
        """``count`` messages were just stored (and acknowledged)."""
        now = time.monotonic()
        self.last_message = now
        self.recent.append((now, count))
        while self.recent and self.recent[0][0] < now - RATE_WINDOW:
            self.recent.popleft()

    def seconds_since_last(self) -> float:
        """Seconds since the last message stored (since the start before the first one)."""
        return time.monotonic() - (self.last_message or self.started)

    def ingest_rate(self) -> float:
        """Messages stored per second over the last :data:`RATE_WINDOW` s (or since start)."""
        now = time.monotonic()
        count = sum(n for at, n in list(self.recent) if at >= now - RATE_WINDOW)
        return count / max(1.0, min(RATE_WINDOW, now - self.started))


class Receiver:
    """Consumes ``source.queue`` into ``store`` in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        store: Store,
        source: BrokerSource,
        *,
        project_keys: frozenset[str] = frozenset(),
        prefetch: int = PREFETCH,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.project_keys = project_keys
        self.prefetch = prefetch
        #: Deliveries settled together at most: half the prefetch count (module docstring).
        self.batch_limit = max(1, prefetch // 2)
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
        #: Deliveries still to take one at a time after the connection failed.
        self._careful = 0
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
        from .._broker import _consumer

        backoff = BACKOFF_FIRST
        first = True
        while not self._stop.is_set():
            self.state = "connecting"
            try:
                conn = _consumer.connect(self.source.nodes)
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
            except _consumer.BrokerError as exc:
                self.state = "down"
                self.last_error = f"lost the broker connection ({type(exc).__name__}: {exc})"
                self._say(f"{self.last_error}; reconnecting")
                self._careful = self.prefetch
            except Exception as exc:  # a bug must not kill the consumer for good
                self.state = "down"
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("trainwire serve: the consumer failed; reconnecting")
                self._careful = self.prefetch
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
        from .._broker._consumer import open_queue

        return open_queue(conn, self.source.queue, 1 if self._careful else self.prefetch)

    def _consume(self, channel: Any) -> None:
        """Settle what has arrived in batches until :meth:`stop`."""
        batch: list[_Pending] = []
        size = 0
        for method, properties, body in channel.consume(
            self.source.queue, auto_ack=False, inactivity_timeout=0.25
        ):
            if self._stop.is_set():
                break
            if method is None:  # nothing for a while
                continue
            delivery = Delivery.from_amqp(body, properties.message_id, properties.timestamp)
            batch.append(_Pending(delivery, method.delivery_tag))
            size += len(body)
            if (
                not self._careful
                and len(batch) < self.batch_limit
                and size < BATCH_BYTES
                and channel.get_waiting_message_count() > 0
            ):
                continue  # more is already here: settle it in the same transaction
            self._settle(channel, batch)
            batch, size = [], 0
            if self._db_warned:
                self._db_warned = False
                log.warning("trainwire serve: the database works again")
            self._stored = True
            if self.on_change is not None:
                self.on_change()
            if self._careful:
                self._careful -= 1
                if not self._careful:  # past what was in flight when the connection failed
                    channel.basic_qos(prefetch_count=self.prefetch)

    def _settle(self, channel: Any, batch: list[_Pending]) -> None:
        """Store, ack and count ``batch``; one message at a time if it fails as a whole."""
        try:
            outcomes = self.store.receive_many(
                [p.delivery for p in batch], time.time(), self.project_keys
            )
        except Exception as exc:
            if self.store.outage(exc):
                raise _StoreFailed(_describe(exc)) from exc
            log.warning(
                "trainwire serve: storing %d message(s) together failed (%s); "
                "settling them one at a time",
                len(batch),
                _describe(exc),
            )
            for pending in batch:
                self._settle_alone(channel, pending)
            return
        channel.basic_ack(batch[-1].tag, multiple=True)
        self._count_batch(outcomes)
        self.stats.stored(len(outcomes))

    def _settle_alone(self, channel: Any, pending: _Pending) -> None:
        """Store, ack and count one message of a failed batch; quarantined if it fails again."""
        try:
            try:
                [outcome] = self.store.receive_many(
                    [pending.delivery], time.time(), self.project_keys
                )
            except Exception as exc:
                if self.store.outage(exc):
                    raise
                self._stop.wait(ALONE_PAUSE)  # a passing hiccup gets one more chance
                outcome = self.store.settle_alone(pending.delivery, time.time(), self.project_keys)
        except Exception as exc:
            raise _StoreFailed(_describe(exc)) from exc
        channel.basic_ack(pending.tag)
        self._count(outcome)
        self.stats.stored(1)

    def _count_batch(self, outcomes: list[Outcome]) -> None:
        """Count a batch: the applied ones at once, each rejection on its own (logged)."""
        applied = superseded = 0
        for outcome in outcomes:
            if outcome.rejected:
                self._count(outcome)
            else:
                applied += 1
                superseded += outcome.superseded
        if applied:
            stats = self.stats
            stats.received += applied
            stats.outcomes[APPLIED] = stats.outcomes.get(APPLIED, 0) + applied
            stats.superseded += superseded

    def _count(self, outcome: Outcome) -> None:
        stats = self.stats
        stats.received += 1
        stats.outcomes[outcome.outcome] = stats.outcomes.get(outcome.outcome, 0) + 1
        stats.superseded += outcome.superseded
        if outcome.rejected:
            first = stats.outcomes[outcome.outcome] == 1
            loud = first or outcome.outcome == StoreRejection.QUARANTINED.value
            (log.warning if loud else log.info)(
                "trainwire serve: ignored a message (%s%s): %s",
                outcome.outcome,
                f", {outcome.kind} {outcome.job_id!r}" if outcome.job_id else "",
                outcome.detail,
            )


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


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
