"""PostgreSQL through psycopg 3: row locks make several ``serve`` processes safe."""

from __future__ import annotations

from typing import Any

from .._urls import describe_url
from ._dialect import Dialect
from ._records import StoreError
from ._tx import Tx

__all__ = ["PostgresDialect"]

#: The advisory lock that serialises schema creation ("trnw").
_SCHEMA_LOCK = 0x7472_6E77


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
            return psycopg.connect(
                self._raw_url, autocommit=True, connect_timeout=10, application_name="trainwire"
            )
        except psycopg.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{self.url}: cannot connect to PostgreSQL: {text}") from None

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def transient(self, exc: BaseException) -> bool:
        import psycopg.errors

        return isinstance(
            exc, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
        )

    def lock_schema(self, tx: Tx) -> None:
        tx.run("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def outage(self, exc: BaseException) -> bool:
        import psycopg.errors

        # OperationalError: the connection, the server, resources; but class 54 (a value
        # beyond a limit, e.g. an index row too large) is this message's fault.
        if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
            return False
        return isinstance(exc, (StoreError, psycopg.OperationalError, psycopg.InterfaceError))
