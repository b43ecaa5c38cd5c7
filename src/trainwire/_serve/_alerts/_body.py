"""An alert as its receiver gets it: the body (JSON, or Slack's ``{"text": ...}``), the
link to the job page, and the HMAC-SHA256 signature of the body."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from typing import Any

__all__ = ["EVENT_HEADER", "SIGNATURE_HEADER", "event_body", "job_link", "signature"]

#: The header holding ``sha256=<hex>``: HMAC-SHA256 of the body with the shared secret.
SIGNATURE_HEADER = "X-Trainwire-Signature"
#: The header holding the event id (the same in every copy of one event).
EVENT_HEADER = "X-Trainwire-Event-Id"


def job_link(base: str, kind: str, job_id: str) -> str:
    """The job's page under ``base`` (which ends with ``/``)."""
    return f"{base}jobs/{urllib.parse.quote(kind, safe='')}/{urllib.parse.quote(job_id, safe='')}"


def _slack_escaped(text: str) -> str:
    # Slack reads <...> as links and mentions: its three escapes keep text as text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(event: dict[str, Any]) -> str:
    """One line saying what happened, the error message, and the link."""
    where = []
    if event.get("percentage") is not None:
        where.append(f"{event['percentage']:g}%")
    if event.get("step") is not None:
        where.append(f"step {event['step']}")
    head = f"trainwire: {event['kind']} job {event['id']} is {event['state']}"
    lines = [_slack_escaped(head + (f" ({', '.join(where)})" if where else ""))]
    if event.get("message"):
        lines.append("> " + _slack_escaped(str(event["message"])).replace("\n", "\n> "))
    lines.append(f"<{event['url']}|job page>")
    return "\n".join(lines)


def event_body(event: dict[str, Any], base: str, *, slack: bool) -> bytes:
    """The UTF-8 body posted for ``event``, with its ``url`` under ``base``."""
    full = {**event, "url": job_link(base, event["kind"], event["id"])}
    data = {"text": slack_text(full)} if slack else full
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
