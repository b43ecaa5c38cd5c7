"""Numbers in graph files: the shortest text that reads back the same, and reading cells."""

from __future__ import annotations

import re
import struct
from typing import Any, Union

__all__ = ["NUMBER_RE", "BadValue", "Number", "number", "parse_number"]

Number = Union[int, float]

#: A cell the platform can read as a number.
NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INT_RE = re.compile(r"[+-]?\d+\Z")


def parse_number(cell: str) -> Number:
    """A cell matching ``NUMBER_RE`` as the number it reads as (int without a point)."""
    return int(cell) if _INT_RE.match(cell) else float(cell)


class BadValue(Exception):
    """Why a value is not a number (the caller adds graph and series)."""


def _short(value: float) -> str:
    return repr(value) if value - value == 0.0 else ""


def _short_narrow(value: float, dtype: Any) -> str:
    """Shortest text of a 16/32-bit float that reads back to the same value."""
    if value - value != 0.0:
        return ""
    itemsize = getattr(dtype, "itemsize", 8)
    if not isinstance(itemsize, int) or itemsize >= 8:
        return repr(value)
    code = "e" if str(dtype) in ("float16", "torch.float16") else "f"
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            back = struct.unpack(code, struct.pack(code, float(text)))[0]
        except (OverflowError, struct.error):
            continue
        if back == value:
            return repr(float(text))
    return repr(value)


def number(value: Any) -> tuple[Number, str]:
    """``(value, cell text)``; the text is "" for NaN and infinities. Raises BadValue."""
    if isinstance(value, bool):
        raise BadValue(f"{value!r} is a bool, not a number; log float(flag) if you mean 0/1")
    if isinstance(value, (str, bytes, bytearray)):
        raise BadValue(f"{value!r} is text, not a number; convert it with float(...) first")
    if isinstance(value, int):
        number = int(value)
        return number, str(number)
    if isinstance(value, float):  # also numpy.float64
        real = float(value)
        return real, _short(real)
    if isinstance(value, complex):
        raise BadValue(f"{value!r} is a complex number; log its .real or abs()")
    if hasattr(value, "dtype") and callable(getattr(value, "item", None)):
        # NumPy scalars and arrays, torch tensors: exactly one element
        try:
            item = value.item()
        except (ValueError, RuntimeError, TypeError):
            shape = tuple(getattr(value, "shape", ()))
            raise BadValue(
                f"is an array of shape {shape}, not one number; log a single number, "
                f"e.g. loss.item() or values.mean()"
            ) from None
        if isinstance(item, bool):
            raise BadValue(f"{item!r} is a bool, not a number; log float(flag) if you mean 0/1")
        if isinstance(item, int):
            return item, str(item)
        if isinstance(item, float):
            return item, _short_narrow(item, value.dtype)
        if isinstance(item, complex):
            raise BadValue(f"{item!r} is a complex number; log its .real or abs()")
        value = item
    try:
        real = float(value)
    except (TypeError, ValueError, OverflowError):
        text = repr(value)
        if len(text) > 60:
            text = text[:57] + "..."
        raise BadValue(
            f"{text} ({type(value).__name__}) is not a number; log a Python or NumPy number "
            f"or a 0-d tensor"
        ) from None
    return real, _short(real)
