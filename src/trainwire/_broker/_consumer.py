"""The serve side of RabbitMQ: parameters from URLs, connecting to a cluster's nodes in
turn, opening the queue.

The receiver (``_serve/_receiver.py``) owns the consuming loop and what it does with each
delivery; this module owns what pika is asked. A receiver that lost its node simply
connects again: :func:`connect` then starts with the node after the one it used last, so a
node that went away is tried last. Deliveries that were not acknowledged go back to the
queue (on a quorum queue with their ``x-delivery-count`` raised) and come again; the
receiver's ``message_id`` table keeps their application exactly-once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, overload

import pika  # type: ignore[import-untyped,unused-ignore]
import pika.exceptions  # type: ignore[import-untyped,unused-ignore]

from ._nodes import NodeRing

__all__ = ["BrokerError", "connect", "open_queue", "url_parameters"]

log = logging.getLogger("trainwire.serve")

#: Any failure of the broker connection or channel (catch it to reconnect).
BrokerError: type[Exception] = pika.exceptions.AMQPError
#: What the broker shows as the consumer's name unless told otherwise.
CONNECTION_NAME = "trainwire serve"


@overload
def url_parameters(urls: str, connection_name: str = CONNECTION_NAME) -> Any: ...
@overload
def url_parameters(urls: Sequence[str], connection_name: str = CONNECTION_NAME) -> list[Any]: ...
def url_parameters(urls: str | Sequence[str], connection_name: str = CONNECTION_NAME) -> Any:
    """Connection parameters for an ``amqp://`` URL, or a list of them for several URLs
    (the nodes of one cluster, in the order given). Raises (any exception) for a bad URL."""
    if not isinstance(urls, str):
        return [url_parameters(url, connection_name) for url in urls]
    params = pika.URLParameters(urls)
    params.client_properties = {"connection_name": connection_name}
    return params


class _Rings:
    """Per process, one :class:`NodeRing` per cluster (keyed by its nodes' addresses)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rings: dict[tuple[tuple[str, int, str], ...], NodeRing[int]] = {}

    def _ring(self, nodes: Sequence[Any]) -> NodeRing[int]:
        key = tuple((p.host, p.port, p.virtual_host) for p in nodes)
        return self._rings.setdefault(key, NodeRing(range(len(nodes))))

    def order(self, nodes: Sequence[Any]) -> list[int]:
        """The indices of ``nodes`` in the order to try them now."""
        with self._lock:
            return self._ring(nodes).rotated()

    def connected(self, nodes: Sequence[Any], index: int) -> None:
        """``nodes[index]`` took the connection: the next connect starts after it."""
        with self._lock:
            self._ring(nodes).move_past(index)


_rings = _Rings()


def _blocking(params: Any) -> Any:
    """``pika.BlockingConnection``, with a socket closed right after it was accepted (a node
    going down, a proxy refusing) raised as the connection error it is, not pika's
    ``ValueError("Expected connected socket, but getpeername() failed")``."""
    try:
        return pika.BlockingConnection(params)
    except ValueError as exc:
        if "getpeername" not in str(exc):
            raise
        raise pika.exceptions.AMQPConnectionError(str(exc)) from exc


def connect(params: Any) -> Any:
    """A blocking connection to one node, or to the first of several that takes it.

    ``params`` is one parameter set or a sequence of them (a cluster's nodes). With
    several, each call starts with the node after the one the last connection was to (the
    per-process order is shuffled once), and moves on to the next node at once when one
    fails. Raises what pika raised for the last node tried (see
    ``_sentences.describe_connect_error``).
    """
    if not isinstance(params, Sequence):
        return _blocking(params)
    nodes = list(params)
    error: BaseException | None = None
    for index in _rings.order(nodes):
        try:
            connection = _blocking(nodes[index])
        except pika.exceptions.AMQPConnectionError as exc:
            error = exc
            continue
        _rings.connected(nodes, index)
        return connection
    raise error if error is not None else ValueError("connect() needs at least one node")


def open_queue(conn: Any, queue: str, prefetch: int) -> Any:
    """A channel on ``queue`` with ``prefetch`` unacknowledged deliveries at most.

    A queue that does not exist yet is declared durable (serve may start before any job).
    """
    channel = conn.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        channel = conn.channel()
        channel.queue_declare(queue, durable=True)
        log.info("trainwire serve: declared the durable queue %r", queue)
    channel.basic_qos(prefetch_count=prefetch)
    return channel
