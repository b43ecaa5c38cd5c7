"""``trainwire serve``'s web side and command line against hostile input: links and FIFOs in
a metrics folder, huge graph files, half-written rows, event-stream readers that stall,
slow-loris clients, out-of-range query numbers, passwords in URLs, terminal escape
sequences in ids, and job folders holding device links and FIFOs. Every case runs a real
``serve`` process (and a real broker, and a real PostgreSQL for the passwords)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pika
import pytest

from _postgres import Postgres
from _serve import ServeProcess, cli, publish_raw, serve_factory_fixture  # noqa: F401
from trainwire._serve._graphs import MAX_POINTS

PK = "pk-test"


def _body(status: str, job_id: str, **extra):
    """A hand-made body (the SDK refuses some of the ids these tests need to send)."""
    body = {"cmd": "training_status", "project_key": PK, "model_id": job_id, "status": status}
    return {**body, **extra}


def _progress(job_id: str, step: int, pct: float):
    return _body("training_ing", job_id, step=step, percentage=pct)


def _memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _registered(serve_factory, broker, queue, make_config, tmp_path, job_id: str):
    """A server with one registered job; returns (server, metrics folder)."""
    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    config = make_config(model_id=job_id)
    (jobs / f"{job_id}.json").write_text(config.read_text())
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--jobs", str(jobs))
    server.wait_job(job_id, state="waiting")
    metrics = Path(json.loads(config.read_text())["model_write_path"]) / "save" / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    return server, metrics


def _connect(server: ServeProcess, **opts: int) -> socket.socket:
    url = urllib.parse.urlsplit(server.url)
    sock = socket.socket()
    for option, value in opts.items():
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, option), value)
    sock.connect((url.hostname, url.port))
    return sock


def _server_side_state(server: ServeProcess, client: socket.socket) -> str:
    """The TCP state (as ``ss`` names it) of the server's end of ``client``'s connection."""
    port = urllib.parse.urlsplit(server.url).port
    filter_ = f"sport = :{port} and dport = :{client.getsockname()[1]}"
    out = subprocess.run(["ss", "-tanH", filter_], capture_output=True, text=True, check=True)
    return out.stdout.split()[0] if out.stdout.strip() else "gone"


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Read (and drop) what the server sent until it closes the connection, or ``within``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(1 << 20):
                return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True
    return False


class _EventReader(threading.Thread):
    """A well-behaved event-stream client that records every ``job`` event."""

    def __init__(self, server: ServeProcess, path: str = "/api/events") -> None:
        super().__init__(daemon=True)
        self.sock = _connect(server)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.jobs: list[dict] = []
        self.graphs: list[dict] = []

    def run(self) -> None:
        buffer, event = b"", ""
        with self.sock:
            while True:
                try:
                    data = self.sock.recv(1 << 16)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    text = line.decode("utf-8")
                    if text.startswith("event: "):
                        event = text[7:]
                    elif text.startswith("data: ") and event == "job":
                        self.jobs.append(json.loads(text[6:]))
                    elif text.startswith("data: ") and event == "graph":
                        self.graphs.append(json.loads(text[6:]))

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.join(10)


# -- graphs ------------------------------------------------------------------------------


def test_links_fifos_and_devices_in_a_metrics_folder_are_never_served(
    serve_factory, broker, queue, make_config, tmp_path
):
    server, metrics = _registered(serve_factory, broker, queue, make_config, tmp_path, "m-links")
    secret = tmp_path / "secret.txt"
    secret.write_text("root, SECRET-HASH\n1, 2\n")
    (metrics / "loss.log").write_text("step, loss\n1, 0.5\n")
    (metrics / "shadow.log").symlink_to(secret)
    (metrics / "zero.log").symlink_to("/dev/zero")
    os.mkfifo(metrics / "fifo.log")
    (metrics / "fifo-link.log").symlink_to(metrics / "fifo.log")

    assert server.get("/api/jobs/training/m-links")["graphs"] == ["loss.log"]
    started = time.monotonic()
    graphs = server.get("/api/jobs/training/m-links/metrics")["graphs"]
    assert time.monotonic() - started < 5  # a FIFO never blocks the request
    assert [(g["file"], g["rows"]) for g in graphs] == [("loss.log", [[1, 0.5]])]
    reader = _EventReader(server, "/api/events?kind=training&id=m-links")
    reader.start()
    server.wait_until("the graph event", lambda: reader.graphs)
    reader.close()
    assert [g["file"] for g in reader.graphs] == ["loss.log"]
    assert "SECRET" not in json.dumps(reader.graphs)


def test_a_linked_metrics_folder_is_not_followed(
    serve_factory, broker, queue, make_config, tmp_path
):
    server, metrics = _registered(serve_factory, broker, queue, make_config, tmp_path, "m-dir")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "auth.log").write_text("user, SECRET\n1, 2\n")
    metrics.rmdir()
    metrics.symlink_to(elsewhere, target_is_directory=True)

    data = server.get("/api/jobs/training/m-dir/metrics")
    assert data["graphs"] == [] and "link" in data["note"]
    assert server.get("/api/jobs/training/m-dir")["graphs"] == []


def test_a_graph_of_millions_of_rows_is_thinned_in_bounded_memory_keeping_its_spikes(
    serve_factory, broker, queue, make_config, tmp_path
):
    server, metrics = _registered(serve_factory, broker, queue, make_config, tmp_path, "m-big")
    rows = 2_000_000
    spike_at = 1_234_567
    with open(metrics / "loss.log", "w") as fh:
        fh.write("step, train, val\n")
        for start in range(0, rows, 100_000):
            fh.write(
                "".join(
                    f"{i}, {1.0 + (i % 100) / 1000:.4f}, {999.0 if i == spike_at else 0.5}\n"
                    for i in range(start, start + 100_000)
                )
            )
    size_mb = (metrics / "loss.log").stat().st_size / 2**20
    before = _memory_kib(server.proc.pid)

    url = server.url + "/api/jobs/training/m-big/metrics"
    with urllib.request.urlopen(url, timeout=120) as resp:  # seconds of parsing on a busy CI
        body = resp.read()
    graph = json.loads(body)["graphs"][0]

    after = _memory_kib(server.proc.pid)
    grown_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(
        f"{rows} rows, {size_mb:.0f} MB file: {len(graph['rows'])} rows sent, "
        f"peak RSS +{grown_mb:.0f} MB"
    )
    assert grown_mb < 80, f"serve grew by {grown_mb:.0f} MB reading a {size_mb:.0f} MB graph"
    assert 1000 < len(graph["rows"]) <= MAX_POINTS and len(body) < 2 * 2**20
    assert graph["rows"][0] == [0, 1.0, 0.5] and graph["rows"][-1] == [rows - 1, 1.099, 0.5]
    assert max(r[2] for r in graph["rows"]) == 999.0  # the spike survives the thinning
    assert min(r[1] for r in graph["rows"]) == 1.0 and max(r[1] for r in graph["rows"]) == 1.099
    steps = [r[0] for r in graph["rows"]]
    assert steps == sorted(steps)


def test_a_last_line_without_its_newline_is_read_only_once_complete(
    serve_factory, broker, queue, make_config, tmp_path
):
    server, metrics = _registered(serve_factory, broker, queue, make_config, tmp_path, "m-cut")
    graph_file = metrics / "loss.log"
    graph_file.write_text("step, loss\n1, 0.5\n2, 0.2")  # "2, 0.25" is being written

    assert server.get("/api/jobs/training/m-cut/metrics")["graphs"][0]["rows"] == [[1, 0.5]]
    reader = _EventReader(server, "/api/events?kind=training&id=m-cut")
    reader.start()
    server.wait_until("the first graph event", lambda: reader.graphs)
    with open(graph_file, "a") as fh:
        fh.write("5\n3, 0.1")
    server.wait_until("the completed row", lambda: len(reader.graphs) >= 2)
    with open(graph_file, "a") as fh:
        fh.write("\n")
    server.wait_until("the last row", lambda: len(reader.graphs) >= 3)
    reader.close()
    assert [(g["rows"], g["reset"]) for g in reader.graphs] == [
        ([[1, 0.5]], True),
        ([[2, 0.25]], False),
        ([[3, 0.1]], False),
    ]


# -- the event stream ----------------------------------------------------------------------


def _publish_rounds(broker, queue: str, ids: list[str], rounds: int, pace: float) -> int:
    """``rounds`` training_ing messages for each job of ``ids``, a round every ``pace`` s."""
    conn = pika.BlockingConnection(broker.params())
    channel = conn.channel()
    props = pika.BasicProperties(content_type="application/json", delivery_mode=1)
    for step in range(1, rounds + 1):
        started = time.monotonic()
        for job_id in ids:
            body = json.dumps(_progress(job_id, step, min(99.0, float(step))))
            channel.basic_publish("", queue, body.encode(), props)
        conn.process_data_events(max(0.0, pace - (time.monotonic() - started)))
    conn.close()
    return rounds * len(ids)


def _seen(jobs: list[dict]) -> set[tuple[str, int]]:
    return {(job["id"], job["step"]) for job in jobs}


def test_stalled_event_stream_readers_are_dropped_and_memory_stays_bounded(
    serve_factory, broker, queue
):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    # Long ids make big events: the kernel buffers a few MB for a reader that stalls.
    ids = [f"flow-{i:03d}-" + "x" * 480 for i in range(300)]
    _publish_rounds(broker, queue, ids, rounds=1, pace=0)
    server.wait_count("jobs", lambda: server.get("/api/jobs"), len(ids), timeout=60)
    before = _memory_kib(server.proc.pid)
    stalled = []
    for _ in range(3):  # ask for the stream, then never read
        sock = _connect(server, SO_RCVBUF=4096)
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        stalled.append(sock)
    live = _EventReader(server)
    live.start()

    sent = _publish_rounds(broker, queue, ids, rounds=20, pace=0.3)
    server.wait_job(ids[-1], step=20, timeout=60)
    last = (ids[-1], 20)
    server.wait_until("the live reader's last event", lambda: last in _seen(live.jobs))
    after = _memory_kib(server.proc.pid)
    grown_mb = (after["VmRSS"] - before["VmRSS"]) / 1024
    print(
        f"{sent} messages, {len(live.jobs)} job events to the live reader, RSS +{grown_mb:.0f} MB"
    )
    # A reader that stopped reading is dropped once a write waited IO_TIMEOUT (10 s): the
    # server closes its side (reading now would unblock the write and hide that).
    server.wait_until(
        "the server to close the stalled streams",
        lambda: all(_server_side_state(server, sock) != "ESTAB" for sock in stalled),
        timeout=30,
    )
    assert [_closed_by_server(sock, within=10) for sock in stalled] == [True] * 3
    live.close()
    assert grown_mb < 40, f"serve grew by {grown_mb:.0f} MB with stalled readers"
    for sock in stalled:
        sock.close()


# -- HTTP --------------------------------------------------------------------------------


def test_query_numbers_beyond_a_database_integer_are_a_400(serve_factory, broker, queue):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    publish_raw(broker, queue, _progress("m-q", 1, 1.0))
    server.wait_job("m-q", state="running")
    for query in (
        "before=99999999999999999999999",
        "before=9223372036854775808",
        "limit=99999999999999999999999",
        "before=-1",
        "before=1e3",
        "limit=" + "9" * 5000,
    ):
        assert server.status(f"/api/jobs/training/m-q/messages?{query}") == 400, query
        assert server.status(f"/api/rejected?{query}") == 400, query
    assert server.status("/api/jobs/training/m-q/messages?before=9223372036854775807") == 200
    assert [m["step"] for m in server.messages("m-q")] == [1]


def test_the_listen_backlog_holds_a_burst_of_connections(serve_factory, broker, queue):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    port = urllib.parse.urlsplit(server.url).port
    listen = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(listen[2]) >= 128, f"listen backlog: {listen}"  # Send-Q of a listener


def _refused(server: ServeProcess) -> bool:
    """Whether a new connection gets the immediate 503 of a server at its connection cap."""
    with _connect(server) as extra:
        extra.sendall(b"GET /api/jobs HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        extra.settimeout(10)
        return extra.recv(100).startswith(b"HTTP/1.0 503")


def test_slow_and_idle_clients_are_cut_off_and_capped_and_never_hold_the_server(
    serve_factory, broker, queue
):
    from trainwire._serve._web import MAX_CONNECTIONS

    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    loris = _connect(server)  # one byte of its request now and then, before a read times out
    idle = [_connect(server) for _ in range(MAX_CONNECTIONS - 2)]  # say nothing at all
    holder = _connect(server)  # takes the last slot: one more is refused at once
    server.wait_until("the connection cap", lambda: _refused(server))
    holder.close()  # frees its slot
    server.wait_until("a free slot", lambda: not _refused(server))

    request = b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100
    started = time.monotonic()
    cut = False
    for byte in request:
        try:
            loris.sendall(bytes([byte]))
        except ConnectionError:
            cut = True
            break
        if _closed_by_server(loris, within=1.0):
            cut = True
            break
        assert server.get("/api/jobs") == []  # others are served meanwhile
    elapsed = time.monotonic() - started
    loris.close()
    assert cut, "the server waited for the whole trickled request"
    assert elapsed < 20, f"cut off after {elapsed:.1f} s"
    assert [_closed_by_server(sock, within=10) for sock in idle] == [True] * len(idle)
    for sock in idle:
        sock.close()
    server.wait_until("service for every slot", lambda: not _refused(server))


# -- the command line --------------------------------------------------------------------


def test_jobs_list_escapes_terminal_control_sequences(make_config, tmp_path):
    # The receiver refuses such ids now, but a database written by an older trainwire (or
    # another tool on the same PostgreSQL) may hold them: the listing must not replay them.
    assert cli("jobs", "add", str(make_config(model_id="m-plain")), cwd=tmp_path).returncode == 0
    evil_id = "evil\x1b]0;pwned\x07\x1b[2J"
    with sqlite3.connect(tmp_path / "trainwire-serve.sqlite3") as db:
        db.execute(
            "UPDATE tw_jobs SET job_id = ?, state = 'error', message = ? WHERE job_id = ?",
            (evil_id, "bad\x1b[31m red\r\n\u202egnp", "m-plain"),
        )
    result = cli("jobs", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\u202e" not in result.stdout and "\r" not in result.stdout
    line = next(line for line in result.stdout.splitlines() if "evil" in line)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J" in line
    assert "bad\\x1b[31m red\\r\\n\\u202egnp" in line


def test_a_jobs_folder_with_a_device_link_or_a_fifo_serves_the_good_configs(
    serve_factory, broker, queue, make_config, tmp_path
):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "good.json").write_text(make_config(model_id="m-good").read_text())
    (jobs / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(jobs / "fifo.yaml")

    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--jobs", str(jobs))

    server.wait_job("m-good", state="waiting")
    server.wait_until(
        "both bad files named",
        lambda: "zero.json" in server.output() and "fifo.yaml" in server.output(),
    )
    assert "MemoryError" not in server.output() and "Traceback" not in server.output()


def test_amqp_url_from_the_environment_and_password_from_a_file_stay_out_of_argv(
    serve_factory, broker, queue, tmp_path
):
    url = urllib.parse.urlsplit(broker.amqp_url)
    password_file = tmp_path / "amqp.pw"
    password_file.write_text(f"{url.password}\n")
    user_only = broker.amqp_url.replace(f":{url.password}@", "@")
    assert f":{url.password}@" not in user_only

    by_file = serve_factory(
        "--amqp-url", user_only, "--amqp-password-file", str(password_file), "--queue", queue
    )
    by_env = serve_factory("--queue", queue, env={"TRAINWIRE_AMQP_URL": broker.amqp_url})

    for server in (by_file, by_env):
        server.wait_until(
            "consuming", lambda s=server: s.get("/api/health")["receiver"] == "consuming"
        )
        assert f":{url.password}@" not in server.get("/api/health")["broker"]
        cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert f":{url.password}@".encode() not in cmdline
    publish_raw(broker, queue, _progress("m-env", 1, 1.0))
    by_file.wait_job("m-env", state="running")


# -- PostgreSQL passwords ------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.close()


PG_PASSWORD = "se#cret?pw"


@pytest.fixture(scope="module")
def pg_with_password(postgres):
    """A database and a role that must log in with PG_PASSWORD (scram), not trust."""
    postgres.psql(f"CREATE ROLE tw_pw LOGIN PASSWORD '{PG_PASSWORD}'")
    postgres.psql("CREATE DATABASE tw_pw OWNER tw_pw")
    hba = postgres.data / "pg_hba.conf"
    stat = hba.stat()
    hba.write_text(f"host all tw_pw 127.0.0.1/32 scram-sha-256\n{hba.read_text()}")
    os.chown(hba, stat.st_uid, stat.st_gid)
    postgres.psql("SELECT pg_reload_conf()")
    return postgres


def _leaks(text: str) -> bool:
    return any(part in text for part in ("se#cret", "cret?pw", "se%23cret", PG_PASSWORD))


@pytest.mark.parametrize(
    "form",
    ["in the user info", "as ?password=", "percent-encoded"],
)
def test_a_postgres_password_never_shows_in_the_start_line_or_health(
    form, serve_factory, broker, queue, pg_with_password
):
    pg = pg_with_password
    where = f"127.0.0.1:{pg.port}/tw_pw"
    quoted = urllib.parse.quote(PG_PASSWORD, safe="")
    db = {
        "in the user info": f"postgresql://tw_pw:{PG_PASSWORD}@{where}",  # libpq reads '#', '?'
        "as ?password=": f"postgresql://tw_pw@{where}?password={quoted}&sslmode=disable",
        "percent-encoded": f"postgresql://tw_pw:{quoted}@{where}",
    }[form]
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--db", db)
    health = server.get("/api/health")
    assert health["database"].startswith("postgresql://tw_pw:***@127.0.0.1:")
    assert not _leaks(json.dumps(health)) and not _leaks(server.output())
    publish_raw(broker, queue, _progress(f"m-pg-{uuid.uuid4().hex[:6]}", 1, 1.0))
    server.wait_until("a stored message", lambda: server.get("/api/jobs"))


def test_postgres_password_from_a_file_or_pgpassword_and_a_wrong_one_is_not_echoed(
    serve_factory, broker, queue, pg_with_password, tmp_path
):
    pg = pg_with_password
    db = f"postgresql://tw_pw@127.0.0.1:{pg.port}/tw_pw"
    password_file = tmp_path / "db.pw"
    password_file.write_text(PG_PASSWORD + "\n")
    by_file = serve_factory(
        "--amqp-url", broker.amqp_url, "--queue", queue, "--db", db,
        "--db-password-file", str(password_file),
    )  # fmt: skip
    assert by_file.get("/api/health")["database"] == db
    by_env = serve_factory(
        "--amqp-url",
        broker.amqp_url,
        "--queue",
        queue,
        env={"TRAINWIRE_DB": db, "PGPASSWORD": PG_PASSWORD},
    )
    assert by_env.get("/api/health")["database"] == db

    password_file.write_text("wrong#pass-word\n")
    result = cli("jobs", "list", "--db", db, "--db-password-file", str(password_file), cwd=tmp_path)
    assert result.returncode == 2
    assert "password authentication failed" in result.stderr
    assert "wrong#pass" not in result.stderr + result.stdout
    result = cli(
        "jobs",
        "list",
        "--db",
        db + "?password=x",
        "--db-password-file",
        str(password_file),
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "in one place" in result.stderr
    # A '/' in the password cuts it short for libpq (the rest reads as a port): not echoed.
    cut_short = f"postgresql://tw_pw:se#cret/pw@127.0.0.1:{pg.port}/tw_pw"
    result = cli("jobs", "list", "--db", cut_short, cwd=tmp_path)
    assert result.returncode == 2 and "cannot connect" in result.stderr
    assert "cret" not in result.stderr + result.stdout
