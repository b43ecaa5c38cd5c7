"""RabbitMQ: the only package that imports pika. Connection parameters, message properties,
the asynchronous publisher, blocking delivery of spooled records, the consumer's connection
and a typed diagnosis of connect failures (callers write the sentences).

The names below are loaded on first use (PEP 562), so that importing the SDK's transport
interface from this package does not import pika.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._consumer import connect, url_parameters
    from ._params import connection_parameters, node_parameters
    from ._sentences import Diagnosis, describe_connect_error

__all__ = [
    "Diagnosis",
    "connect",
    "connection_parameters",
    "describe_connect_error",
    "node_parameters",
    "url_parameters",
]

_HOMES = {
    "Diagnosis": "._sentences",
    "connect": "._consumer",
    "connection_parameters": "._params",
    "describe_connect_error": "._sentences",
    "node_parameters": "._params",
    "url_parameters": "._consumer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
