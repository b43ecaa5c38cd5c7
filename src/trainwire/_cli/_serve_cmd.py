"""``trainwire serve`` (the local platform) and ``trainwire jobs`` (register jobs with it)."""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .._serve._defaults import PREFETCH
from .._serve._urls import POSTGRES_SCHEMES, describe_url, postgres_params, scrubbed
from ._access_options import access_from, access_options
from ._alert_options import alert_options, alerts_from
from ._retention_options import (
    DEFAULT_PRUNE_STATES,
    keep_messages_option,
    parse_age,
    parse_states,
)
from ._serve_config import serve_config_option

__all__ = ["jobs", "printable", "serve"]

_DB_HELP = (
    "Database: sqlite:///FILE (relative to the current folder), sqlite:////ABS/FILE, or "
    "postgresql://USER@HOST:PORT/DB (needs pip install 'trainwire[serve]')."
)
#: Environment variables read instead of the command line (which any user can see in ps).
DB_ENV = "TRAINWIRE_DB"
AMQP_URL_ENV = "TRAINWIRE_AMQP_URL"

F = TypeVar("F", bound=Callable[..., Any])


class _Failure(click.ClickException):
    """Bad usage, a bad config file or an unusable database/broker: exit status 2."""

    exit_code = 2


# -- passwords from files ------------------------------------------------------------------


def _read_password(path: Path, option: str) -> str:
    """The password in ``path`` (its first line), or a usage error naming the file."""
    try:
        if not path.is_file():
            raise _Failure(f"{option} {path}: not a regular file; give a file holding the password")
        with open(path, encoding="utf-8") as fh:
            password = fh.readline(4096).rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Failure(f"{option} {path}: cannot read it ({exc})") from None
    if not password:
        raise _Failure(f"{option} {path}: the file is empty; its first line is the password")
    return password


def _with_db_password(db_url: str, password_file: Path | None) -> None:
    """Hand the password in ``password_file`` to libpq (as $PGPASSWORD, never in argv)."""
    if password_file is None:
        return
    scheme = db_url.split("://", 1)[0].lower() if "://" in db_url else ""
    if scheme not in POSTGRES_SCHEMES:
        raise click.UsageError("--db-password-file is for a postgresql:// --db URL")
    if "password" in (postgres_params(db_url) or {}):
        raise click.UsageError("the --db URL holds a password already: give it in one place")
    os.environ["PGPASSWORD"] = _read_password(password_file, "--db-password-file")


def _with_amqp_password(amqp_url: str, password_file: Path | None) -> str:
    """``amqp_url`` with the password of ``password_file`` put in (in memory only)."""
    if password_file is None:
        return amqp_url
    parts = urllib.parse.urlsplit(amqp_url)
    if parts.password is not None or not parts.username:
        raise click.UsageError(
            "with --amqp-password-file give the user without a password in --amqp-url: "
            "amqp://USER@HOST:PORT/VHOST"
        )
    password = urllib.parse.quote(_read_password(password_file, "--amqp-password-file"), safe="")
    user_at = parts.netloc.rsplit("@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user_at[0]}:{password}@{user_at[1]}"))


def _db_options(function: F) -> F:
    """``--db URL`` (or $TRAINWIRE_DB) and ``--db-password-file FILE``."""
    db = click.option(
        "--db", "db_url", default=None, metavar="URL", envvar=DB_ENV, show_envvar=True,
        help=_DB_HELP + "  [default: sqlite:///trainwire-serve.sqlite3]",
    )  # fmt: skip
    password_file = click.option(
        "--db-password-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
        help="File whose first line is the PostgreSQL password. Like $PGPASSWORD or "
        "~/.pgpass (which libpq reads too), it keeps the password out of the process list.",
    )  # fmt: skip
    return db(password_file(function))


def _open_store(db_url: str | None, password_file: Path | None = None) -> tuple[Any, str]:
    """The store, and its URL as it may be shown."""
    from .._serve._store import DEFAULT_DB_URL, StoreError, open_store

    url = db_url or DEFAULT_DB_URL
    _with_db_password(url, password_file)
    try:
        return open_store(url), describe_url(url)
    except StoreError as exc:
        raise _Failure(scrubbed(str(exc), url)) from None


