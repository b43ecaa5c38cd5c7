"""The serve side of RabbitMQ: parameters from a URL, connecting, opening the queue.

The receiver (``_serve/_receiver.py``) owns the consuming loop and what it does with each
delivery; this module owns what pika is asked.
"""

from __future__ import annotations

import logging
from typing import Any

import pika  # type: ignore[import-untyped,unused-ignore]
import pika.exceptions  # type: ignore[import-untyped,unused-ignore]

__all__ = ["BrokerError", "connect", "open_queue", "url_parameters"]

log = logging.getLogger("trainwire.serve")

#: Any failure of the broker connection or channel (catch it to reconnect).
BrokerError: type[Exception] = pika.exceptions.AMQPError


def url_parameters(url: str, connection_name: str) -> Any:
    """Connection parameters for an ``amqp://`` URL; raises (any exception) for a bad URL."""
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": connection_name}
    return params


def connect(params: Any) -> Any:
    """A blocking connection (raises what pika raises; ``describe_connect_error`` words it)."""
    return pika.BlockingConnection(params)


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
