"""Blocking, confirmed delivery of a few messages: ``trainwire send`` and ``trainwire replay``.

A training loop must never wait for the network, so runs use the asynchronous transport.
A command run by hand or by a shell script is the opposite case: it should wait for the
broker's answer and say plainly whether the message arrived. Here each message is
published with ``mandatory=True`` on a channel in confirm mode, one at a time and in
order; a message counts as delivered only when the broker confirmed it and did not return
it (no queue of that name). The whole exchange runs in a helper thread, so a broker that
blocks publishers or a network that swallows packets costs at most ``timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._spec._config import Config
from .._spec._protocol import encode
from .._spec._spool import SPOOL_FILE, Spool, SpoolRecord
from ._nodes import NodeRing
from ._params import message_properties, node_parameters
from ._sentences import describe_connect_error, missing_queue_fix

__all__ = [
    "DeliveryResult",
    "Outgoing",
    "ReplayResult",
    "deliver",
    "replay_spool",
    "send_records",
]


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: its AMQP ``message_id`` and its JSON body."""

    message_id: str
    body: dict[str, Any]


@dataclass
class DeliveryResult:
    """What the broker confirmed, in order, and why the rest was not delivered."""

    confirmed: list[str] = field(default_factory=list)
    #: ``None`` when every message was confirmed; else the kind of trouble: ``auth``,
    #: ``vhost``, ``host``, ``refused``, ``timeout``, ``tls``, ``unroutable``, ``nack``,
    #: ``blocked``, ``lost``, ``other``.
    problem: str | None = None
    #: One sentence naming what to fix (never the password).
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when every message was confirmed."""
        return self.problem is None


def _unroutable(config: Config) -> str:
    return (
        f"the broker has no queue named {config.queue_name!r} in virtual host "
        f"{config.message_vhost!r} (the message came back unroutable): "
        f"{missing_queue_fix(config)}"
    )


def _publish_all(
    config: Config, messages: Sequence[Outgoing], result: DeliveryResult, timeout: float
) -> None:
    import pika  # type: ignore[import-untyped,unused-ignore]
    import pika.exceptions as pe  # type: ignore[import-untyped,unused-ignore]

    try:
        # Every node of a cluster in this process's order: pika tries them in turn.
        nodes = node_parameters(config)
        for params in nodes:
            params.blocked_connection_timeout = max(1.0, timeout)
        connection = pika.BlockingConnection(NodeRing(nodes).rotated())
    except Exception as exc:
        diagnosis = describe_connect_error(config, exc)
        result.problem, result.reason = diagnosis.kind.value, diagnosis.sentence
        return
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for message in messages:
            channel.basic_publish(
                exchange="",
                routing_key=config.queue_name,
                body=encode(message.body),
                properties=message_properties(message.message_id),
                mandatory=True,
            )
            result.confirmed.append(message.message_id)
    except pe.UnroutableError:
        result.problem, result.reason = "unroutable", _unroutable(config)
    except pe.NackError:
        result.problem = "nack"
        result.reason = (
            f"the broker refused the message (nack) for queue {config.queue_name!r}: the "
            "queue may be full (x-max-length with reject-publish) or the broker short of "
            "resources; try again later"
        )
    except pe.ConnectionBlockedTimeout:
        result.problem = "blocked"
        result.reason = (
            f"the broker at {config.message_host}:{config.message_port} is blocking "
            "publishers (memory or disk alarm); try again when the alarm is cleared"
        )
    except Exception as exc:
        result.problem = "lost"
        result.reason = (
            f"the connection to {config.message_host}:{config.message_port} failed while "
            f"sending ({type(exc).__name__}: {str(exc)[:200]})"
        )
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def deliver(
    config: Config, messages: Sequence[Outgoing], *, timeout: float = 10.0
) -> DeliveryResult:
    """Publish ``messages`` in order to ``config.queue_name``, each confirmed before the next.

    Stops at the first message not confirmed. Returns the ids the broker confirmed (a
    prefix of ``messages``) and, if not all, the kind of trouble and a sentence naming the
    config key to fix. Never raises for broker trouble; waits at most ``timeout`` seconds.
    """
    if not config.has_broker:
        return DeliveryResult(
            problem="offline",
            reason=f"{config.path} names no 'message_host': there is no broker to send to",
        )
    result = DeliveryResult()
    if not messages:
        return result
    worker = threading.Thread(
        target=_publish_all,
        args=(config, messages, result, timeout),
        name="trainwire-deliver",
        daemon=True,
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        snapshot = DeliveryResult(list(result.confirmed), "timeout")
        snapshot.reason = (
            f"the broker at {config.message_host}:{config.message_port} did not confirm within "
            f"{timeout:g} s (it may be blocking publishers, or the network is slow): try again, "
            "or raise --timeout"
        )
        return snapshot
    if result.problem is None and len(result.confirmed) < len(messages):
        result.problem, result.reason = "other", "the broker did not confirm every message"
    return result


@dataclass
class ReplayResult:
    """What ``replay_spool`` did."""

    spool: str
    #: The records the broker confirmed and that left the spool, in the order sent.
    sent: list[SpoolRecord] = field(default_factory=list)
    #: Records still in the spool afterwards.
    remaining: int = 0
    problem: str | None = None
    reason: str | None = None
    #: Records of other jobs (another identity) in the same spool: left alone.
    others: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing of this job is left in the spool."""
        return self.remaining == 0 and self.problem is None


