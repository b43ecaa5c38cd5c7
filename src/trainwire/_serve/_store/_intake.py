"""Reading a delivered body: the message it holds, or why it is refused; never raises.

Nothing a publisher sends may stop the store: a body is read only up to
:data:`~._records.MAX_BODY` bytes, and every failure to read or check it is a refusal with
its reason (:func:`~trainwire._spec._protocol.validate` holds the limits: steps,
identifiers, the cleaned error ``message``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

from ..._spec._protocol import (
    InvalidMessage,
    Kind,
    Rejection,
    StatusMessage,
    decode,
    identity_problem,
    validate,
)
from ._records import MAX_BODY, StoreRejection
from ._text import error_text

__all__ = ["Parsed", "Refusal", "guess_job", "parse"]


@dataclass(frozen=True)
class Refusal:
    """Why a message is not applied: a protocol or a store reason, and the detail."""

    reason: Rejection | StoreRejection
    detail: str

    @classmethod
    def of(cls, exc: InvalidMessage) -> Refusal:
        """The refusal an ``InvalidMessage`` stands for."""
        return cls(exc.reason, exc.detail)


#: A body read: the message, or why not (exactly one of the two is set).
Parsed = tuple[Optional[StatusMessage], Optional[Refusal]]


def parse(body: bytes) -> Parsed:
    """The message in ``body``, or why not; never raises, whatever the body holds."""
    if len(body) > MAX_BODY:
        return None, Refusal(
            StoreRejection.TOO_LARGE,
            f"the body has {len(body):,} bytes, more than the {MAX_BODY:,} a status message "
            "may have: not read",
        )
    try:
        msg = validate(decode(body))
    except InvalidMessage as exc:
        return None, Refusal.of(exc)
    except RecursionError:
        return None, Refusal(Rejection.MALFORMED_JSON, "the JSON is nested too deeply to read")
    except Exception as exc:  # validate promises InvalidMessage only; never fail a batch
        return None, Refusal(Rejection.BAD_FIELD, f"cannot be checked: {error_text(exc)}")
    return msg, None


def guess_job(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """Best effort (kind, job id, status) of a rejected body, to file it under its job."""
    if len(raw) > MAX_BODY:
        return None, None, None
    try:
        body = decode(raw)
    except Exception:  # InvalidMessage, or anything a hostile body makes the parser raise
        return None, None, None
    cmd, status = body.get("cmd"), body.get("status")
    kind: Kind | None = None
    if isinstance(cmd, str):
        with contextlib.suppress(ValueError):
            kind = Kind.from_cmd(cmd)
    job_id = body.get(kind.id_field) if kind else None
    return (
        kind.value if kind else None,
        job_id if _is_name(job_id) else None,
        status if _is_name(status) else None,
    )


def _is_name(value: object) -> bool:
    """Whether a rejected body's text may file it under a job (and so go into an index)."""
    return identity_problem(value) is None
