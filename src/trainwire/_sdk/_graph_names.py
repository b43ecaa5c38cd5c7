"""Graph, series and x axis names: what a column or a file name of a graph may be."""

from __future__ import annotations

import unicodedata

from .._errors import MetricsError
from .._spec._layout import GRAPH_SUFFIX

__all__ = ["MAX_NAME_BYTES", "MAX_NAME_CHARS", "validate_graph_name", "validate_series_name"]

#: Longest graph, series or x axis name, in characters and in UTF-8 bytes.
MAX_NAME_CHARS = 100
MAX_NAME_BYTES = 200
SUFFIX = GRAPH_SUFFIX

_WINDOWS_FORBIDDEN = '<>:"|?*'
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def _check_common(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise MetricsError(f"{what} name must be a string, got {type(name).__name__} {name!r}")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise MetricsError(
                f"{what} name {name!r} contains the control character {char!r} (a line "
                f"break, NUL, tab ...): the file holds one row per line; remove it"
            )
    if not name.strip():
        raise MetricsError(f"{what} name {name!r} is empty: give it a name, e.g. 'loss'")
    if name != name.strip():
        raise MetricsError(
            f"{what} name {name!r} starts or ends with a space: remove it (the file's "
            f"separator is ', ', so the space would be lost when the file is read)"
        )
    if "," in name:
        raise MetricsError(
            f"{what} name {name!r} contains a comma, which separates the file's columns: "
            f"use another character, e.g. '_'"
        )
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise MetricsError(f"{what} name {name!r} is not valid Unicode text") from None
    if len(name) > MAX_NAME_CHARS or size > MAX_NAME_BYTES:
        raise MetricsError(
            f"{what} name {name[:20]!r}... is too long ({len(name)} characters, {size} "
            f"bytes in UTF-8): at most {MAX_NAME_CHARS} characters and {MAX_NAME_BYTES} bytes"
        )
    return name


def validate_series_name(name: object, what: str = "series") -> str:
    """Return ``name`` when it can be a column of a metrics file, else raise MetricsError."""
    return _check_common(name, what)


def validate_graph_name(name: object) -> str:
    """Return ``name`` when ``<name>.log`` is a safe, portable file name directly in the
    metrics folder, else raise :class:`MetricsError`. Unicode (Korean too) is fine."""
    name = _check_common(name, "graph")
    if "/" in name or "\\" in name:
        raise MetricsError(
            f"graph name {name!r} contains '/' or '\\': a graph is one file directly in the "
            f"metrics folder, so its name cannot point into another folder; use e.g. '_' "
            f"instead (log_dict splits 'graph/series' keys at the first '/')"
        )
    if name.startswith("."):
        raise MetricsError(
            f"graph name {name!r} starts with '.': '..' would leave the metrics folder and "
            f"'.name' makes a hidden file; start the name with a letter or a digit"
        )
    for char in _WINDOWS_FORBIDDEN:
        if char in name:
            raise MetricsError(
                f"graph name {name!r} contains {char!r}, which file names on Windows cannot "
                f"hold (< > : \" | ? *); use e.g. '_' instead"
            )
    if name.split(".")[0].upper() in _WINDOWS_DEVICES:
        raise MetricsError(
            f"graph name {name!r} is a device name on Windows (CON, PRN, AUX, NUL, "
            f"COM1-9, LPT1-9), so {name + SUFFIX!r} is not a portable file name; choose another"
        )
    return name
