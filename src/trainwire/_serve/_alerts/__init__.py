"""Alerts of ``trainwire serve``: a webhook is told when a job changes state.

- :mod:`._config`: the ``--webhook`` options and the signing secret, checked at start;
- :mod:`._body`: an event as the receiver gets it (JSON or a Slack ``{"text": ...}``),
  its job page link and its signature;
- :mod:`._sender`: the thread that sends what the store's outbox holds, with backoff,
  and what went wrong (``/api/alerts``).

The events themselves are written by the store, in the transaction of the change (see
``_store._outbox``): a restart neither loses nor repeats one.
"""

from __future__ import annotations

from ._body import EVENT_HEADER, SIGNATURE_HEADER, event_body, signature
from ._config import AlertConfigError, AlertSettings, Webhook, alert_settings
from ._sender import AlertSender

__all__ = [
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "AlertConfigError",
    "AlertSender",
    "AlertSettings",
    "Webhook",
    "alert_settings",
    "event_body",
    "signature",
]
