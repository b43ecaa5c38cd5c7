"""The order in which the publisher and the consumer try a cluster's nodes, and backoff.

Each process shuffles the nodes once, so that a fleet of trainings spreads over the
cluster instead of piling onto the first node of a shared config. When the node in use
goes away, the next one is tried at once: the others are most likely up. Only after a
whole round of nodes failed does the caller wait, with exponential backoff and jitter.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["BACKOFF_ENDING", "BACKOFF_FIRST", "BACKOFF_MAX", "Backoff", "NodeRing"]

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0
#: Once the terminal message waits, reconnect at least this often.
BACKOFF_ENDING = 1.0

T = TypeVar("T")


class NodeRing(Generic[T]):
    """A cluster's nodes in this process's order; counts the failures of the current round."""

    def __init__(self, nodes: Sequence[T], *, shuffle: bool = True) -> None:
        if not nodes:
            raise ValueError("a NodeRing needs at least one node")
        self.nodes = list(nodes)
        if shuffle:
            random.shuffle(self.nodes)
        self._index = 0
        self._failed = 0

    @property
    def current(self) -> T:
        """The node to try now."""
        return self.nodes[self._index]

    def rotated(self) -> list[T]:
        """Every node, the current one first (for a client that tries a list in order)."""
        return self.nodes[self._index :] + self.nodes[: self._index]

    def move_past(self, node: T) -> None:
        """``node`` took a connection: the next call of :meth:`rotated` starts after it."""
        self._index = (self.nodes.index(node) + 1) % len(self.nodes)

    def worked(self) -> None:
        """The current node took a connection: a new round starts with it."""
        self._failed = 0

    def next(self) -> bool:
        """The current node failed or went away: move on. True when a whole round failed
        (every node in turn): the caller waits before the next round."""
        self._index = (self._index + 1) % len(self.nodes)
        self._failed += 1
        if self._failed >= len(self.nodes):
            self._failed = 0
            return True
        return False


class Backoff:
    """Exponential backoff with jitter between rounds of connect attempts."""

    def __init__(self) -> None:
        self._next = BACKOFF_FIRST

    def reset(self) -> None:
        """A connection worked for a while: the next trouble is a fresh start, not a storm."""
        self._next = BACKOFF_FIRST

    def delay(self, *, ending: bool = False) -> float:
        """The pause before the next round (at most ``BACKOFF_ENDING`` when ``ending``)."""
        delay = self._next * random.uniform(0.5, 1.5)
        self._next = min(self._next * 2, BACKOFF_MAX)
        return min(delay, BACKOFF_ENDING) if ending else delay
