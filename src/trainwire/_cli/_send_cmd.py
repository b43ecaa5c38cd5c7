"""``trainwire send progress|done|error``: one status message by hand, for shell scripts."""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import click

from .._spec._config import Config
from .._spec._protocol import (
    MAX_STEP,
    Status,
    clean_text,
    done_message,
    error_message,
    new_message_id,
    progress_message,
)
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    config_option,
    emit_json,
    fail_usage,
    load_or_exit,
    verbosity_options,
)

__all__ = ["send"]


def _options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = config_option(function)
    function = click.option(
        "--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
        help="Seconds to wait for the broker's confirm.",
    )(function)  # fmt: skip
    function = click.option("--json", "as_json", is_flag=True,
                            help="Print the result as JSON.")(function)  # fmt: skip
    return verbosity_options(function)


def _mode() -> str:
    """``online``, ``offline`` or ``disabled`` from ``TRAINWIRE_MODE``, as the SDK reads it."""
    from .._errors import ConfigError
    from .._sdk._run import mode_from_env

    try:
        return mode_from_env()
    except ConfigError as exc:
        fail_usage(str(exc))


def _write_offline(config: Config, message_id: str, body: dict[str, Any]) -> str:
    from .._sdk._local import offline_line
    from .._spec._spool import OFFLINE_FILE, PRIVATE_MODE

    path = config.save_dir / OFFLINE_FILE
    data = offline_line(message_id, body).encode("utf-8", "backslashreplace")  # never fails on text
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise click.ClickException(f"cannot write the offline record {path}: {exc}") from None
    return str(path)


def _spool_terminal(config: Config, message_id: str, body: dict[str, Any]) -> str | None:
    from .._broker._delivery import spool_for
    from .._spec._spool import make_record

    spool = spool_for(config)
    try:
        spool.append([make_record(message_id, config.queue_name, body, terminal=True)])
    except OSError:
        return None
    return str(spool.path)


def _send(config_path: str | None, body_of: Callable[[Config], dict[str, Any]],
          timeout: float, as_json: bool, keep: bool) -> None:  # fmt: skip
    from .._broker._delivery import Outgoing, deliver

    config = load_or_exit(config_path)
    body = body_of(config)
    message_id = new_message_id()
    status = body["status"]
    report: dict[str, Any] = {"status": status, "message_id": message_id, "body": body}
    mode = _mode()
    if mode == "disabled":
        report.update(ok=True, sent=False, note="TRAINWIRE_MODE=disabled")
    elif mode == "offline" or not config.has_broker:
        path = _write_offline(config, message_id, body)
        report.update(ok=True, sent=False, note=f"offline mode, written to {path}")
    else:
        result = deliver(config, [Outgoing(message_id, body)], timeout=timeout)
        report.update(ok=result.ok, sent=result.ok, queue=config.queue_name,
                      broker=config.describe_broker())  # fmt: skip
        if not result.ok:
            report.update(problem=result.problem, reason=result.reason)
            if keep and Status(status).terminal:
                spooled = _spool_terminal(config, message_id, body)
                if spooled:
                    report["spooled"] = spooled
    if as_json:
        emit_json(report)
    elif report["sent"]:
        click.echo(
            f"sent {status} (queue {config.queue_name!r}, confirmed by the broker), "
            f"message_id {message_id}"
        )
    elif report["ok"]:
        click.echo(f"{status} not sent: {report['note']}")
    else:
        click.echo(f"trainwire: error: {status} was not delivered: {report['reason']}", err=True)
        if "spooled" in report:
            click.echo(
                f"trainwire: it is kept in {report['spooled']}; deliver it later with: "
                f"trainwire replay --config {config.path}",
                err=True,
            )
    raise SystemExit(EXIT_OK if report["ok"] else EXIT_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def send() -> None:
    """Send one status message and wait for the broker to confirm it.

    \b
        trainwire send progress --step 120 --total 400
        trainwire send done
        trainwire send error --message "학습 데이터가 비어 있습니다."

    Exit status: 0 confirmed by the broker (or written to the offline file when the
    config names no message_host); 1 not confirmed (the reason says what to fix: the
    queue, the login, the broker being down...); 2 bad usage or a bad config file. A
    terminal message that was not confirmed is kept in the spool for `trainwire replay`
    (unless --no-spool).
    """


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    # click's FloatRange lets NaN through (every comparison with NaN is false).
    if value is not None and math.isnan(value):
        raise click.BadParameter("nan is not a number between 0 and 100.")
    return value


@send.command("progress")
@click.option("--step", type=click.IntRange(0, MAX_STEP), required=True,
              help=f"The current step (0-{MAX_STEP}).")  # fmt: skip
@click.option("--percentage", type=click.FloatRange(0, 100), default=None, callback=_finite,
              help="Progress in percent (0-100).")  # fmt: skip
@click.option("--total", type=click.IntRange(1, MAX_STEP), default=None,
              help="Total steps: percentage = step / total x 100.")  # fmt: skip
@_options
def progress(config_path: str | None, step: int, percentage: float | None,
             total: int | None, timeout: float, as_json: bool) -> None:  # fmt: skip
    """Send training_ing with --step and --percentage (or --total to compute it)."""
    if percentage is None:
        if total is None:
            fail_usage("give --percentage P, or --total N to compute it from --step")
        percentage = min(100.0, step * 100.0 / total)
    value = round(percentage, 4)
    _send(config_path, lambda c: progress_message(c.identity, step, value), timeout, as_json,
          keep=False)  # fmt: skip


@send.command("done")
@click.option("--no-spool", is_flag=True, help="Do not keep an unconfirmed message for replay.")
@_options
def done(config_path: str | None, timeout: float, as_json: bool, no_spool: bool) -> None:
    """Send training_done."""
    _send(config_path, lambda c: done_message(c.identity), timeout, as_json, keep=not no_spool)


@send.command("error")
@click.option("--message", "-m", "text", required=True,
              help="The error shown to the user: a plain sentence.")  # fmt: skip
@click.option("--no-spool", is_flag=True, help="Do not keep an unconfirmed message for replay.")
@_options
def error(config_path: str | None, text: str, timeout: float, as_json: bool,
          no_spool: bool) -> None:  # fmt: skip
    """Send training_error with --message."""
    text = clean_text(text)  # bytes that are not UTF-8 arrive as surrogates: make them readable
    if not text.strip():
        fail_usage("--message must not be empty: it is what the user sees")
    _send(config_path, lambda c: error_message(c.identity, text), timeout, as_json,
          keep=not no_spool)  # fmt: skip
