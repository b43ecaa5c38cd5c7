"""A graph's rows: one call's values checked and encoded as the file's next line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import MetricsError
from ._graph_file import SEPARATOR, GraphFile
from ._graph_numbers import BadValue, Number, number

__all__ = ["encode_row", "group_keys", "mismatch"]


def group_keys(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``log_dict``'s keys by graph: ``"graph/series"`` split at the first ``/``, a key
    without ``/`` a graph of its own with one series of the same name."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise MetricsError(f"metric key {key!r} is not a string: use 'graph/series' or 'graph'")
        graph, slash, name = key.partition("/")
        if not slash:
            name = key
        elif not graph or not name:
            raise MetricsError(
                f"metric key {key!r} needs a name on both sides of the '/': "
                f"'graph/series', e.g. 'loss/train'"
            )
        group = groups.get(graph)
        if group is None:
            group = groups[graph] = {}
        group[name] = value
    return groups


def encode_row(g: GraphFile, x: Any, series: Mapping[str, Any]) -> bytes | None:
    """The encoded row of ``g`` at ``x``, or None when it is not to be written.

    Raises MetricsError for a value that is no number or an x that goes backwards.
    """
    kind = type(x)
    if kind is int:
        xv: Number = x
        cells = [str(x)]
    elif kind is float and x - x == 0.0:
        xv = x
        cells = [repr(x)]
    else:
        xv, text = _x_slow(g, x)
        cells = [text]
    if xv < g.last:
        raise MetricsError(
            f"graph {g.name!r}: the x axis ({g.x_axis}) went backwards, from {g.last} "
            f"to {cells[0]}. A graph's x values must never decrease (the platform draws "
            f"rows in file order): pass a step that keeps counting across epochs (e.g. "
            f"epoch * steps_per_epoch + i), or log to a new graph name"
        )
    bad: str | None = None
    for name in g.series:
        value = series[name]
        kind = type(value)
        if kind is float:
            if value - value == 0.0:
                cells.append(repr(value))
                continue
            bad = bad or name
        elif kind is int:
            cells.append(str(value))
        else:
            try:
                text = number(value)[1]
            except BadValue as exc:
                raise MetricsError(f"graph {g.name!r}, series {name!r}: {exc}") from None
            if text:
                cells.append(text)
            else:
                bad = bad or name
    g.last = xv
    if bad is not None:
        g.say_once(
            "nonfinite",
            f"graph {g.name!r} ({g.path}): {bad!r} is {float(series[bad])} at "
            f"{g.x_axis} {cells[0]}; rows holding NaN or infinity are left out of the "
            f"file, since the platform cannot draw them (shown once per graph)",
        )
        return None
    if g.floor is not None:
        if xv <= g.floor:  # the file has this x already: no row twice at one x
            g.say_once(
                "floor",
                f"graph {g.name!r}: {g.path} already has rows up to {g.x_axis} "
                f"{g.floor}; rows up to that {g.x_axis} (a job resumed from an "
                f"earlier checkpoint?) are left out until {g.x_axis} passes {g.floor}, "
                f"so the file's x axis never goes backwards (shown once per graph)",
            )
            return None
        g.floor = None
    return (SEPARATOR.join(cells) + "\n").encode("utf-8")


def _x_slow(g: GraphFile, x: Any) -> tuple[Number, str]:
    try:
        xv, text = number(x)
    except BadValue as exc:
        raise MetricsError(f"graph {g.name!r}, x ({g.x_axis}): {exc}") from None
    if not text:
        raise MetricsError(f"graph {g.name!r}: x ({g.x_axis}) is {x!r}; x must be a finite number")
    return xv, text


def mismatch(g: GraphFile, x_axis: str, series: Mapping[str, Any], from_dict: bool) -> str:
    if g.x_axis != x_axis:
        if from_dict:
            return (
                f"graph {g.name!r} ({g.path.name}) has the x axis {g.x_axis!r}, but "
                f"log_dict() always logs against 'step'; log it with log() and "
                f"x_axis={g.x_axis!r}, or use another graph name in log_dict()"
            )
        return (
            f"graph {g.name!r} ({g.path.name}) has the x axis {g.x_axis!r}; this call "
            f"gives x_axis={x_axis!r}. A graph keeps one x axis: pass "
            f"x_axis={g.x_axis!r}, or log to another graph name"
        )
    missing = [s for s in g.series if s not in series]
    extra = [str(s) for s in series if s not in g.keyset]
    parts = []
    if missing:
        parts.append("lacks " + ", ".join(repr(s) for s in missing))
    if extra:
        parts.append("adds " + ", ".join(repr(s) for s in extra))
    text = (
        f"graph {g.name!r} ({g.path.name}) has the series {', '.join(g.series)}, fixed "
        f"by its first row; this row {' and '.join(parts)}. Every row must give every "
        f"series of its graph (the file never gets half-empty rows). "
    )
    if from_dict:
        keys = ", ".join(f"'{g.name}/{s}'" for s in g.series)
        return text + (
            f"In log_dict(), the keys of one graph in one call make one row: give "
            f"{keys} together, or give metrics logged at different steps different "
            f"prefixes, e.g. 'train/loss' every step and 'val/loss' every epoch"
        )
    return text + (
        "Series measured at different times (e.g. validation once an epoch) belong "
        f"to a graph of their own, e.g. log('val_{g.name}', step, ...)"
    )
