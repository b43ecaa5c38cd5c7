"""The project-key rule: which ``project_key`` a message must carry.

A message for a registered job must carry exactly that job's key; otherwise, when keys are
given on the command line or any job is registered, the key must be one of those; with no
keys configured at all every key is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..._spec._protocol import InvalidMessage, Rejection, StatusMessage
from ._text import TEXT, mask_key
from ._tx import Tx

__all__ = ["AnyRegistered", "key_problems"]

#: Values per ``IN (...)`` list (well under every database's parameter limit).
CHUNK = 400
#: A message's (kind, job id, project key).
KeyUse = tuple[str, str, str]


class AnyRegistered:
    """Whether any job is registered, asked when made and answered when called: in a
    pipelined transaction the question goes with the batch's first statement that is read."""

    def __init__(self, tx: Tx) -> None:
        self._cursor = tx.run("SELECT EXISTS (SELECT 1 FROM tw_jobs WHERE registered = 1)")

    def __call__(self) -> bool:
        row = self._cursor.fetchone()
        return row is not None and bool(row[0])


def key_problems(
    tx: Tx,
    msgs: Iterable[StatusMessage],
    project_keys: frozenset[str],
    registered: AnyRegistered,
) -> dict[KeyUse, InvalidMessage | None]:
    """Why each (kind, job id, project key) of ``msgs`` is not accepted (None: it is).

    A few statements for the whole batch: whether any job is registered (``registered``),
    and only then the registered keys of these jobs and which of these keys are registered.
    """
    uses = {(TEXT[m.kind], m.job_id, m.project_key) for m in msgs}
    if not uses:
        return {}
    any_registered = registered()
    job_keys: dict[tuple[str, str], str] = {}
    known: set[str] = set()
    if any_registered:
        job_keys = _job_keys(tx, {(kind, job_id) for kind, job_id, _ in uses})
        known = _registered(tx, sorted({key for _, _, key in uses}))
    return {
        use: _problem(use, job_keys.get(use[:2]), use[2] in known, project_keys, any_registered)
        for use in uses
    }


def _job_keys(tx: Tx, jobs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The registered project keys of ``jobs`` (registered ones only)."""
    found: dict[tuple[str, str], str] = {}
    for kind in sorted({k for k, _ in jobs}):
        ids = sorted(job_id for k, job_id in jobs if k == kind)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = tx.all(
                "SELECT job_id, project_key FROM tw_jobs WHERE registered = 1 AND kind = ?"
                f" AND job_id IN ({', '.join(['?'] * len(chunk))})",
                [kind, *chunk],
            )
            found.update(((kind, str(r[0])), r[1]) for r in rows if r[1] is not None)
    return found


def _registered(tx: Tx, keys: list[str]) -> set[str]:
    """Which of ``keys`` some registered job has."""
    found: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = tx.all(
            "SELECT DISTINCT project_key FROM tw_jobs WHERE registered = 1"
            f" AND project_key IN ({', '.join(['?'] * len(chunk))})",
            chunk,
        )
        found.update(str(r[0]) for r in rows)
    return found


def _problem(
    use: KeyUse,
    job_key: str | None,
    key_registered: bool,
    project_keys: frozenset[str],
    any_registered: bool,
) -> InvalidMessage | None:
    kind, job_id, key = use
    if job_key is not None:
        if job_key == key:
            return None
        return InvalidMessage(
            Rejection.UNKNOWN_PROJECT_KEY,
            f"project_key {mask_key(key)} is not the one in the registered "
            f"config of {kind} job {job_id!r}",
        )
    if key in project_keys or key_registered:
        return None
    if project_keys or any_registered:
        return InvalidMessage(
            Rejection.UNKNOWN_PROJECT_KEY,
            f"project_key {mask_key(key)} is not one of the configured project "
            "keys (--project-key and the registered job configs)",
        )
    return None
