"""Opening the store a database URL names."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from .._urls import POSTGRES_SCHEMES, describe_url
from ._base import Store
from ._postgres import PostgresDialect
from ._records import StoreError
from ._sql import SqlStore
from ._sqlite import SqliteDialect

__all__ = ["DEFAULT_DB_URL", "open_store"]

#: The default database: a SQLite file in the current folder.
DEFAULT_DB_URL = "sqlite:///trainwire-serve.sqlite3"


def open_store(url: str, *, cwd: Path | None = None) -> Store:
    """Open (and create the tables of) the database named by ``url``.

    ``sqlite:///relative.sqlite3``, ``sqlite:////absolute/path.sqlite3`` or a plain file
    path open SQLite; ``postgresql://user:pw@host:port/db`` opens PostgreSQL.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        return SqlStore(url, PostgresDialect(url))
    if scheme == "sqlite":
        rest = url.split("://", 1)[1]
        if not rest.startswith("/") or rest == "/":
            raise StoreError(
                f"{url}: a SQLite URL is sqlite:///file.sqlite3 (relative to the current "
                "folder) or sqlite:////absolute/file.sqlite3"
            )
        path = Path(urllib.parse.unquote(rest[1:]))
    elif scheme:
        raise StoreError(
            f"{describe_url(url)}: unknown database {scheme!r}: use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        )
    else:
        path = Path(url)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return SqlStore(url, SqliteDialect(url, path))
