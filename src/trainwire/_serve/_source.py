"""Where ``trainwire serve`` consumes from: broker URLs (several for a cluster) or a
training config, turned into a :class:`~._receiver.BrokerSource`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .._errors import TrainwireError
from .._spec._config import Config
from ._receiver import BrokerSource
from ._urls import describe_url

__all__ = ["SourceError", "config_source", "split_urls", "url_source"]

#: What the broker sees as this client's name (management UI, ``rabbitmqctl``).
CONNECTION_NAME = "trainwire serve"
#: Between two URLs of one ``TRAINWIRE_AMQP_URL``: commas and whitespace (a URL holds
#: neither unencoded: a password with one writes it ``%2C`` or ``%20``).
_URL_SEPARATORS = re.compile(r"[,\s]+")


class SourceError(TrainwireError):
    """A broker URL or config that cannot be consumed from; the text says what to fix."""


def split_urls(values: Iterable[str]) -> list[str]:
    """The URLs in ``values``, each of which may hold several separated by commas or
    whitespace (as ``TRAINWIRE_AMQP_URL`` may); empty pieces dropped."""
    return [url for value in values for url in _URL_SEPARATORS.split(value) if url]


def url_source(urls: Sequence[str], queue: str) -> BrokerSource:
    """Consume ``queue`` from whichever of ``urls`` takes a connection (see
    ``_broker._consumer.connect`` for the order).

    Raises :class:`SourceError` naming the URL (without its password) that is not one.
    """
    from .._broker._consumer import url_parameters

    nodes = []
    for url in urls:
        try:
            nodes.append(url_parameters(url, CONNECTION_NAME))
        except Exception as exc:
            raise SourceError(
                f"{describe_url(url)} is not an AMQP URL ({type(exc).__name__}); expected "
                "amqp://USER:PASSWORD@HOST:PORT/VHOST (vhost '/' is %2F)"
            ) from None
    shown = ",".join(describe_url(url) for url in urls)
    return BrokerSource(nodes[0], queue, f"{shown} queue={queue!r}", others=tuple(nodes[1:]))


def config_source(config: Config, queue: str | None) -> BrokerSource:
    """Consume ``queue`` (default: the config's ``queue_name``) from the config's broker
    (every node of a cluster's ``message_host`` list)."""
    from .._broker._params import node_parameters

    if not config.has_broker:
        raise SourceError(
            f"{config.path}: names no 'message_host', so there is no queue to receive from: "
            "add the broker keys (message_host, message_port, message_id, message_pw, "
            "queue_name) or use --amqp-url URL --queue QUEUE"
        )
    queue = queue or config.queue_name
    nodes = node_parameters(config, heartbeat=30)
    for params in nodes:
        params.client_properties = {"connection_name": CONNECTION_NAME}
    description = config.describe_broker()
    if queue != config.queue_name:
        description = description.rsplit(" queue=", 1)[0] + f" queue={queue!r}"
    return BrokerSource(nodes[0], queue, description, config=config, others=tuple(nodes[1:]))
