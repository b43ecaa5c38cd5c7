"""Defaults of ``trainwire serve`` that the command line and the server share (a leaf
module: the command line reads it without importing the server)."""

from __future__ import annotations

__all__ = ["PREFETCH"]

#: Unacknowledged messages the broker may hand one server at once. Half of it is the
#: largest batch stored in one transaction: a transaction's fixed cost (its round trips,
#: each statement's) is then shared by up to 200 messages. A server that dies leaves at
#: most this many to be delivered again (each applied once: the message ids are kept).
PREFETCH = 400