def printable(text: str) -> str:
    """``text`` safe for a terminal: control and format characters (escape sequences,
    line breaks, bidi overrides) written as ``\\x1b``-style escapes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _source(config_path: Path | None, amqp_urls: list[str], queue_name: str | None) -> Any:
    from .._errors import ConfigError
    from .._serve._source import SourceError, config_source, url_source
    from .._spec._config import CONFIG_ENV, load_config

    if config_path is not None and amqp_urls:
        raise click.UsageError(f"give --config or --amqp-url (or ${AMQP_URL_ENV}), not both")
    if amqp_urls:
        if not queue_name:
            raise click.UsageError("--amqp-url needs --queue: the queue to consume")
        try:
            return url_source(amqp_urls, queue_name)
        except SourceError as exc:
            raise click.BadParameter(str(exc), param_hint="--amqp-url") from None
    if config_path is None and not os.environ.get(CONFIG_ENV):
        raise click.UsageError(
            f"say where the messages come from: --config TRAINING_CONFIG (or ${CONFIG_ENV}), "
            "or --amqp-url URL --queue QUEUE"
        )
    try:
        return config_source(load_config(config_path), queue_name)
    except (ConfigError, SourceError) as exc:
        raise _Failure(str(exc)) from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@serve_config_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training config file naming the broker and queue (default: $TRAINWIRE_CONFIG). "
    "Its job is registered too.",
)
@click.option(
    "--amqp-url",
    "amqp_urls",
    metavar="URL",
    multiple=True,
    envvar=AMQP_URL_ENV,
    show_envvar=True,
    help="Broker URL instead of a config: amqp://USER:PASSWORD@HOST:PORT/VHOST (with --queue). "
    "Repeat it for the nodes of a cluster (tried in turn); the environment variable may "
    "hold several, separated by commas or spaces, and keeps the password out of the "
    "process list.",
)
@click.option(
    "--amqp-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="File whose first line is the broker password; --amqp-url then names only the user.",
)
@click.option(
    "--queue",
    "queue_name",
    metavar="Q",
    help="Queue to consume (default: the config's queue_name).",
)
@click.option(
    "--jobs",
    "jobs_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of training configs (*.json, *.yaml): each is registered, and new or "
    "changed files are picked up while serving.",
)
@_db_options
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the web page listens on."
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Web port (0: any free port).",
)
@click.option(
    "--stale-after",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="A running job silent this long is an abnormal termination.",
)
@click.option(
    "--project-key",
    "project_keys",
    multiple=True,
    metavar="KEY",
    help="Accept only messages with this project_key (repeatable; registered configs add "
    "their keys). Without any, every key is accepted.",
)
@click.option(
    "--prefetch",
    default=PREFETCH,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Unacknowledged messages the broker may hand this process at once.",
)
@alert_options
@keep_messages_option
@access_options
def serve(
    config_path: Path | None,
    amqp_urls: tuple[str, ...],
    amqp_password_file: Path | None,
    queue_name: str | None,
    jobs_dir: Path | None,
    db_url: str | None,
    db_password_file: Path | None,
    host: str,
    port: int,
    stale_after: float,
    project_keys: tuple[str, ...],
    prefetch: int,
    keep_messages: int | None,
    token_file: Path | None,
    metrics_token_file: Path | None,
    **alerting: Any,
) -> None:
    """Receive status messages, track every job, and show them in a web page.

    A local, faithful stand-in for the platform: it consumes the queue (acking each message
    only after it is stored), applies the spec's rules per job (waiting, running, done,
    error, abnormal), keeps every ignored message with its reason, and serves a job list,
    job pages with the training graphs, and a JSON API under /api/ (see docs/serve.md).

    \b
    Examples:
      trainwire serve --config train_config.json
      trainwire serve --amqp-url amqp://guest@localhost:5672/%2F --queue status \\
          --amqp-password-file amqp.pw --jobs configs/ \\
          --db postgresql://tw@db:5432/trainwire --db-password-file db.pw

    Stop with Ctrl-C. Exit status: 0 after a stop, 1 when the web port cannot be used,
    2 for bad usage, a bad config, an unusable database or a broker login that fails.
    """
    from .._serve._app import BrokerRefused, ListenError, Settings, run
    from .._serve._source import split_urls

    urls = split_urls(amqp_urls)
    if amqp_password_file is not None:
        if not urls:
            raise click.UsageError("--amqp-password-file goes with --amqp-url")
        urls = [_with_amqp_password(url, amqp_password_file) for url in urls]
    alerts = alerts_from(alerting)
    access = access_from(host, token_file, metrics_token_file, _read_password)
    source = _source(config_path, urls, queue_name)
    store, database = _open_store(db_url, db_password_file)
    settings = Settings(
        host=host, port=port, stale_after=stale_after, project_keys=frozenset(project_keys),
        prefetch=prefetch, jobs_dir=jobs_dir, database=database, alerts=alerts,
        keep_messages=keep_messages, access=access,
    )  # fmt: skip
    with contextlib.closing(store):
        try:
            run(store, source, settings, say=_say)
        except ListenError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokerRefused as exc:
            raise _Failure(str(exc)) from None


def _say(line: str) -> None:
    click.echo(line, err=True)
    sys.stderr.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def jobs() -> None:
    """Register training jobs with the local platform (trainwire serve).

    A registered job shows as waiting until its first message, its graphs are read from
    its model_write_path, and its project_key becomes one the server accepts.
    """


@jobs.command("add")
@click.argument(
    "config_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@_db_options
@click.option(
    "--reset",
    is_flag=True,
    help="Forget what the server knows of the job (back to waiting), e.g. to run it again.",
)
def add(
    config_files: tuple[Path, ...], db_url: str | None, db_password_file: Path | None, reset: bool
) -> None:
    """Register the jobs of training config files (JSON or YAML).

    Exit status 2 if any file is not a valid training config (the others are registered).
    """
    from .._errors import ConfigError
    from .._serve._registry import register_config

    store, database = _open_store(db_url, db_password_file)
    failed = []
    try:
        for path in config_files:
            try:
                job = register_config(store, path, reset=reset)
            except ConfigError as exc:
                click.echo(f"Error: {exc}", err=True)
                failed.append(path)
                continue
            click.echo(
                f"registered {job.kind.value} job {job.job_id!r} ({job.state.value}); graphs from "
                f"{job.metrics_dir}; in {database}"
            )
    finally:
        store.close()
    if failed:
        raise _Failure(f"{len(failed)} of {len(config_files)} config file(s) not registered")


@jobs.command("list")
@_db_options
def list_jobs(db_url: str | None, db_password_file: Path | None) -> None:
    """Show the jobs the server knows, newest first.

    Ids and messages come from the training jobs: characters a terminal would act on
    (escape sequences, line breaks) are shown as escapes such as \\x1b.
    """
    from .._serve._store import iso_time

    store, _ = _open_store(db_url, db_password_file)
    try:
        records = store.jobs()
    finally:
        store.close()
    if not records:
        click.echo("no jobs yet")
        return
    for job in records:
        pct = "" if job.percentage is None else f"{job.percentage:5.1f}%"
        step = "" if job.step is None else f"step {job.step}"
        last = iso_time(job.last_seen) or "-"
        job_id = printable(job.job_id)
        line = f"{job.kind.value:<10} {job_id:<24} {job.state.value:<9} {pct:>6} {step:<12} {last}"
        if job.message:
            line += f"  {printable(job.message)}"
        click.echo(line.rstrip())


@jobs.command("prune")
@click.option(
    "--older-than", required=True, metavar="AGE",
    help="Forget jobs unchanged for this long: 30d, 12h, 90m or 45s.",
)  # fmt: skip
@click.option(
    "--state", "states", default=DEFAULT_PRUNE_STATES, show_default=True, metavar="STATE,...",
    help="Only jobs in these states (waiting, running, done, error, abnormal).",
)  # fmt: skip
@_db_options
def prune(older_than: str, states: str, db_url: str | None, db_password_file: Path | None) -> None:
    """Forget old jobs: their rows, message logs and timelines, so the store stays bounded.

    Also forgets rejected messages older than AGE that name no job, and message ids older
    than AGE (used to recognise a second copy of a message).
    """
    import time

    age, chosen = parse_age(older_than), parse_states(states)
    store, database = _open_store(db_url, db_password_file)
    try:
        pruned = store.prune(time.time() - age, chosen)
    finally:
        store.close()
    click.echo(
        f"pruned {pruned.jobs} job(s) ({', '.join(sorted(s.value for s in chosen))}, unchanged "
        f"for {older_than}) and {pruned.messages} logged message(s) from {database}"
    )
