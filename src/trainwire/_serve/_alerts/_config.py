"""``--webhook URL[#STATE,...,slack]``, ``--webhook-secret-file`` and ``--public-url``,
checked before the server starts: a mistake is a clear error, not a silent alert loss."""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..._errors import TrainwireError
from ..._spec._protocol import JobState
from .._store._changes import ALERT_STATES
from .._store._outbox import Route

__all__ = ["DEFAULT_STATES", "AlertConfigError", "AlertSettings", "Webhook", "alert_settings"]

#: The states a webhook is told about when its URL does not say.
DEFAULT_STATES = frozenset({JobState.ERROR, JobState.ABNORMAL})
#: The fragment word asking for a Slack body.
SLACK = "slack"


class AlertConfigError(TrainwireError):
    """A ``--webhook``, ``--webhook-secret-file`` or ``--public-url`` that cannot work."""


def shown_url(url: str) -> str:
    """``scheme://host:port/…``: a webhook's path often is its secret (Slack's are)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unclosed [IPv6 address
        return "(a URL that cannot be read)"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: shown as it is written
        port = ":" + parts.netloc.rpartition(":")[2]
    rest = "…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}/{rest}"


@dataclass(frozen=True)
class Webhook:
    """One ``--webhook``: where to post, which states, and in which shape."""

    url: str
    states: frozenset[JobState]
    slack: bool = False

    @property
    def target(self) -> str:
        """The key of its rows in the outbox (the URL itself may hold a secret)."""
        kind = SLACK if self.slack else "json"
        return hashlib.sha256(f"{kind} {self.url}".encode()).hexdigest()[:24]

    @property
    def shown(self) -> str:
        """The URL as messages and the API show it."""
        return shown_url(self.url)

    @property
    def route(self) -> Route:
        """What the store needs to know of it."""
        return Route(self.target, self.states)


def _http_url(option: str, value: str) -> urllib.parse.SplitResult:
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = urllib.parse.urlsplit("")
    spaced = any(ch.isspace() or not ch.isprintable() for ch in value)
    if parts.scheme not in ("http", "https") or not parts.hostname or spaced:
        raise AlertConfigError(
            f"{option} {shown_url(value)!r}: expected an http:// or https:// URL with a host "
            "and no spaces, such as https://hooks.example.com/trainwire (write a space as %20)"
        )
    return parts


def parse_webhook(spec: str) -> Webhook:
    """A ``--webhook`` value: ``URL``, or ``URL#STATE,...`` and/or ``slack`` after ``#``."""
    url, _, fragment = spec.partition("#")
    _http_url("--webhook", url)
    words = [w.strip().lower() for w in fragment.split(",") if w.strip()]
    known = {s.value: s for s in ALERT_STATES}
    wrong = [w for w in words if w not in known and w != SLACK]
    if wrong:
        raise AlertConfigError(
            f"--webhook {shown_url(url)!r}: unknown word {wrong[0]!r} after '#'; expected "
            f"states among {', '.join(sorted(known))} and/or {SLACK!r} "
            "(e.g. https://host/hook#error,abnormal,slack)"
        )
    states = frozenset(known[w] for w in words if w in known) or DEFAULT_STATES
    return Webhook(url, states, SLACK in words)


def read_secret(path: Path) -> bytes:
    """The signing secret: the first line of ``path`` (UTF-8, not empty)."""
    try:
        if not path.is_file():
            raise AlertConfigError(
                f"--webhook-secret-file {path}: not a regular file; give a file holding the secret"
            )
        with open(path, encoding="utf-8") as fh:
            secret = fh.readline(4096).rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertConfigError(f"--webhook-secret-file {path}: cannot read it ({exc})") from None
    if not secret:
        raise AlertConfigError(
            f"--webhook-secret-file {path}: the file is empty; its first line is the secret"
        )
    return secret.encode("utf-8")


@dataclass(frozen=True)
class AlertSettings:
    """Every webhook, the signing secret, and the base of the job links."""

    webhooks: tuple[Webhook, ...]
    secret: bytes | None = None
    #: ``https://status.example.com/``; None: the server's own address.
    public_url: str | None = None


def alert_settings(
    webhooks: Sequence[str], secret_file: Path | None, public_url: str | None
) -> AlertSettings | None:
    """The alert options checked; None when no webhook is given."""
    if public_url is not None:
        parts = _http_url("--public-url", public_url)
        public_url = urllib.parse.urlunsplit(parts._replace(query="", fragment=""))
        public_url = public_url if public_url.endswith("/") else public_url + "/"
    if not webhooks:
        if secret_file is not None:
            raise AlertConfigError("--webhook-secret-file signs webhooks: give --webhook URL too")
        return None
    parsed = tuple(dict.fromkeys(parse_webhook(w) for w in webhooks))
    targets = [w.target for w in parsed]
    for hook in parsed:
        if targets.count(hook.target) > 1:  # one outbox queue each: they would mix
            raise AlertConfigError(
                f"--webhook {hook.shown!r} is given twice with different states: give each "
                "URL once, with all its states after '#'"
            )
    secret = read_secret(secret_file) if secret_file is not None else None
    return AlertSettings(parsed, secret, public_url)
