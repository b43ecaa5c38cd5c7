"""Transports: how a run's messages leave the process (AMQP, offline file, nothing)."""

from __future__ import annotations

from ._base import Envelope, Outbox, Transport
from ._local import FileTransport, NullTransport

# The AMQP transport (``._amqp``) is imported where a run first needs it, so that
# ``import trainwire`` stays cheap and offline runs never load it.
__all__ = ["Envelope", "FileTransport", "NullTransport", "Outbox", "Transport"]
