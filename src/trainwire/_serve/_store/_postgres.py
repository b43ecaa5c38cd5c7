"""PostgreSQL through psycopg 3: row locks make several ``serve`` processes safe."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from .._urls import describe_url
from ._bulk import Bulk, Column
from ._dialect import Dialect
from ._records import StoreError
from ._tx import Tx, storable_rows

__all__ = ["PostgresDialect"]

#: The advisory lock that serialises schema creation ("trnw").
_SCHEMA_LOCK = 0x7472_6E77


#: What serve's sessions tell the planner a page read out of order costs (PostgreSQL's
#: default is 4, for spinning disks). A status service's tables live in memory: with 4, a
#: batch's lock query and update read every row of a jobs table of a thousand rows (0.6 ms)
#: to find 25 of them (0.15 ms by the key's index).
RANDOM_PAGE_COST = 1.1

#: The jobs table's storage parameter (:meth:`PostgresDialect.room_for_updates`).
JOBS_FILLFACTOR = "fillfactor=50"

#: The whole form of each bulk statement run so far.
_WHOLE: dict[Bulk, str] = {}


class PostgresDialect(Dialect):
    """A PostgreSQL database named by a ``postgresql://`` URL (libpq reads the rest)."""

    placeholder = "%s"
    for_update = " FOR UPDATE"
    serial = "BIGSERIAL"
    order = ' COLLATE "C"'

    def __init__(self, url: str) -> None:
        self._raw_url = url
        self.url = describe_url(url)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError(
                f"{self.url}: PostgreSQL needs the psycopg package: pip install 'trainwire[serve]'"
            ) from None

    def connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(
                self._raw_url, autocommit=True, connect_timeout=10, application_name="trainwire"
            )
        except psycopg.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{self.url}: cannot connect to PostgreSQL: {text}") from None
        from ._pgarray import ENCODING, PackedArray, PackedDumper

        try:
            conn.execute(
                f"SET random_page_cost = {RANDOM_PAGE_COST}; SET client_encoding = '{ENCODING}'"
            )
            conn.adapters.register_dumper(PackedArray, PackedDumper)
        except BaseException:
            conn.close()
            raise
        return conn

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def pipeline(self, conn: Any) -> AbstractContextManager[Any]:
        import psycopg

        if not psycopg.Pipeline.is_supported():  # a libpq older than 14
            return contextlib.nullcontext()
        pipeline: AbstractContextManager[Any] = conn.pipeline()
        return pipeline

    def transient(self, exc: BaseException) -> bool:
        import psycopg.errors

        return isinstance(
            exc, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
        )

    def insert_seen(self, tx: Tx, ids: list[str], now: float) -> set[str]:
        from ._pgarray import pack

        rows = tx.all(
            "INSERT INTO tw_seen (message_id, received_at) SELECT unnest(%b::text[]), ?"
            " ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
            (pack(Column.TEXT, ids), now),
        )
        return {str(r[0]) for r in rows}

    def many(
        self, tx: Tx, bulk: Bulk, rows: Sequence[Sequence[Any]], *, checked: bool = False
    ) -> Any:
        from ._pgarray import pack

        if not rows:
            return None
        sql = _WHOLE.get(bulk)
        if sql is None:
            arrays = ", ".join(f"%b::{column.value}[]" for column in bulk.columns)
            sql = _WHOLE[bulk] = bulk.whole.replace("{rows}", f"unnest({arrays})")
        columns = zip(*(rows if checked else storable_rows(rows)))
        return tx.run(sql, [pack(c, col) for c, col in zip(bulk.columns, columns)])

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        from ._pgarray import pack

        # One text whatever the number of values: planned once, then prepared by psycopg.
        return f"{column} = ANY(%b::text[])", [pack(Column.TEXT, values)]

    def analyze_jobs(self, tx: Tx) -> None:
        # Never wait long behind a VACUUM or another server's ANALYZE: the batch's ack waits.
        tx.run("SET lock_timeout = 1000")
        try:
            tx.run("ANALYZE tw_jobs")
        finally:
            tx.run("RESET lock_timeout")

    def room_for_updates(self, tx: Tx) -> None:
        # Half of each page free: a job's row is rewritten by every message, and a new
        # version on the same page is a HOT update (no index entry). New pages only.
        options = tx.one("SELECT reloptions FROM pg_class WHERE oid = 'tw_jobs'::regclass")
        if options is None or JOBS_FILLFACTOR not in (options[0] or []):
            tx.run(f"ALTER TABLE tw_jobs SET ({JOBS_FILLFACTOR})")

    def lock_schema(self, tx: Tx) -> None:
        tx.run("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def outage(self, exc: BaseException) -> bool:
        import psycopg.errors

        # OperationalError: the connection, the server, resources; but class 54 (a value
        # beyond a limit, e.g. an index row too large) is this message's fault.
        if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
            return False
        return isinstance(exc, (StoreError, psycopg.OperationalError, psycopg.InterfaceError))
