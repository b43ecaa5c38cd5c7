"""Connections and transactions: a small pool, and a cursor that speaks ``?`` everywhere."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ._text import all_storable, storable

__all__ = ["Pool", "Tx", "storable_rows"]


def _params(values: Sequence[Any]) -> tuple[Any, ...]:
    """Query parameters with every string :func:`storable`: written and looked up alike
    (checked joined first: the usual parameters have nothing to change)."""
    if all_storable("".join([v for v in values if isinstance(v, str)])):
        return tuple(values)
    return tuple([storable(v) if isinstance(v, str) else v for v in values])


def storable_rows(rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """Rows for ``executemany`` as :func:`_params` makes them: the strings of a batch are
    checked joined (the usual batch has nothing to change), one by one only otherwise."""
    if all_storable("".join([v for row in rows for v in row if isinstance(v, str)])):
        return rows
    return [_params(r) for r in rows]


class Tx:
    """A cursor that speaks ``?`` placeholders on every database."""

    def __init__(self, conn: Any, placeholder: str) -> None:
        self.conn = conn
        self.placeholder = placeholder

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute one statement; the cursor."""
        return self.conn.execute(self._sql(sql), _params(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        """The first row of a query, or None."""
        row: Sequence[Any] | None = self.run(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Every row of a query."""
        rows: list[Sequence[Any]] = self.run(sql, params).fetchall()
        return rows

    def many(self, sql: str, rows: Sequence[Sequence[Any]], *, checked: bool = False) -> Any:
        """Execute one statement for each of ``rows`` (nothing for none); the cursor, or
        None for no rows.

        ``checked``: every string of ``rows`` was made :func:`storable` where it was made
        (a batch's rows: a few dozen values per message, looked at again for nothing).
        """
        if not rows:
            return None
        cursor = self.conn.cursor()
        cursor.executemany(self._sql(sql), rows if checked else storable_rows(rows))
        return cursor


class Pool:
    """Up to ``size`` idle connections kept for reuse; a connection that failed is dropped."""

    def __init__(
        self,
        connect: Callable[[], Any],
        begin: Callable[[Any], None],
        placeholder: str,
        size: int,
        pipeline: Callable[[Any], AbstractContextManager[Any]],
    ) -> None:
        self._connect = connect
        self._begin = begin
        self._pipeline = pipeline
        self._placeholder = placeholder
        self._size = size
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection, back to the pool afterwards unless something failed."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            # The connection may be broken or mid-transaction: never reuse it.
            with contextlib.suppress(Exception):
                conn.close()
            raise
        with self._lock:
            if len(self._idle) < self._size and not self._closed:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()

    @contextlib.contextmanager
    def write(self, *, pipelined: bool = False) -> Iterator[Tx]:
        """A write transaction: committed at the end, rolled back on an exception.

        ``pipelined``: the statements whose results are not read are sent with the next
        one that is read, the last ones with the COMMIT (PostgreSQL's pipeline mode: a
        round trip per read instead of one per statement). Their errors are raised late,
        at the next read or at the end: not for a block that must catch a statement's own.
        """
        with self.connection() as conn:
            try:
                with self._pipeline(conn) if pipelined else contextlib.nullcontext():
                    self._begin(conn)
                    yield Tx(conn, self._placeholder)
                    conn.execute("COMMIT")
            except BaseException:
                # Outside the pipeline, which refuses more statements once one failed.
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        """A connection for reading (autocommit: every statement sees the newest data)."""
        with self.connection() as conn:
            yield Tx(conn, self._placeholder)

    def close(self) -> None:
        """Close the idle connections; the ones in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
