"""What differs between the databases, behind one small interface (see ``_sqlite`` and
``_postgres``); everything else is the shared SQL of ``_sql``."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from ._bulk import Bulk
from ._records import StoreError
from ._tx import Tx

__all__ = ["Dialect"]


class Dialect(abc.ABC):
    """How to connect to one database and the few SQL words it spells its own way."""

    #: The DB-API parameter marker (queries are written with ``?``).
    placeholder = "?"
    #: Appended to a SELECT that locks the rows it reads.
    for_update = ""
    #: The column type of an auto-incremented key.
    serial = "INTEGER"
    #: Appended to an ``ORDER BY`` of text so that it sorts by code point, as Python does.
    order = ""
    #: A write transaction holds the whole database's write lock (no row locks to order).
    locks_whole_file = False

    @abc.abstractmethod
    def connect(self) -> Any:
        """A new DB-API connection in autocommit mode; raises :class:`StoreError`."""

    @abc.abstractmethod
    def begin(self, conn: Any) -> None:
        """Start a write transaction (taking what lock the database needs up front)."""

    def pipeline(self, conn: Any) -> AbstractContextManager[Any]:
        """Where the database has one, its pipeline mode on ``conn`` for a block (see
        :meth:`~._tx.Pool.write`); else nothing."""
        del conn
        return contextlib.nullcontext()

    def analyze_jobs(self, tx: Tx) -> None:
        """Refresh the planner's statistics of the jobs table (where plans need them)."""
        del tx  # SQLite finds a batch's jobs by their primary key whatever it knows

    def close(self) -> None:  # noqa: B027 - most databases run nothing in the background
        """Stop what the dialect runs in the background (after the pool closed)."""

    def room_for_updates(self, tx: Tx) -> None:
        """Keep free space in the jobs table's pages, where a row's next version can go
        (PostgreSQL only)."""
        del tx  # SQLite rewrites a row in place

    def lock_schema(self, tx: Tx) -> None:
        """Serialise schema creation between processes (PostgreSQL only)."""
        del tx  # SQLite's BEGIN IMMEDIATE already holds the whole file's write lock

    def transient(self, exc: BaseException) -> bool:
        """True for errors that a new attempt of the same transaction may not meet."""
        return False

    def outage(self, exc: BaseException) -> bool:
        """True when ``exc`` says the database cannot be used now, not that it refused a
        row."""
        return isinstance(exc, StoreError)

    @abc.abstractmethod
    def insert_seen(self, tx: Tx, ids: list[str], now: float) -> set[str]:
        """Insert message ids (sorted: one lock order); the ones that were new."""

    def many(
        self, tx: Tx, bulk: Bulk, rows: Sequence[Sequence[Any]], *, checked: bool = False
    ) -> Any:
        """Run ``bulk`` for ``rows`` (``checked``: see :meth:`~._tx.Tx.many`); the cursor,
        whose ``rowcount`` counts the rows changed (once the result is in), or None."""
        return tx.many(bulk.each, rows, checked=checked)

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition that ``column`` is one of ``values``, and its parameters."""
        return f"{column} IN ({', '.join(['?'] * len(values))})", list(values)
