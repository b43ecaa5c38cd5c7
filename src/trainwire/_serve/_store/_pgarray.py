"""A batch's column as one PostgreSQL array in its binary form, packed at once.

psycopg dumps a Python list value by value in Python: type lookups, appends and a
``struct.pack`` per value (148 µs for the 13 columns of 25 job rows, 74 µs here). Here a
column is packed with one precompiled struct per value and joined once, and psycopg sends
the bytes as they are. Imported only where PostgreSQL is used (psycopg is an extra).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from psycopg.adapt import Dumper
from psycopg.pq import Format

from ._bulk import Column

__all__ = ["ENCODING", "PackedArray", "PackedDumper", "pack"]

#: The client encoding serve's sessions set: the text elements are encoded with it.
ENCODING = "UTF8"

#: One dimension: (dimensions, has NULLs, element type, length, lower bound).
_HEAD = struct.Struct(">iiiii")
_LENGTH = struct.Struct(">i")
_NULL = _LENGTH.pack(-1)
_FLOAT = struct.Struct(">id")
_BIGINT = struct.Struct(">iq")
#: Each column type's element type and array type (PostgreSQL's fixed OIDs).
_OIDS = {Column.TEXT: (25, 1009), Column.BIGINT: (20, 1016), Column.FLOAT: (701, 1022)}


class PackedArray(bytes):
    """An array in PostgreSQL's binary form, with the OID of its type."""

    oid: int = 0

    def __new__(cls, data: bytes, oid: int) -> PackedArray:
        array = super().__new__(cls, data)
        array.oid = oid
        return array


class PackedDumper(Dumper):
    """Sends a :class:`PackedArray` as it is (registered on each serve session)."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)

    def upgrade(self, obj: Any, format: Any) -> Dumper:
        dumper = type(self)(type(obj))
        dumper.oid = obj.oid
        return dumper

    def get_key(self, obj: Any, format: Any) -> Any:
        return (type(obj), obj.oid)


def pack(column: Column, values: Sequence[Any]) -> PackedArray:
    """``values`` (None for NULL) as an array of ``column``'s type.

    Ints are welcome in a float column (an int among floats fails psycopg's list dump);
    strings must be storable already (no NUL, no lone surrogate).
    """
    if column is Column.TEXT:
        length = _LENGTH.pack
        items = [_NULL if v is None else length(len(b := v.encode())) + b for v in values]
    else:
        packer = (_FLOAT if column is Column.FLOAT else _BIGINT).pack
        items = [_NULL if v is None else packer(8, v) for v in values]
    element, array = _OIDS[column]
    nulls = None in values
    return PackedArray(_HEAD.pack(1, nulls, element, len(items), 1) + b"".join(items), array)
