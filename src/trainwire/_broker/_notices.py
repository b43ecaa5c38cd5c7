"""One clear log line per kind of trouble, said again only after the trouble passed."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from enum import Enum

__all__ = ["Notices", "Trouble"]

log = logging.getLogger("trainwire")


class Trouble(str, Enum):
    """Trouble of the publisher's connection that is not a failed connect."""

    LOST = "lost"  # the connection or its channel went away
    BLOCKED = "blocked"  # the broker blocks publishers (memory or disk alarm)
    CHANNEL = "channel"  # the broker closed the channel
    UNROUTABLE = "unroutable"  # no queue of that name: messages come back
    PUBLISH = "publish"  # basic.publish raised
    PERMISSION = "permission"  # the user may not write to the queue
    LOOP = "loop"  # the I/O loop itself raised
    MOVED = "moved"  # a cluster node refused or stalled: another node is tried


class Notices:
    """Says each key once until :meth:`forget` is called for it (the trouble passed)."""

    def __init__(self) -> None:
        self._said: set[Hashable] = set()

    def say(self, key: Hashable, level: int, text: str) -> None:
        """Log ``text`` unless ``key`` was said and not forgotten since."""
        if key not in self._said:
            self._said.add(key)
            log.log(level, "trainwire: %s", text)

    def said(self, *keys: Hashable) -> bool:
        """True when any of ``keys`` was said and not forgotten."""
        return any(key in self._said for key in keys)

    def forget(self, *keys: Hashable) -> None:
        """The trouble passed: say it again if it comes back."""
        for key in keys:
            self._said.discard(key)
