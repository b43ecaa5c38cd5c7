"""The project-key rule: which ``project_key`` a message must carry.

A message for a registered job must carry exactly that job's key; otherwise, when keys are
given on the command line or any job is registered, the key must be one of those; with no
keys configured at all every key is accepted.
"""

from __future__ import annotations

from ..._spec._protocol import InvalidMessage, Rejection, StatusMessage
from ._text import mask_key
from ._tx import Tx

__all__ = ["key_problem"]


def key_problem(tx: Tx, msg: StatusMessage, project_keys: frozenset[str]) -> InvalidMessage | None:
    """Why ``msg``'s project key is not accepted, or None when it is."""
    # One round trip: the job's registered key, whether any registered job has this
    # key, and whether any job is registered at all.
    row = tx.one(
        "SELECT (SELECT project_key FROM tw_jobs WHERE kind = ? AND job_id = ?"
        " AND registered = 1),"
        " EXISTS (SELECT 1 FROM tw_jobs WHERE registered = 1 AND project_key = ?),"
        " EXISTS (SELECT 1 FROM tw_jobs WHERE registered = 1)",
        (msg.kind.value, msg.job_id, msg.project_key),
    )
    assert row is not None
    job_key, key_registered, any_registered = row[0], bool(row[1]), bool(row[2])
    if job_key is not None:
        if job_key == msg.project_key:
            return None
        return InvalidMessage(
            Rejection.UNKNOWN_PROJECT_KEY,
            f"project_key {mask_key(msg.project_key)} is not the one in the registered "
            f"config of {msg.kind.value} job {msg.job_id!r}",
        )
    if msg.project_key in project_keys or key_registered:
        return None
    if project_keys or any_registered:
        return InvalidMessage(
            Rejection.UNKNOWN_PROJECT_KEY,
            f"project_key {mask_key(msg.project_key)} is not one of the configured project "
            "keys (--project-key and the registered job configs)",
        )
    return None
