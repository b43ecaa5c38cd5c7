"""One blocking connection that asks the broker about a config's queue (for preflight)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .._spec._config import Config, Endpoint
from ._params import connection_parameters

__all__ = ["QueueProbe", "probe_queue"]


@dataclass(frozen=True)
class QueueProbe:
    """What one connection learned: why it failed, or whether the queue exists."""

    #: The connect failure (classify it with ``describe_connect_error``), or None.
    connect_error: BaseException | None = None
    #: The broker's answer when the queue does not exist (``"404 NOT_FOUND - ..."``).
    missing: str | None = None
    #: Messages waiting and consumers attached, when the queue exists.
    messages: int = 0
    consumers: int = 0


def probe_queue(config: Config, timeout: float, node: Endpoint | None = None) -> QueueProbe:
    """Log in, enter the virtual host and look for ``config.queue_name`` (never declaring it).

    ``node``: one node of the config's cluster (``Config.brokers``); default the first.
    """
    import pika  # type: ignore[import-untyped,unused-ignore]
    import pika.exceptions as pe  # type: ignore[import-untyped,unused-ignore]

    try:
        host, port = node if node is not None else (None, 0)
        params = connection_parameters(config, host=host, port=port)
        params.socket_timeout = timeout
        params.blocked_connection_timeout = 10
        connection = pika.BlockingConnection(params)
    except Exception as exc:
        return QueueProbe(connect_error=exc)
    try:
        channel = connection.channel()
        try:
            declared = channel.queue_declare(config.queue_name, passive=True)
        except pe.ChannelClosedByBroker as exc:
            return QueueProbe(missing=f"{exc.reply_code} {exc.reply_text}")
        return QueueProbe(
            messages=declared.method.message_count, consumers=declared.method.consumer_count
        )
    finally:
        with contextlib.suppress(Exception):
            connection.close()
