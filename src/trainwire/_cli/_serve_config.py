"""``trainwire serve --serve-config FILE``: every serve option from one YAML or JSON file
(see docs/serve.md, "A serve config file").

The file becomes click's ``default_map``, so the command line (and an option's environment
variable) still wins over it, and every option the command has is a key, new ones included.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .._serve._urls import HIDDEN, describe_url
from .._spec._config import MAX_CONFIG_BYTES
from .._spec._protocol import clean_text

__all__ = ["ServeConfigError", "serve_config_option"]

F = TypeVar("F", bound=Callable[..., Any])
#: Options that are not settings of the server.
_NOT_KEYS = frozenset({"serve_config", "help"})


class ServeConfigError(click.ClickException):
    """A serve config file that cannot be used: exit status 2, like bad usage."""

    exit_code = 2


def serve_config_option(function: F) -> F:
    """Add ``--serve-config FILE``, read before every other option."""
    return click.option(
        "--serve-config", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
        is_eager=True, expose_value=False, callback=_apply,
        help="YAML (.yaml, .yml) or JSON file giving any of these options as keys, e.g. "
        "amqp_url, queue, db, webhook (a list), stale_after; relative file paths in it are "
        "relative to its folder. Options on the command line win over it.",
    )(function)  # fmt: skip


def _apply(ctx: click.Context, _param: click.Parameter, path: Path | None) -> None:
    if path is None:
        return
    data = _read(path)
    options = _options(ctx.command)
    chosen: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        option = options.get(name)
        if option is None or not isinstance(key, str):
            raise _unknown(path, key, options)
        if option.name in chosen:
            raise ServeConfigError(f"{_shown(path)}: key {key!r} is given twice ('-' and '_').")
        chosen[str(option.name)] = _value(path, key, option, value, ctx)
    ctx.default_map = {**(ctx.default_map or {}), **chosen}


def _options(command: click.Command) -> dict[str, click.Option]:
    """Each option by its long name with underscores: ``amqp_url`` for ``--amqp-url``."""
    found: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                name = opt.lstrip("-").replace("-", "_")
                if opt.startswith("--") and name not in _NOT_KEYS:
                    found[name] = param
    return found


def _unknown(path: Path, key: Any, options: dict[str, click.Option]) -> ServeConfigError:
    close = difflib.get_close_matches(str(key).replace("-", "_"), options, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see trainwire serve --help"
    return ServeConfigError(
        f"{_shown(path)}: key {clean_text(str(key), 80)!r} is not a serve option; {hint} "
        f"(keys: {', '.join(sorted(options))})."
    )


def _value(path: Path, key: str, option: click.Option, value: Any, ctx: click.Context) -> Any:
    """``value`` checked and converted as the option would be; relative paths made relative
    to the file's folder."""
    flag = option.opts[-1]
    if option.multiple:
        items = [value] if isinstance(value, (str, int, float)) else value
        expected = f"a list of values, one per {flag}"
    else:
        items = [value]
        expected = f"one value, as {flag} {option.metavar or option.type.name.upper()} takes"
    if not isinstance(items, list) or not all(_scalar(item) for item in items):
        raise ServeConfigError(
            f"{_shown(path)}: key {key!r}: expected {expected}, found {_kind(value)}. "
            "Fix the key in the serve config file."
        )
    items = [_resolved(path, option, _secret_free(path, key, item)) for item in items]
    try:
        option.type_cast_value(ctx, items if option.multiple else items[0])
    except click.BadParameter as exc:
        raise ServeConfigError(
            f"{_shown(path)}: key {key!r}: {exc.message} Fix the key in the serve config file."
        ) from None
    return items if option.multiple else items[0]


def _scalar(item: Any) -> bool:
    return isinstance(item, (str, int, float)) and not isinstance(item, bool)


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", bool: "true/false", type(None): "no value"}
    return names.get(type(value), f"a {type(value).__name__}")


def _secret_free(path: Path, key: str, item: Any) -> Any:
    """``item``, unless it is a URL holding a password: that goes in a file, not here."""
    # describe_url hides every form a parser could take for a password (``?password=``
    # and a ``#`` inside one included): anything hidden is a secret in the file.
    if not isinstance(item, str) or "://" not in item or HIDDEN not in describe_url(item):
        return item
    raise ServeConfigError(
        f"{_shown(path)}: key {key!r} holds a URL with a password (not shown). A serve config "
        "names the files of secrets, never secrets: give the user only (USER@HOST) and put the "
        "password in a file named by amqp_password_file or db_password_file."
    )


def _resolved(path: Path, option: click.Option, item: Any) -> Any:
    if isinstance(option.type, click.Path) and isinstance(item, str) and not os.path.isabs(item):
        return str(path.parent / item)
    return item


def _shown(path: Path) -> str:
    return clean_text(str(path))


def _read(path: Path) -> dict[Any, Any]:
    """The file's top-level mapping; a :class:`ServeConfigError` naming the file otherwise."""
    text = _read_text(path)
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except RecursionError:
        raise ServeConfigError(
            f"{_shown(path)}: is nested too deeply for a serve config."
        ) from None
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError, a bad YAML date
        kind = "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"
        reason = clean_text(str(exc).split(";")[0], 300)
        raise ServeConfigError(f"{_shown(path)}: is not valid {kind}: {reason}") from None
    if not isinstance(data, dict):
        raise ServeConfigError(
            f"{_shown(path)}: expected a mapping of option names to values at the top level "
            f"(such as 'queue: status'), found {_kind(data)}."
        )
    return data


def _read_text(path: Path) -> str:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ServeConfigError(
                f"{_shown(path)}: not a regular file; give the serve config file."
            )
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ServeConfigError(f"{_shown(path)}: the serve config file does not exist.") from None
    except OSError as exc:
        raise ServeConfigError(
            f"{_shown(path)}: the serve config file cannot be read ({exc.strerror or exc}); "
            "make it readable by the user that runs serve."
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ServeConfigError(
            f"{_shown(path)}: is larger than {MAX_CONFIG_BYTES // 1024} KiB; a serve config "
            "holds a few keys. Check that this is the right file."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServeConfigError(f"{_shown(path)}: is not UTF-8 text ({exc.reason}).") from None
