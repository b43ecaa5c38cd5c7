"""The web page, the JSON API under ``/api/`` and the live event stream (server-sent events).

Standard library only: a ``ThreadingHTTPServer`` (one thread per request; an event stream
holds its thread while the page is open). The pages are static files; every piece of data
reaches them through the API or the stream, and the scripts put user-supplied text into
the page with ``textContent`` only. See docs/serve.md for the API.

A client may be slow or hostile: a request must arrive whole within
:data:`REQUEST_DEADLINE`, every socket read or write gives up after :data:`IO_TIMEOUT`, at
most :data:`MAX_CONNECTIONS` are served at once, and an event stream whose reader falls
behind keeps only the newest state of each job (:class:`Subscriber`), never a backlog.
"""

from __future__ import annotations

import contextlib
import enum
import io
import ipaddress
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from .._spec._protocol import JobState, Kind
from ._auth import COOKIE, Access, Grant
from ._graphs import GraphFollower, csv_lines, folder_note, graph_files, read_graphs
from ._joblist import QueryError, job_query, next_link
from ._prometheus import CONTENT_TYPE as PROMETHEUS_TEXT
from ._store import OUTCOMES, JobQuery, JobRecord, Store, job_json, message_json, transition_json

__all__ = ["Event", "Hub", "Subscriber", "WebApp", "frame", "make_server"]

log = logging.getLogger("trainwire.serve")

#: A response header: name and value.
Header = tuple[str, str]

