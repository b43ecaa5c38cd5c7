"""``trainwire serve`` wired together: the receiver, the stale-job watcher, the jobs
folder, the hub and the web server, started in order and stopped in reverse.

The command line only parses its options into :class:`Settings` and calls :func:`run`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .._errors import TrainwireError
from ._alerts import AlertSender, AlertSettings
from ._auth import Access
from ._defaults import PREFETCH
from ._prometheus import ServeMetrics
from ._receiver import BrokerSource, Receiver, StaleWatcher
from ._registry import JobsFolder, register_config
from ._retention import Trimmer
from ._store import Store
from ._web import Hub, WebApp, loopback_host, make_server

__all__ = ["BrokerRefused", "ListenError", "Settings", "run", "started"]


class ListenError(TrainwireError):
    """The web port cannot be used (exit status 1)."""


class BrokerRefused(TrainwireError):
    """The broker refused the login or the virtual host: retrying cannot help."""


@dataclass(frozen=True)
class Settings:
    """What ``trainwire serve``'s options say, besides where to consume and store."""

    host: str = "127.0.0.1"
    port: int = 8080
    stale_after: float = 600.0
    project_keys: frozenset[str] = frozenset()
    prefetch: int = PREFETCH
    jobs_dir: Path | None = None
    #: The database as it may be shown (no password).
    database: str = ""
    #: The webhooks told about state changes (``--webhook``), or None.
    alerts: AlertSettings | None = None
    #: ``--keep-messages``: the most logged messages kept per job, or None (all).
    keep_messages: int | None = None
    #: The tokens (``--token-file``, ``--metrics-token-file``); none: open.
    access: Access = field(default_factory=Access)


@dataclass(frozen=True)
class Running:
    """A started server: its parts, and where its page is."""

    server: ThreadingHTTPServer
    receiver: Receiver
    source: BrokerSource

    @property
    def url(self) -> str:
        """``http://host:port/`` as bound (``[...]`` around an IPv6 address)."""
        host, port = str(self.server.server_address[0]), int(self.server.server_address[1])
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _health(receiver: Receiver, source: BrokerSource, settings: Settings) -> dict[str, Any]:
    return {
        "receiver": receiver.state,
        "broker": source.description,
        "last_error": receiver.last_error,
        "received": receiver.stats.received,
        "outcomes": dict(receiver.stats.outcomes),
        "superseded": receiver.stats.superseded,
        "stale_after": settings.stale_after,
    }


def _listen(app: WebApp, host: str, port: int) -> ThreadingHTTPServer:
    try:
        return make_server(app, host, port)
    except OSError as exc:
        raise ListenError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program uses "
            "the port, or the address is not this machine's; choose another with --port/--host"
        ) from None


@contextlib.contextmanager
def started(store: Store, source: BrokerSource, settings: Settings) -> Iterator[Running]:
    """Everything started (the web server bound but not serving yet); stopped on exit."""
    with contextlib.ExitStack() as stack:
        if source.config is not None:
            register_config(store, source.config.path)
        hub = Hub(store)
        receiver = Receiver(
            store, source, project_keys=settings.project_keys, prefetch=settings.prefetch,
            on_change=hub.poke,
        )  # fmt: skip
        alerts = AlertSender(store, settings.alerts) if settings.alerts else None
        metrics = ServeMetrics(store, receiver, alerts.report if alerts else None)
        app = WebApp(
            store, hub, health=lambda: _health(receiver, source, settings),
            alerts=alerts.report if alerts else None, metrics=metrics.render,
            loopback_only=loopback_host(settings.host), database=settings.database,
            access=settings.access,
        )  # fmt: skip
        server = _listen(app, settings.host, settings.port)
        stack.callback(server.server_close)
        if alerts is not None:  # before the receiver: its changes need their outbox rows
            alerts.start(Running(server, receiver, source).url)
            stack.callback(alerts.stop)
        receiver.start()
        stack.callback(receiver.stop)
        fatal = receiver.wait_started(30)
        if fatal is not None:
            raise BrokerRefused(fatal)
        hub.start()
        stack.callback(hub.stop)
        watcher = StaleWatcher(store, settings.stale_after, on_change=hub.poke)
        watcher.start()
        stack.callback(watcher.stop)
        if settings.keep_messages is not None:
            trimmer = Trimmer(store, settings.keep_messages)
            trimmer.start()
            stack.callback(trimmer.stop)
        if settings.jobs_dir is not None:
            folder = JobsFolder(store, settings.jobs_dir, on_change=hub.poke)
            folder.start()
            stack.callback(folder.stop)
        yield Running(server, receiver, source)


def run(store: Store, source: BrokerSource, settings: Settings, say: Callable[[str], None]) -> None:
    """Serve until SIGTERM or SIGINT; ``say`` prints a line for the user."""
    with started(store, source, settings) as running:
        receiver = running.receiver
        state = "consuming" if receiver.consuming else f"not connected yet ({receiver.last_error})"
        say(f"trainwire serve: database {settings.database}")
        say(f"trainwire serve: broker {source.description}: {state}")
        say(f"trainwire serve: web page at {running.url}")
        for hook in settings.alerts.webhooks if settings.alerts else ():
            states = ", ".join(sorted(s.value for s in hook.states))
            say(f"trainwire serve: alerts ({states}) to {hook.shown}")
        server = running.server

        def stop(signum: int, frame: Any) -> None:
            # shutdown() waits for serve_forever to return: never from its own thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.serve_forever(poll_interval=0.5)
    say("trainwire serve: stopped")
