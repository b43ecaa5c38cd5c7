"""Text the store writes and shows: what every database and JSON answer can hold, cut to
its limit, times in ISO 8601, project keys shortened."""

from __future__ import annotations

import enum
import json
import re
import time

from ..._spec._protocol import JobState, Kind, Status

__all__ = [
    "BODY_LIMIT",
    "DETAIL_LIMIT",
    "TEXT",
    "all_storable",
    "body_text",
    "cut",
    "error_text",
    "iso_time",
    "mask_body",
    "mask_key",
    "message_id_text",
    "storable",
]

#: The text each kind, status and job state is stored as: ``TEXT[member]`` is
#: ``member.value`` at a sixth of its cost (the store writes several per message).
TEXT: dict[enum.Enum, str] = {m: m.value for e in (Kind, Status, JobState) for m in e}
#: Bodies of rejected messages are kept up to this many characters.
BODY_LIMIT = 4096
#: A rejection's detail is kept up to this many characters.
DETAIL_LIMIT = 1000
#: What no database column and no JSON answer can hold: NUL and lone surrogates.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` as every database can store and every JSON answer can show it: a NUL or a
    lone surrogate (from a JSON escape such as ``"\\ud800"``) becomes U+FFFD."""
    if text.isascii():  # the usual case: only a NUL to look for, without the pattern
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def all_storable(text: str) -> bool:
    """Whether :func:`storable` leaves ``text`` as it is (a check of many values joined)."""
    if text.isascii():
        return "\x00" not in text
    return _UNSTORABLE.search(text) is None


def cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters, an ellipsis last when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def message_id_text(value: object) -> str | None:
    """An AMQP ``message_id`` as the text the store keeps, or None for none or empty.

    Bytes that are not UTF-8 are written with backslash escapes (``b"\\xff"`` -> ``\\xff``),
    always the same way, so that a second copy is still found as a duplicate.
    """
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    if not isinstance(value, str) or not value:
        return None
    return storable(value)


def body_text(raw: bytes) -> str:
    """The first :data:`BODY_LIMIT` characters of a body, for the log of rejected ones
    (:func:`storable`: a NUL becomes U+FFFD)."""
    return storable(raw[: BODY_LIMIT * 4].decode("utf-8", "replace")[:BODY_LIMIT])


def error_text(exc: BaseException) -> str:
    """An exception as one storable line: its type and the first line of its text."""
    text = str(exc).strip().splitlines()
    return storable(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)


def iso_time(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds, or None."""
    if ts is None:
        return None
    try:
        day = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):  # not a time this platform can show
        return None
    return day + f".{int(ts % 1 * 1000):03d}Z"


def mask_key(key: str) -> str:
    """A project key shortened for display: its first 4 characters and its length."""
    return f"{key[:4]}… ({len(key)} chars)" if len(key) > 4 else "…"


def mask_body(body: str | None) -> str | None:
    """A logged body with its ``project_key`` shortened (as it was stored if not JSON)."""
    if body is None:
        return None
    try:
        value = json.loads(body)
        if not isinstance(value, dict) or not isinstance(value.get("project_key"), str):
            return body
        value["project_key"] = mask_key(value["project_key"])
        # An escape in the body such as "\ud800" decodes to a lone surrogate: keep it out.
        return storable(json.dumps(value, ensure_ascii=False))
    except Exception:  # not JSON, nested too deeply, ...: shown as it was stored
        return body
