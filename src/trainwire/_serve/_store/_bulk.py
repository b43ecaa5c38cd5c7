"""A statement run for many rows, in the form each database runs fastest (a leaf module).

SQLite runs one row's statement per row in C (``executemany``). PostgreSQL pays a
protocol round of Bind and Execute, and psycopg's Python, for each row: there the rows go
as one array per column in a single statement (``unnest``), planned once and prepared.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["Bulk", "Column"]


class Column(enum.Enum):
    """The SQL type of a column, as PostgreSQL spells its array's elements."""

    TEXT = "text"
    BIGINT = "bigint"
    FLOAT = "float8"


class Bulk(NamedTuple):
    """One statement for many rows, in two forms with the same meaning."""

    #: One row's values as ``?`` parameters (``executemany``).
    each: str
    #: Every row at once: ``{rows}`` stands for a row source of the columns, one array each.
    whole: str
    #: The types of a row's values, in order.
    columns: tuple[Column, ...]
