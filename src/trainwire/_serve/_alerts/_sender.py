"""The thread that sends the outbox's alerts: one webhook's in order, each after a 2xx
from its receiver, with backoff while a receiver fails; and what went wrong, per webhook.

It never touches the ingest path: the receiver only writes outbox rows, so a slow or
dead webhook delays nothing but its own alerts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from .._store import Store, iso_time
from .._store._outbox import CAP, MAX_AGE
from ._body import EVENT_HEADER, SIGNATURE_HEADER, event_body, signature
from ._config import AlertSettings, Webhook
from ._post import post

__all__ = ["AlertSender"]

log = logging.getLogger("trainwire.serve")

#: Seconds between looks at the outbox when there is nothing to send.
POLL = 0.5
#: First and longest wait after a failed attempt (doubling in between).
FIRST_RETRY, LONGEST_RETRY = 1.0, 60.0
#: Seconds before looking again after the database failed (one warning each time).
OUTAGE_WAIT = 5.0
#: Seconds between two clean-ups of expired rows.
EXPIRE_EVERY = 60.0


@dataclass
class _Status:
    """What this process saw of one webhook."""

    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_delivered_at: float | None = None
    #: Seconds to wait after the next failure; and no attempt before ``blocked_until``.
    delay: float = FIRST_RETRY
    blocked_until: float = 0.0


class AlertSender:
    """Sends the alerts of :attr:`settings` from ``store``'s outbox (see :meth:`start`)."""

    def __init__(self, store: Store, settings: AlertSettings) -> None:
        self.store = store
        self.settings = settings
        self.status = {w.target: _Status() for w in settings.webhooks}
        self._base = settings.public_url or ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trainwire-alerts", daemon=True)
        self._expired_at = 0.0

    def start(self, page_url: str) -> None:
        """Have the store write rows for these webhooks, and start sending; links go under
        ``page_url`` unless ``--public-url`` was given."""
        self._base = self.settings.public_url or page_url
        self.store.outbox.routes = tuple(w.route for w in self.settings.webhooks)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending (what is left stays in the outbox for the next start)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self._round(time.time())
            except Exception as exc:  # the database is down: the rows wait on disk
                log.warning("trainwire serve: alerts: cannot read the outbox: %s", exc)
                self._stop.wait(OUTAGE_WAIT)
                continue
            if not sent:
                self._stop.wait(POLL)

    def _round(self, now: float) -> bool:
        """One attempt per webhook that is due; whether anything was sent."""
        if now - self._expired_at >= EXPIRE_EVERY:
            self._expired_at = now
            dropped = self.store.outbox.expire(list(self.status), now)
            if dropped:
                log.warning("trainwire serve: alerts: %d expired without delivery", dropped)
        sent = False
        for webhook in self.settings.webhooks:
            status = self.status[webhook.target]
            if status.blocked_until > time.monotonic() or self._stop.is_set():
                continue
            claimed = self.store.outbox.claim(webhook.target, now)
            if claimed is not None:
                sent = self._send(webhook, status, claimed.row, claimed.event) or sent
        return sent

    def _send(self, webhook: Webhook, status: _Status, row: int, event: dict[str, Any]) -> bool:
        body = event_body(event, self._base, slack=webhook.slack)
        headers = {EVENT_HEADER: str(event["event_id"])}
        if self.settings.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.settings.secret, body)
        error = post(webhook.url, body, headers)
        now = time.time()
        if error is None:
            self.store.outbox.sent(row)
            status.delivered += 1
            status.last_delivered_at, status.last_error, status.delay = now, None, FIRST_RETRY
            return True
        log.warning("trainwire serve: alert to %s failed: %s", webhook.shown, error)
        status.failed += 1
        status.last_error, status.last_error_at = error, now
        status.blocked_until = time.monotonic() + status.delay
        self.store.outbox.failed(row, now + status.delay, error)
        status.delay = min(status.delay * 2, LONGEST_RETRY)
        return False

    def report(self) -> dict[str, Any]:
        """``/api/alerts``: every webhook, what waits for it and its last error."""
        hooks = []
        for webhook in self.settings.webhooks:
            status = self.status[webhook.target]
            pending = self.store.outbox.pending(webhook.target)
            hooks.append(
                {
                    "url": webhook.shown,
                    "states": sorted(s.value for s in webhook.states),
                    "format": "slack" if webhook.slack else "json",
                    "pending": pending.count,
                    "oldest_pending_at": iso_time(pending.oldest),
                    "attempts": pending.attempts,
                    "delivered": status.delivered,
                    "failed": status.failed,
                    "last_error": status.last_error or pending.last_error,
                    "last_error_at": iso_time(status.last_error_at),
                    "last_delivered_at": iso_time(status.last_delivered_at),
                }
            )
        return {
            "webhooks": hooks,
            "signed": self.settings.secret is not None,
            "max_age_seconds": MAX_AGE,
            "cap": CAP,
        }