def spool_for(config: Config) -> Spool:
    """The spool of the runs that use ``config`` (``<model_write_path>/save/``)."""
    return Spool(config.save_dir / SPOOL_FILE)


def replay_order(records: Sequence[SpoolRecord]) -> list[SpoolRecord]:
    """Spool order without repeated ids.

    The spool is written run by run, each run's newest progress before its terminal
    message, so file order already puts every terminal message after its own run's
    progress; it also keeps several earlier runs apart, as the background replay at
    ``init()`` does.
    """
    seen: set[str] = set()
    unique = []
    for record in records:
        if record.message_id not in seen:
            seen.add(record.message_id)
            unique.append(record)
    return unique


def belongs_to(config: Config, body: dict[str, Any]) -> bool:
    """True when ``body`` is a message of the job ``config`` describes."""
    return config.identity.owns(body)


def send_records(config: Config, records: Sequence[SpoolRecord], *, timeout: float) -> ReplayResult:
    """Deliver ``records`` of the spool of ``config`` in order (each with its own
    ``message_id``) and remove from the spool what the broker confirmed.

    Stops at the first record not confirmed, so a terminal message never overtakes the
    progress before it. Raises ``OSError`` when the spool cannot be rewritten.
    """
    spool = spool_for(config)
    result = ReplayResult(str(spool.path))
    if not records:
        return result
    outgoing = [Outgoing(record.message_id, record.body) for record in records]
    delivery = deliver(config, outgoing, timeout=timeout)
    confirmed = set(delivery.confirmed)
    result.sent = [record for record in records if record.message_id in confirmed]
    result.problem, result.reason = delivery.problem, delivery.reason
    if confirmed:
        spool.remove(confirmed)
    ids = {record.message_id for record in records}
    result.remaining = sum(1 for record in spool.read() if record.message_id in ids)
    return result


def replay_spool(config: Config, *, timeout: float = 30.0) -> ReplayResult:
    """Send what the spool of ``config`` holds and remove what the broker confirmed.

    Only the records of this config's job (``cmd``, ``project_key`` and id) are sent;
    records of other jobs sharing the folder are left for their own config. Messages go in
    spool order (each run's terminal message after its progress), each with its original
    ``message_id`` (a consumer can drop the duplicates at-least-once delivery may bring), to
    the config's ``queue_name``; see :func:`send_records`.
    """
    spool = spool_for(config)
    records = []
    others = 0
    for record in replay_order(spool.read()):
        if belongs_to(config, record.body):
            records.append(record)
        else:
            others += 1
    result = send_records(config, records, timeout=timeout)
    result.others = others
    return result
