"""The query parameters of ``/api/jobs`` and ``/api/jobs/counts`` read into a
:class:`~._store.JobQuery`; every bad value is a :class:`QueryError` that says what is
expected."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import TypeVar

from .._spec._protocol import JobState, Kind
from ._store import JobPage, JobQuery, SortKey, decode_cursor

__all__ = ["QueryError", "job_query", "next_link"]

E = TypeVar("E", JobState, Kind)
#: Longest id search.
MAX_SEARCH = 200


class QueryError(ValueError):
    """A query parameter is not one ``/api/jobs`` takes; the text says which and why."""


def _last(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _enums(query: dict[str, list[str]], name: str, members: Sequence[E]) -> tuple[E, ...]:
    allowed = {e.value: e for e in members}
    picked = []
    for value in query.get(name, []):
        for part in value.split(","):
            if part not in allowed:
                raise QueryError(f"query parameter {name!r} must be one of {sorted(allowed)}")
            picked.append(allowed[part])
    return tuple(dict.fromkeys(picked))


def _sort(text: str | None) -> tuple[SortKey, bool]:
    if text is None:
        return SortKey.CREATED, True
    descending = text.startswith("-")
    try:
        return SortKey(text.lstrip("-")), descending
    except ValueError:
        names = [k.value for k in SortKey]
        raise QueryError(
            f"query parameter 'sort' must be one of {names}, '-' first for descending"
        ) from None


def job_query(query: dict[str, list[str]], limit: int | None) -> JobQuery:
    """The jobs ``query`` asks for (``state``, ``kind``, ``project_key``, ``q``, ``sort``,
    ``cursor``; ``limit`` read by the caller)."""
    search = _last(query, "q")
    if search is not None and len(search) > MAX_SEARCH:
        raise QueryError(f"query parameter 'q' is longer than {MAX_SEARCH} characters")
    cursor = _last(query, "cursor")
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise QueryError(f"query parameter 'cursor': {exc}") from None
    sort, descending = _sort(_last(query, "sort"))
    return JobQuery(
        states=_enums(query, "state", list(JobState)),
        kinds=_enums(query, "kind", list(Kind)),
        project_key=_last(query, "project_key"),
        search=search or None,
        sort=sort,
        descending=descending,
        limit=limit,
        after=after,
    )


def next_link(path: str, query: dict[str, list[str]], page: JobPage) -> str | None:
    """The ``Link`` header of a page that has a next one (RFC 8288, ``rel="next"``)."""
    if page.next is None:
        return None
    params = {k: v for k, v in query.items() if k != "cursor"}
    params["cursor"] = [page.next]
    return f'<{path}?{urllib.parse.urlencode(params, doseq=True)}>; rel="next"'
