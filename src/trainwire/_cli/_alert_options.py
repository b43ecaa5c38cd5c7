"""The alert options of ``trainwire serve``: ``--webhook``, ``--webhook-secret-file`` and
``--public-url`` (see docs/serve.md, "Alerts")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["alert_options", "alerts_from"]

F = TypeVar("F", bound=Callable[..., Any])


def alert_options(function: F) -> F:
    """Add the three options; the command takes them as ``**alerting``."""
    webhook = click.option(
        "--webhook", "webhooks", multiple=True, metavar="URL",
        help="POST a JSON event to URL when a job changes state (repeatable). After '#', "
        "which states (running, done, error, abnormal; default error,abnormal) and 'slack' "
        "for a Slack body: 'https://hooks.slack.com/services/...#error,abnormal,slack'.",
    )  # fmt: skip
    secret = click.option(
        "--webhook-secret-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
        help="File whose first line is the shared secret: every webhook body is signed with "
        "HMAC-SHA256 in the X-Trainwire-Signature header (sha256=<hex>).",
    )  # fmt: skip
    public = click.option(
        "--public-url", metavar="URL",
        help="Base of the job page links in alerts, e.g. https://status.example.com/ "
        "(default: the address this server listens on).",
    )  # fmt: skip
    return webhook(secret(public(function)))


def alerts_from(alerting: dict[str, Any]) -> Any:
    """The options' :class:`AlertSettings` (None without a webhook); bad ones exit 2."""
    from .._serve._alerts import AlertConfigError, alert_settings

    try:
        return alert_settings(
            alerting["webhooks"], alerting["webhook_secret_file"], alerting["public_url"]
        )
    except AlertConfigError as exc:
        raise click.BadParameter(str(exc)) from None
