"""What pika is given: connection parameters (TLS included) and message properties.

One home for both, so that the asynchronous publisher, blocking delivery, the probe and
serve connect and publish the same way.
"""

from __future__ import annotations

import time
from typing import Any

from .._spec._config import Config, Endpoint
from .._spec._protocol import CONTENT_TYPE
from ._diagnosis import TlsFileError

__all__ = [
    "HEARTBEAT",
    "connection_parameters",
    "message_properties",
    "node_parameters",
    "nodes_of",
]

HEARTBEAT = 20


class _Stamped:
    """The properties of the current second, copied per message: building a
    ``BasicProperties`` sets every one of its fields, about three times a copy's cost."""

    #: (second, template), replaced as one tuple: other threads read it meanwhile.
    current: tuple[int, Any] = (-1, None)


def message_properties(message_id: str) -> Any:
    """The AMQP properties of every message trainwire publishes: persistent JSON."""
    now = int(time.time())
    second, template = _Stamped.current
    if second != now:
        import pika

        template = pika.BasicProperties(
            content_type=CONTENT_TYPE,
            content_encoding="utf-8",
            delivery_mode=2,
            timestamp=now,
            app_id="trainwire",
        )
        _Stamped.current = (now, template)
    properties = object.__new__(type(template))
    properties.__dict__ = template.__dict__.copy()
    properties.message_id = message_id
    return properties


def _tls_options(config: Config, server_name: str | None) -> Any:
    """pika's TLS options for ``config``; raises :class:`TlsFileError` naming the key."""
    import ssl

    import pika

    ca_file = config.message_ca_file
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsFileError(("message_ca_file",), ca_file, str(exc)) from exc
    if config.message_cert_file:
        key_file = str(config.message_key_file) if config.message_key_file else None
        try:
            context.load_cert_chain(str(config.message_cert_file), key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            keys = ("message_cert_file", "message_key_file")
            if "KEY_VALUES_MISMATCH" in str(exc).upper():
                keys = ("message_key_file", "message_cert_file")
            raise TlsFileError(keys, config.message_cert_file, str(exc)) from exc
    return pika.SSLOptions(context, server_hostname=server_name)


def connection_parameters(
    config: Config, *, heartbeat: int = HEARTBEAT, host: str | None = None, port: int = 0
) -> Any:
    """pika connection parameters for a config (TLS when ``message_tls`` is true).

    ``host``/``port`` name one node of the config's cluster (default: the first).
    Raises :class:`TlsFileError` when a TLS file of the config cannot be loaded.
    """
    import pika

    host = host or config.message_host
    return pika.ConnectionParameters(
        host=host,
        port=port or config.message_port,
        virtual_host=config.message_vhost,
        credentials=pika.PlainCredentials(config.message_id, config.message_pw),
        heartbeat=heartbeat,
        connection_attempts=1,
        socket_timeout=5,
        stack_timeout=10,
        blocked_connection_timeout=None,
        ssl_options=_tls_options(config, host) if config.message_tls else None,
        client_properties={"connection_name": "trainwire", "product": "trainwire"},
    )


def node_parameters(config: Config, *, heartbeat: int = HEARTBEAT) -> list[Any]:
    """One parameter set per broker node of ``config`` (``brokers``), in file order.

    Raises :class:`TlsFileError` when a TLS file of the config cannot be loaded.
    """
    return [
        connection_parameters(config, heartbeat=heartbeat, host=node.host, port=node.port)
        for node in nodes_of(config)
    ]


def nodes_of(config: Config) -> tuple[Endpoint, ...]:
    """Every broker node of ``config``, in file order (one for a single ``message_host``)."""
    if config.brokers:
        return config.brokers
    return (Endpoint(config.message_host or "", config.message_port),)
