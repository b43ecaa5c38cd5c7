"""The access options of ``trainwire serve``: ``--token-file``, ``$TRAINWIRE_SERVE_TOKEN``
and ``--metrics-token-file`` (see docs/serve.md, "Access control")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["TOKEN_ENV", "access_from", "access_options"]

F = TypeVar("F", bound=Callable[..., Any])

#: The environment variable that may hold the token instead of ``--token-file``.
TOKEN_ENV = "TRAINWIRE_SERVE_TOKEN"


def access_options(function: F) -> F:
    """Add ``--token-file`` and ``--metrics-token-file``."""
    token = click.option(
        "--token-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
        help=f"File whose first line is the access token (or ${TOKEN_ENV}): the API then "
        "wants 'Authorization: Bearer <token>' and the page a login. Required with a --host "
        "other than loopback.",
    )  # fmt: skip
    metrics = click.option(
        "--metrics-token-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
        help="File whose first line is a token for GET /metrics only (the main token works "
        "there too).",
    )  # fmt: skip
    return token(metrics(function))


def access_from(
    host: str, token_file: Path | None, metrics_file: Path | None, read: Callable[[Path, str], str]
) -> Any:
    """The :class:`Access` the options give; ``read(path, option)`` reads a secret file.
    A non-loopback ``host`` without a token is refused (exit status 2)."""
    from .._serve._auth import Access
    from .._serve._web import loopback_host

    token = read(token_file, "--token-file") if token_file is not None else None
    from_env = os.environ.get(TOKEN_ENV)
    if from_env is not None:
        if token is not None:
            raise click.UsageError(f"give the token in one place: --token-file or ${TOKEN_ENV}")
        if not from_env.strip():
            raise click.UsageError(f"${TOKEN_ENV} is empty: set it to the token, or unset it")
        token = from_env
    metrics = read(metrics_file, "--metrics-token-file") if metrics_file is not None else None
    if token is None and not loopback_host(host):
        raise click.UsageError(
            f"--host {host} lets other machines read every job: give a token with "
            f"--token-file FILE or ${TOKEN_ENV}, or bind --host 127.0.0.1"
        )
    for secret, where in ((token, "the token"), (metrics, "the --metrics-token-file token")):
        if secret is not None and not (secret.isascii() and secret.isprintable()):
            raise click.UsageError(
                f"{where} must be printable ASCII: it travels in an HTTP header "
                "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    return Access(token, metrics)
