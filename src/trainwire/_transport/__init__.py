"""Transports: how a run's messages leave the process (AMQP, offline file, nothing)."""

from __future__ import annotations

from ._amqp import AmqpTransport
from ._base import Envelope, Outbox, Transport
from ._local import FileTransport, NullTransport

__all__ = ["AmqpTransport", "Envelope", "FileTransport", "NullTransport", "Outbox", "Transport"]
