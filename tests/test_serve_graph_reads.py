"""A long graph on the job page: thinned to what a chart can show, its spikes kept, and read
whole only once. A real ``serve`` process and a real broker; what the server read from
disk is its own ``/proc/<pid>/io`` counter, so no timing is asserted."""

from __future__ import annotations

import json
import socket
import urllib.parse
from pathlib import Path

from _serve import ServeProcess, serve_factory_fixture  # noqa: F401

#: Rows a page's first graph event may carry at most: two a pixel for a 2,000-pixel chart.
PAGE_ROWS = 4_000


def _write(path: Path, first: int, last: int, spike_at: int, header: bool) -> None:
    with open(path, "a") as fh:
        if header:
            fh.write("step, loss, accuracy\n")
        fh.write(
            "".join(
                f"{i}, {1e6 if i == spike_at else 1.0 + (i % 9) / 100}, {i / last:.5f}\n"
                for i in range(first, last + 1)
            )
        )


def _read_bytes(server: ServeProcess) -> int:
    """Bytes the serve process has read so far (files and sockets)."""
    for line in Path(f"/proc/{server.proc.pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/<pid>/io")


def _first_graph(server: ServeProcess, job_id: str) -> dict:
    """The job page's stream, read up to its first ``graph`` event."""
    url = urllib.parse.urlsplit(server.url)
    path = f"/api/events?kind=training&id={job_id}"
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        buffer = b""
        while True:
            data = sock.recv(1 << 20)
            assert data, "the stream ended before its graph event"
            *events, buffer = (buffer + data).split(b"\n\n")
            for event in events:
                if event.startswith(b"event: graph\ndata: "):
                    return dict(json.loads(event.split(b"data: ", 1)[1]))


def _spike(rows: list[list[float]], value: float) -> list[float]:
    return [r[0] for r in rows if r[1] == value]


def test_a_long_graph_is_thinned_for_the_page_and_read_whole_only_once(
    serve_factory, broker, queue, make_config, tmp_path
):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    config = make_config(model_id="m-long")
    (jobs / "m-long.json").write_text(config.read_text())
    metrics = Path(json.loads(config.read_text())["model_write_path"]) / "save" / "metrics"
    metrics.mkdir(parents=True)
    log = metrics / "loss.log"
    _write(log, 1, 200_000, spike_at=123_457, header=True)
    size = log.stat().st_size
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--jobs", str(jobs))
    server.wait_job("m-long", state="waiting")

    graph = _first_graph(server, "m-long")
    rows = graph["rows"]
    assert 1_000 < len(rows) <= PAGE_ROWS
    assert rows[-1] == [200_000, 1.0 + (200_000 % 9) / 100, 1.0]
    assert len(_spike(rows, 1e6)) == 1 and abs(_spike(rows, 1e6)[0] - 123_457) < 200
    assert graph["stats"][0]["max"] == 1e6

    # Another page, then the JSON route: the server continues its read, not the file again.
    before = _read_bytes(server)
    assert _first_graph(server, "m-long")["rows"] == rows
    assert server.get("/api/jobs/training/m-long/metrics")["graphs"][0]["rows"] == rows
    assert _read_bytes(server) - before < size // 10

    # The training goes on: the new rows (and a new spike) show, still without a re-read.
    _write(log, 200_001, 200_100, spike_at=200_050, header=False)
    before = _read_bytes(server)
    grown = _first_graph(server, "m-long")
    assert _read_bytes(server) - before < size // 10
    assert grown["rows"][-1][0] == 200_100 and _spike(grown["rows"], 1e6)
    assert len(grown["rows"]) <= PAGE_ROWS and grown["stats"][0]["last"] == 1.0 + 200_100 % 9 / 100

    # Rewritten in place (same file, new start): read again, nothing of the old one kept.
    with open(log, "w") as fh:
        fh.write("epoch, auc\n1, 0.5\n2, 0.75\n")
    again = _first_graph(server, "m-long")
    assert again["columns"] == ["epoch", "auc"] and again["rows"] == [[1, 0.5], [2, 0.75]]
