"""Options and helpers the ``run``, ``send``, ``check`` and ``replay`` commands share."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, NoReturn, TypeVar

import click

from .._errors import ConfigError
from .._sdk._explain import DEFAULT_LANGUAGE, LANGUAGES
from .._spec._config import CONFIG_ENV, Config, load_config
from . import configure_logging

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "config_option",
    "emit_json",
    "fail_usage",
    "load_or_exit",
    "verbosity_options",
]

EXIT_OK = 0
#: The command's check or delivery failed.
EXIT_FAILED = 1
#: Bad usage or a bad config file.
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


def config_option(function: F) -> F:
    """``--config FILE``, defaulting to ``$TRAINWIRE_CONFIG``."""
    option = click.option(
        "-c",
        "--config",
        "config_path",
        envvar=CONFIG_ENV,
        show_envvar=True,
        type=click.Path(dir_okay=False),
        help="The training config file (JSON or YAML).",
    )
    return option(function)


def language_option(function: F) -> F:
    """``--language ko|en``: the language of the sentences trainwire writes."""
    option = click.option(
        "--language", type=click.Choice(LANGUAGES), default=DEFAULT_LANGUAGE, show_default=True,
        help="Language of the error sentences sent to the platform.",
    )  # fmt: skip
    return option(function)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is not None:
        configure_logging(value)


def verbosity_options(function: F) -> F:
    """``-v/--verbose`` and ``-q/--quiet`` on a subcommand (as on ``trainwire`` itself)."""
    option = click.option(
        "-v", "--verbose", "verbosity", flag_value=1, default=None, expose_value=False,
        callback=_set_verbosity, is_eager=True, help="Show more (info lines).",
    )  # fmt: skip
    quiet = click.option(
        "-q", "--quiet", "verbosity", flag_value=-1, default=None, expose_value=False,
        callback=_set_verbosity, is_eager=True, help="Show only errors.",
    )  # fmt: skip
    return option(quiet(function))


def fail_usage(message: str) -> NoReturn:
    """Print ``trainwire: error: message`` and exit with status 2."""
    click.echo(f"trainwire: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def load_or_exit(config_path: str | None, kind: str | None = None) -> Config:
    """The checked config, or exit 2 with the config error (file, key, fix)."""
    if not config_path:
        fail_usage(
            f"no training config file given: pass --config FILE or set {CONFIG_ENV} to its path"
        )
    try:
        return load_config(config_path, kind=kind)
    except ConfigError as exc:
        fail_usage(str(exc))


def emit_json(data: Any) -> None:
    """One JSON document on stdout (UTF-8, Korean readable)."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