#: Static files served, by URL name: (package path, content type).
STATIC: dict[str, tuple[str, str]] = {
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "common.js": ("common.js", "text/javascript; charset=utf-8"),
    "list.js": ("list.js", "text/javascript; charset=utf-8"),
    "job.js": ("job.js", "text/javascript; charset=utf-8"),
    "alerts.js": ("alerts.js", "text/javascript; charset=utf-8"),
    "vendor/uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "vendor/uPlot.min.css": ("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    "vendor/uPlot.LICENSE": ("vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
}
PAGES = {"list": "index.html", "job": "job.html", "login": "login.html"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Seconds between two polls of the database for changes (another process may write).
POLL_INTERVAL = 1.0
#: Rows written up to this many seconds before the newest one seen are read again.
CHANGE_MARGIN = 10.0
#: At most this often, even when the local receiver reports changes all the time (each
#: poll sends every open page the jobs that changed: twice a second keeps a page live and
#: 50 open pages from slowing the receiver).
MIN_POLL_GAP = 0.5
#: And the pause after a poll is at least this many times what the poll took, so that
#: reading a busy fleet's changes never takes more than a quarter of the receiver's time.
POLL_PAUSE_FACTOR = 3.0
#: Seconds between two reads of a job's graph files while its page is open.
GRAPH_INTERVAL = 1.0
KEEPALIVE = 15.0
#: Seconds a client has to send its whole request (request line and headers).
REQUEST_DEADLINE = 10.0
#: Seconds one socket read or write may block: a reader that stalls longer is dropped.
IO_TIMEOUT = 10.0
#: Connections served at once; more get 503 at once (an open page holds one).
MAX_CONNECTIONS = 200
#: Connections the kernel queues before they are accepted.
LISTEN_BACKLOG = 128
#: Largest value of an integer query parameter (a database integer).
MAX_INT_PARAM = 2**63 - 1
#: Largest login form body read (bytes).
MAX_FORM = 8192
#: Where the pages send a reader without a session, and the login form posts to.
LOGIN_PATH = "/login"


def _static(name: str) -> bytes:
    node = resources.files("trainwire._serve").joinpath("static")
    for part in name.split("/"):
        node = node.joinpath(part)
    return node.read_bytes()


class Event(str, enum.Enum):
    """The events of the stream (``event:`` lines), and the end of a stream."""

    SNAPSHOT = "snapshot"
    JOB = "job"
    REJECTED = "rejected"
    GRAPH = "graph"
    CLOSE = "close"


#: One encoder for every frame (``json.dumps`` with options builds one per call).
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def frame(event: Event, data: Any) -> bytes:
    """One event of the stream as it goes on the wire."""
    return f"event: {event.value}\ndata: {_encode(data)}\n\n".encode()


class Subscriber:
    """What one event stream still has to send, coalesced: memory stays bounded.

    A reader that falls behind gets the newest state of each job that changed (and the
    newest counts), not every intermediate one: the stream carries states, so nothing
    a page shows is lost. ``job`` limits it to one job (a job page; no counts then).
    Events are kept encoded (:func:`frame`): the hub encodes each once for every stream.
    """

    def __init__(self, job: tuple[str, str] | None = None) -> None:
        self.job = job
        self._cond = threading.Condition()
        self._jobs: dict[tuple[str, str], bytes] = {}
        self._counts: bytes | None = None
        self._closed = False

    def offer(self, event: Event, data: Any) -> None:
        """Keep ``data`` to send, replacing what it makes out of date."""
        if event is Event.CLOSE:
            with self._cond:
                self._closed = True
                self._cond.notify()
        elif event is Event.JOB:
            self.offer_all({(data["kind"], data["id"]): frame(event, data)}, None)
        elif event is Event.REJECTED:
            self.offer_all({}, frame(event, data))

    def offer_all(self, jobs: dict[tuple[str, str], bytes], counts: bytes | None) -> None:
        """Keep the frames of changed ``jobs`` (in the order changed) and of the ``counts``
        (None: unchanged), waking the stream once."""
        with self._cond:
            if self.job is not None:
                if self.job not in jobs:
                    return
                jobs = {self.job: jobs[self.job]}
            elif counts is not None:
                self._counts = counts
            if self._jobs:  # a reader behind: re-inserted last, in the order of the changes
                for key in jobs.keys() & self._jobs.keys():
                    del self._jobs[key]
                self._jobs.update(jobs)
            else:
                self._jobs = dict(jobs)
            self._cond.notify()

    def take(self, timeout: float) -> list[bytes] | None:
        """The frames kept (waiting up to ``timeout`` for one); None once closed."""
        with self._cond:
            if not (self._closed or self._jobs or self._counts is not None):
                self._cond.wait(timeout)
            if self._closed:
                return None
            frames = list(self._jobs.values())
            if self._counts is not None:
                frames.append(self._counts)
            self._jobs, self._counts = {}, None
            return frames


class Hub:
    """Polls the store for changed jobs and counts, and fans them out to event streams.

    Polling (instead of listening to the local receiver only) also shows what other
    ``serve`` processes on the same database applied. The local receiver :meth:`poke`\\ s
    the hub so that its own changes show at once. While no stream is open the hub does
    not poll: the first subscriber's poll reads everything changed since the last one.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._poked = threading.Event()
        self._stop = threading.Event()
        self._jobs: dict[tuple[str, str], JobRecord] = {}
        self._counts: dict[str, int] = {}
        #: The newest ``updated_at`` seen (None: read every job next time).
        self._since: float | None = None
        self._thread = threading.Thread(target=self._loop, name="trainwire-hub", daemon=True)

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._refresh()
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and end every event stream."""
        self._stop.set()
        self._poked.set()
        with self._lock:
            for sub in self._subscribers:
                sub.offer(Event.CLOSE, None)
        if self._thread.is_alive():
            self._thread.join(5)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def poke(self) -> None:
        """Something changed: poll soon (nothing while no page listens: the receiver pokes
        once per batch, and :meth:`subscribe` pokes)."""
        if self._subscribers:
            self._poked.set()

    def subscribe(self, job: tuple[str, str] | None = None) -> Subscriber:
        """A subscriber to job changes (of every job, or of ``job``) and rejection counts."""
        sub = Subscriber(job)
        with self._lock:
            self._subscribers.add(sub)
        self._poked.set()  # the hub may have been idle: catch up now
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Stop sending to ``sub``."""
        with self._lock:
            self._subscribers.discard(sub)

    def _publish(self, jobs: list[dict[str, Any]], counts: dict[str, int] | None) -> None:
        # Each event encoded once, and each stream woken once, however many are open.
        frames = {(j["kind"], j["id"]): frame(Event.JOB, j) for j in jobs}
        counted = None if counts is None else frame(Event.REJECTED, counts)
        with self._lock:
            for sub in self._subscribers:
                sub.offer_all(frames, counted)

    def _refresh(self) -> None:
        # Only the rows written lately (with a margin for the writers' clocks and for
        # transactions that commit after they started), so 10,000 quiet jobs are not sent
        # again. The database reads the whole jobs table for them: no index may hold
        # updated_at, which every message changes (see the store's schema).
        records = (
            self.store.jobs()
            if self._since is None
            else self.store.jobs_changed_since(self._since - CHANGE_MARGIN)
        )
        counts = self.store.counts()
        changed = []
        with self._lock:
            for j in records:
                key = (j.kind.value, j.job_id)
                if self._jobs.get(key) != j:
                    self._jobs[key] = j
                    changed.append(j)
                self._since = max(self._since or 0.0, j.updated_at)
            if self._since is None:
                self._since = 0.0
            old_counts, self._counts = self._counts, counts
        if changed or counts != old_counts:
            self._publish([job_json(j) for j in changed], None if counts == old_counts else counts)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._poked.wait(POLL_INTERVAL)
            if self._stop.is_set():
                return
            self._poked.clear()
            with self._lock:
                watched = bool(self._subscribers)
            if not watched:  # nobody to tell; subscribe() pokes
                continue
            began = time.monotonic()
            try:
                self._refresh()
            except Exception as exc:
                log.warning("trainwire serve: reading the database failed: %s", exc)
            took = time.monotonic() - began
            self._stop.wait(max(MIN_POLL_GAP, POLL_PAUSE_FACTOR * took))


class WebApp:
    """What the request handler needs: the store, the hub and the receiver's health."""

    def __init__(
        self,
        store: Store,
        hub: Hub,
        *,
        health: Callable[[], dict[str, Any]] | None = None,
        alerts: Callable[[], dict[str, Any]] | None = None,
        metrics: Callable[[], bytes] | None = None,
        loopback_only: bool = True,
        database: str | None = None,
        access: Access | None = None,
    ) -> None:
        self.store = store
        self.hub = hub
        self.health = health or (lambda: {})
        #: ``/api/alerts``: the webhooks and their failures (none without ``--webhook``).
        self.alerts = alerts or (lambda: {"webhooks": []})
        #: ``/metrics``: the Prometheus text (none: 404).
        self.metrics = metrics
        self.loopback_only = loopback_only
        #: The database as ``/api/health`` shows it (no password).
        self.database = store.url if database is None else database
        #: The tokens: who may read (no token: everyone who can connect).
        self.access = access or Access()


class _NotFound(Exception):
    pass


class _BadRequest(Exception):
    pass


def _int_param(query: dict[str, list[str]], name: str, default: int | None) -> int | None:
    values = query.get(name)
    if not values:
        return default
    text = values[-1].strip()
    if not (text.isdigit() and text.isascii()) or len(text) > 19 or int(text) > MAX_INT_PARAM:
        raise _BadRequest(
            f"query parameter {name!r} must be a whole number from 0 to {MAX_INT_PARAM}"
        )
    return int(text)


def loopback_host(host_header: str) -> bool:
    """True when a Host header names this machine (localhost, 127.x, ::1)."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _DeadlineReader(io.RawIOBase):
    """Reads a socket until a deadline: a client that trickles its request is cut off."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the request did not arrive in time")
        self._sock.settimeout(min(left, IO_TIMEOUT))
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server_version = "trainwire-serve"
    app: WebApp
    #: Applied to the socket by ``StreamRequestHandler.setup``: every write is bounded.
    timeout = IO_TIMEOUT

    def setup(self) -> None:
        super().setup()
        deadline = time.monotonic() + REQUEST_DEADLINE
        self.rfile.close()  # the plain reader; the socket stays open
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("trainwire serve: %s %s", self.address_string(), format % args)

    # -- responses ----------------------------------------------------------------------

    def _headers(
        self, status: int, content_type: str, length: int | None, extra: Sequence[Header] = ()
    ) -> None:
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()

    def _send(
        self, status: int, body: bytes, content_type: str, extra: Sequence[Header] = ()
    ) -> None:
        self._headers(status, content_type, len(body), extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200, extra: Sequence[Header] = ()) -> None:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", extra)

    def _error(self, status: int, text: str) -> None:
        self._json({"error": text}, status)

    # -- routing -------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        if urllib.parse.urlsplit(self.path).path == LOGIN_PATH and self.app.access.required:
            if self._host_ok():
                self._login()
            return
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "the API is read-only: use GET")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _host_ok(self) -> bool:
        if self.app.loopback_only and not loopback_host(self.headers.get("Host", "")):
            self.connection.settimeout(IO_TIMEOUT)
            self._error(HTTPStatus.FORBIDDEN, "this server answers only to localhost names")
            return False
        return True

    def do_GET(self) -> None:
        self.connection.settimeout(IO_TIMEOUT)  # the request is read: writes from now on
        if not self._host_ok():
            return
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        if parts and parts[-1] == "" and len(parts) > 1:
            parts.pop()
        try:
            if self._allowed(parts):
                self._route(parts, query)
        except _NotFound as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc) or "not found")
        except _BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except (ConnectionError, socket.timeout):  # the client left or stopped reading
            self.close_connection = True
        except Exception as exc:
            log.exception("trainwire serve: %s failed", self.path)
            with contextlib.suppress(OSError):
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    # -- access control (docs/serve.md, "Access control") ---------------------------------

    def _allowed(self, parts: list[str]) -> bool:
        """True when the request may go on; else it is answered (401, or the login form)."""
        access, head = self.app.access, parts[0] if parts else ""
        if head == "static" or parts in (["login"], ["logout"]):
            return True  # the stylesheet and scripts hold no data; the login form needs them
        grant = Grant.of(self.headers.get("Authorization"), self.headers.get("Cookie"))
        if (access.scrapes if parts == ["metrics"] else access.reads)(grant):
            return True
        if head in ("api", "metrics"):
            challenge = [("WWW-Authenticate", 'Bearer realm="trainwire serve"')]
            text = "this server needs its token: send Authorization: Bearer <token>"
            self._json({"error": text}, HTTPStatus.UNAUTHORIZED, challenge)
        else:
            self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", [("Location", LOGIN_PATH)])
        return False

    def _login_page(self, status: int, failed: bool) -> None:
        page = _static(PAGES["login"])
        if failed:
            note = b'<p id="login-error" class="error" role="alert">Wrong token: try again.</p>'
            page = page.replace(b"<!--error-->", note)
        self._send(status, page, "text/html; charset=utf-8")

    def _login(self) -> None:
        """``POST /login``: the password field against the token; the cookie when right."""
        self.connection.settimeout(IO_TIMEOUT)
        length = self.headers.get("Content-Length", "0").strip()
        if not (length.isdigit() and length.isascii()) or int(length) > MAX_FORM:
            self._error(HTTPStatus.BAD_REQUEST, f"the login form must be at most {MAX_FORM} bytes")
            return
        try:
            body = self.rfile.read(int(length)).decode("utf-8", "replace")
        except (ConnectionError, socket.timeout):
            self.close_connection = True
            return
        password = urllib.parse.parse_qs(body).get("password", [""])[-1]
        if not self.app.access.password_ok(password):
            self._login_page(HTTPStatus.UNAUTHORIZED, failed=True)
            return
        cookie = f"{COOKIE}={self.app.access.session()}; Path=/; HttpOnly; SameSite=Strict"
        self._send(
            HTTPStatus.SEE_OTHER, b"", "text/plain", [("Set-Cookie", cookie), ("Location", "/")]
        )

    def _route(self, parts: list[str], query: dict[str, list[str]]) -> None:
        if parts == ["login"] and self.app.access.required:
            self._login_page(200, failed=False)
        elif parts == ["logout"] and self.app.access.required:
            expired = f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            self._send(
                HTTPStatus.SEE_OTHER,
                b"",
                "text/plain",
                [("Set-Cookie", expired), ("Location", LOGIN_PATH)],
            )
        elif parts in ([""], []):
            self._send(200, _static(PAGES["list"]), "text/html; charset=utf-8")
        elif len(parts) == 3 and parts[0] == "jobs":
            self._job(parts[1], parts[2])  # 404 for an unknown kind
            self._send(200, _static(PAGES["job"]), "text/html; charset=utf-8")
        elif parts[0] == "static":
            entry = STATIC.get("/".join(parts[1:]))
            if entry is None:
                raise _NotFound(f"no static file {'/'.join(parts[1:])!r}")
            self._send(200, _static(entry[0]), entry[1])
        elif parts[0] == "api":
            self._api(parts[1:], query)
        elif parts == ["metrics"] and self.app.metrics is not None:
            self._send(200, self.app.metrics(), PROMETHEUS_TEXT)
        else:
            raise _NotFound("no such page")

    def _job(self, kind: str, job_id: str) -> JobRecord | None:
        if kind not in {k.value for k in Kind}:
            raise _NotFound(f"kind must be one of {[k.value for k in Kind]}")
        return self.app.store.job(kind, job_id)

    def _existing_job(self, kind: str, job_id: str) -> JobRecord:
        job = self._job(kind, job_id)
        if job is None:
            raise _NotFound(f"no {kind} job {job_id!r}")
        return job

    def _api(self, parts: list[str], query: dict[str, list[str]]) -> None:
        store = self.app.store
        limit = _int_param(query, "limit", 100) or 100
        before = _int_param(query, "before", None)
        if parts == ["jobs"]:
            self._jobs(query)
        elif parts == ["jobs", "counts"]:
            counts = store.state_counts(self._job_query(query, None))
            states = {state.value: n for state, n in counts.items()}
            self._json({"states": states, "total": sum(states.values())})
        elif len(parts) == 3 and parts[0] == "jobs":
            job = self._existing_job(parts[1], parts[2])
            data = job_json(job)
            folder = job.metrics_dir
            data["graphs"] = graph_files(folder) if folder else []
            data["timeline"] = [
                transition_json(t) for t in store.timeline(job.kind.value, job.job_id)
            ]
            self._json(data)
        elif len(parts) == 4 and parts[0] == "jobs" and parts[3] == "metrics":
            job = self._existing_job(parts[1], parts[2])
            self._json(self._metrics(job))
        elif len(parts) == 5 and parts[0] == "jobs" and parts[3] == "metrics":
            self._csv(self._existing_job(parts[1], parts[2]), parts[4])
        elif len(parts) == 4 and parts[0] == "jobs" and parts[3] == "messages":
            job = self._existing_job(parts[1], parts[2])
            records = store.messages(
                kind=job.kind.value, job_id=job.job_id, limit=limit, before=before
            )
            self._json([message_json(m) for m in records])
        elif parts == ["rejected"]:
            reason = query.get("reason", [None])[-1]
            if reason is not None and reason not in OUTCOMES[1:]:
                raise _BadRequest(f"reason must be one of {list(OUTCOMES[1:])}")
            records = store.messages(rejected_only=True, outcome=reason, limit=limit, before=before)
            self._json({"counts": store.counts(), "messages": [message_json(m) for m in records]})
        elif parts == ["health"]:
            self._json({"database": self.app.database, **self.app.health()})
        elif parts == ["alerts"]:
            self._json(self.app.alerts())
        elif parts == ["events"]:
            self._events(query)
        elif parts == ["vocabulary"]:
            self._json(
                {
                    "states": [s.value for s in JobState],
                    "kinds": [k.value for k in Kind],
                    "outcomes": list(OUTCOMES),
                }
            )
        else:
            raise _NotFound("no such API endpoint: see docs/serve.md")

    @staticmethod
    def _job_query(query: dict[str, list[str]], limit: int | None) -> JobQuery:
        try:
            return job_query(query, limit)
        except QueryError as exc:
            raise _BadRequest(str(exc)) from None

    def _jobs(self, query: dict[str, list[str]]) -> None:
        """``/api/jobs``: a list (a page of it with ``limit``; the next page's cursor in the
        ``Link`` and ``X-Next-Cursor`` headers)."""
        limit = _int_param(query, "limit", None)
        page = self.app.store.job_page(self._job_query(query, limit))
        link = next_link("/api/jobs", query, page)
        extra = [] if link is None else [("Link", link), ("X-Next-Cursor", page.next or "")]
        self._json([job_json(j) for j in page.jobs], extra=extra)

    def _csv(self, job: JobRecord, file: str) -> None:
        """``/api/jobs/KIND/ID/metrics/GRAPH.csv``: one graph's rows, streamed."""
        name = file[: -len(".csv")] if file.endswith(".csv") else ""
        lines = csv_lines(job.metrics_dir, name) if job.metrics_dir and name else None
        if lines is None:
            raise _NotFound(f"no graph {file!r} of {job.kind.value} job {job.job_id!r}")
        quoted = urllib.parse.quote(file, safe="")
        disposition = f"attachment; filename=\"graph.csv\"; filename*=UTF-8''{quoted}"
        self.close_connection = True  # no length: the end of the body is the end of it
        with contextlib.closing(lines):
            self._headers(
                200, "text/csv; charset=utf-8", None, [("Content-Disposition", disposition)]
            )
            for text in lines if self.command != "HEAD" else ():
                self.wfile.write(text.encode("utf-8"))

    @staticmethod
    def _metrics(job: JobRecord) -> dict[str, Any]:
        folder = job.metrics_dir
        data: dict[str, Any] = {"kind": job.kind.value, "id": job.job_id, "graphs": []}
        if folder is None:
            data["note"] = (
                "the job is not registered, so its model_write_path is unknown: register its "
                "training config (trainwire jobs add FILE, or serve --jobs DIR)"
            )
        else:
            note = folder_note(folder)
            if note is None:
                data["graphs"] = read_graphs(folder)
            else:
                data["note"] = note
        return data

    # -- the event stream --------------------------------------------------------------

    def _event(self, event: Event, data: Any) -> None:
        self.wfile.write(frame(event, data))

    def _events(self, query: dict[str, list[str]]) -> None:
        kind = query.get("kind", [None])[-1]
        job_id = query.get("id", [None])[-1]
        follower: GraphFollower | None = None
        if kind is not None or job_id is not None:
            if kind is None or job_id is None:
                raise _BadRequest("give both kind and id, or neither")
            job = self._job(kind, job_id)  # checks the kind
            if job is not None and job.metrics_dir is not None:
                follower = GraphFollower(job.metrics_dir)
        hub = self.app.hub
        sub = hub.subscribe(None if kind is None else (kind, job_id or ""))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.write(b"retry: 2000\n\n")
            # Read after subscribing: a change from now on also arrives as an event.
            store = self.app.store
            if kind is None:
                # ``list=0``: a page that reads its rows through /api/jobs needs no copy.
                listed = query.get("list", ["1"])[-1] != "0"
                jobs = [job_json(j) for j in store.jobs()] if listed else None
                self._event(Event.SNAPSHOT, {"jobs": jobs, "rejected": store.counts()})
            else:
                job = store.job(kind, job_id or "")
                self._event(Event.SNAPSHOT, {"job": job_json(job) if job else None})
            self.wfile.flush()
            self._stream(sub, kind, job_id, follower)
        except (ConnectionError, socket.timeout):  # gone, or stopped reading for IO_TIMEOUT
            pass
        finally:
            hub.unsubscribe(sub)
            self.close_connection = True

    def _stream(
        self, sub: Subscriber, kind: str | None, job_id: str | None, follower: GraphFollower | None
    ) -> None:
        hub = self.app.hub
        last_write = time.monotonic()
        next_graphs = 0.0
        while not hub.stopping:
            now = time.monotonic()
            if now >= next_graphs and kind is not None:
                if follower is None:  # registered after its page was opened: look again
                    job = self.app.store.job(kind, job_id or "")
                    if job is not None and job.metrics_dir is not None:
                        follower = GraphFollower(job.metrics_dir)
                for update in follower.poll() if follower is not None else []:
                    self._event(Event.GRAPH, update)
                    last_write = now
            if now >= next_graphs:
                next_graphs = now + GRAPH_INTERVAL
            frames = sub.take(max(0.05, next_graphs - time.monotonic()))
            if frames is None:
                return
            if frames:  # one write for all: a busy hub must not cost a system call an event
                self.wfile.write(b"".join(frames))
                last_write = time.monotonic()
            if time.monotonic() - last_write > KEEPALIVE:
                self.wfile.write(b": keepalive\n\n")
                last_write = time.monotonic()
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(app: WebApp, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``app`` bound to ``host:port`` (0 picks a free port)."""
    handler = type("Handler", (_Handler,), {"app": app})
    server_class = _Server6 if ":" in host else _Server
    return server_class((host.strip("[]"), port), handler)
