"""``trainwire serve`` (the local platform) and ``trainwire jobs`` (register jobs with it)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

__all__ = ["jobs", "serve"]

_DB_HELP = (
    "Database: sqlite:///FILE (relative to the current folder), sqlite:////ABS/FILE, or "
    "postgresql://USER:PASSWORD@HOST:PORT/DB (needs pip install 'trainwire[serve]')."
)


class _Failure(click.ClickException):
    """Bad usage, a bad config file or an unusable database/broker: exit status 2."""

    exit_code = 2


def _open_store(db_url: str) -> Any:
    from .._serve._store import StoreError, open_store

    try:
        return open_store(db_url)
    except StoreError as exc:
        raise _Failure(str(exc)) from None


def _source(config_path: Path | None, amqp_url: str | None, queue_name: str | None) -> Any:
    from .._config import CONFIG_ENV, load_config
    from .._errors import ConfigError
    from .._serve._receiver import BrokerSource
    from .._serve._store import describe_db_url

    if config_path is not None and amqp_url is not None:
        raise click.UsageError("give --config or --amqp-url, not both")
    if amqp_url is not None:
        import pika  # type: ignore[import-untyped,unused-ignore]

        if not queue_name:
            raise click.UsageError("--amqp-url needs --queue: the queue to consume")
        shown = describe_db_url(amqp_url)
        try:
            params = pika.URLParameters(amqp_url)
        except Exception as exc:
            raise click.BadParameter(
                f"{shown} is not an AMQP URL ({exc}); expected "
                "amqp://USER:PASSWORD@HOST:PORT/VHOST (vhost '/' is %2F)",
                param_hint="--amqp-url",
            ) from None
        params.client_properties = {"connection_name": "trainwire serve"}
        return BrokerSource(params, queue_name, f"{shown} queue={queue_name!r}")
    if config_path is None and not os.environ.get(CONFIG_ENV):
        raise click.UsageError(
            f"say where the messages come from: --config TRAINING_CONFIG (or ${CONFIG_ENV}), "
            "or --amqp-url URL --queue QUEUE"
        )
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _Failure(str(exc)) from None
    if not config.has_broker:
        raise _Failure(
            f"{config.path}: names no 'message_host', so there is no queue to receive from: "
            "add the broker keys (message_host, message_port, message_id, message_pw, "
            "queue_name) or use --amqp-url URL --queue QUEUE"
        )
    from .._transport._amqp import connection_parameters

    queue = queue_name or config.queue_name
    params = connection_parameters(config, heartbeat=30)
    params.client_properties = {"connection_name": "trainwire serve"}
    description = config.describe_broker()
    if queue != config.queue_name:
        description = description.rsplit(" queue=", 1)[0] + f" queue={queue!r}"
    return BrokerSource(params, queue, description, config=config)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training config file naming the broker and queue (default: $TRAINWIRE_CONFIG). "
    "Its job is registered too.",
)
@click.option(
    "--amqp-url",
    metavar="URL",
    help="Broker URL instead of a config: amqp://USER:PASSWORD@HOST:PORT/VHOST (with --queue).",
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
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help=_DB_HELP + "  [default: sqlite:///trainwire-serve.sqlite3]",
)
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
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Unacknowledged messages the broker may hand this process at once.",
)
def serve(
    config_path: Path | None,
    amqp_url: str | None,
    queue_name: str | None,
    jobs_dir: Path | None,
    db_url: str | None,
    host: str,
    port: int,
    stale_after: float,
    project_keys: tuple[str, ...],
    prefetch: int,
) -> None:
    """Receive status messages, track every job, and show them in a web page.

    A local, faithful stand-in for the platform: it consumes the queue (acking each message
    only after it is stored), applies the spec's rules per job (waiting, running, done,
    error, abnormal), keeps every ignored message with its reason, and serves a job list,
    job pages with the training graphs, and a JSON API under /api/ (see docs/serve.md).

    \b
    Examples:
      trainwire serve --config train_config.json
      trainwire serve --amqp-url amqp://guest:guest@localhost:5672/%2F --queue status \\
          --jobs configs/ --db postgresql://tw:secret@db:5432/trainwire

    Stop with Ctrl-C. Exit status: 0 after a stop, 1 when the web port cannot be used,
    2 for bad usage, a bad config, an unusable database or a broker login that fails.
    """
    from .._serve._receiver import Receiver, StaleWatcher
    from .._serve._registry import JobsFolder, register_config
    from .._serve._store import DEFAULT_DB_URL
    from .._serve._web import Hub, WebApp, _loopback_host, make_server

    source = _source(config_path, amqp_url, queue_name)
    store = _open_store(db_url or DEFAULT_DB_URL)
    stoppers: list[Any] = []
    try:
        if source.config is not None:
            register_config(store, source.config.path)
        hub = Hub(store)
        receiver = Receiver(
            store,
            source,
            project_keys=frozenset(project_keys),
            prefetch=prefetch,
            on_change=hub.poke,
        )
        watcher = StaleWatcher(store, stale_after, on_change=hub.poke)

        def health() -> dict[str, Any]:
            return {
                "receiver": receiver.state,
                "broker": source.description,
                "last_error": receiver.last_error,
                "received": receiver.stats.received,
                "outcomes": dict(receiver.stats.outcomes),
                "superseded": receiver.stats.superseded,
                "stale_after": stale_after,
            }

        app = WebApp(store, hub, health=health, loopback_only=_loopback_host(host))
        try:
            server = make_server(app, host, port)
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program uses "
                "the port, or the address is not this machine's; choose another with --port/--host"
            ) from None
        stoppers.append(server.server_close)
        receiver.start()
        stoppers.append(receiver.stop)
        fatal = receiver.wait_started(30)
        if fatal is not None:
            raise _Failure(fatal)
        hub.start()
        stoppers.append(hub.stop)
        watcher.start()
        stoppers.append(watcher.stop)
        if jobs_dir is not None:
            folder = JobsFolder(store, jobs_dir, on_change=hub.poke)
            folder.start()
            stoppers.append(folder.stop)
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        state = "consuming" if receiver.consuming else f"not connected yet ({receiver.last_error})"
        click.echo(f"trainwire serve: database {store.url}", err=True)
        click.echo(f"trainwire serve: broker {source.description}: {state}", err=True)
        click.echo(f"trainwire serve: web page at http://{shown_host}:{bound_port}/", err=True)
        sys.stderr.flush()

        def stop(signum: int, frame: Any) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.serve_forever(poll_interval=0.5)
        click.echo("trainwire serve: stopped", err=True)
    finally:
        for stopper in reversed(stoppers):
            with contextlib.suppress(Exception):
                stopper()
        store.close()


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
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help=_DB_HELP + "  [default: sqlite:///trainwire-serve.sqlite3]",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Forget what the server knows of the job (back to waiting), e.g. to run it again.",
)
def add(config_files: tuple[Path, ...], db_url: str | None, reset: bool) -> None:
    """Register the jobs of training config files (JSON or YAML).

    Exit status 2 if any file is not a valid training config (the others are registered).
    """
    from .._errors import ConfigError
    from .._serve._registry import register_config
    from .._serve._store import DEFAULT_DB_URL

    store = _open_store(db_url or DEFAULT_DB_URL)
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
                f"registered {job.kind} job {job.job_id!r} ({job.state}); graphs from "
                f"{job.metrics_dir}; in {store.url}"
            )
    finally:
        store.close()
    if failed:
        raise _Failure(f"{len(failed)} of {len(config_files)} config file(s) not registered")


@jobs.command("list")
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help=_DB_HELP + "  [default: sqlite:///trainwire-serve.sqlite3]",
)
def list_jobs(db_url: str | None) -> None:
    """Show the jobs the server knows, newest first."""
    from .._serve._store import DEFAULT_DB_URL, iso_time

    store = _open_store(db_url or DEFAULT_DB_URL)
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
        line = f"{job.kind:<10} {job.job_id:<24} {job.state:<9} {pct:>6} {step:<12} {last}"
        if job.message:
            line += f"  {job.message}"
        click.echo(line.rstrip())
