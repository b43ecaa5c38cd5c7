"""The JSON API and the event stream of ``trainwire serve``, as documented in docs/serve.md,
read over real HTTP from a real server process."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from pathlib import Path

import pytest

import trainwire
from _serve import publish_raw, serve_factory_fixture  # noqa: F401

JOB_FIELDS = {"kind", "id", "state", "percentage", "step", "message", "last_message_at"}


def _request(server, path: str, method: str = "GET", headers: dict | None = None):
    url = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


@pytest.fixture
def served(serve_factory, broker, queue, make_config, tmp_path):
    """A server with a registered, running job that has graphs, and a finished one."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    config = make_config(model_id="model-api")
    (jobs / "api.yaml").write_text(config.read_text())  # JSON is valid YAML
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--jobs", str(jobs))
    run = trainwire.init(config, total_steps=10, max_rate=None)
    for step in range(1, 4):
        run.progress(step)
        run.log("loss", step, train=1.0 / step, val=2.0 / step)
    server.wait_job("model-api", state="running", step=3)
    other = make_config(model_id="모델-끝")
    with trainwire.init(other, total_steps=2, max_rate=None) as done_run:
        done_run.progress(2)
    server.wait_job("모델-끝", state="done")
    yield server, run, Path(json.loads(config.read_text())["model_write_path"])
    run.done()


def test_jobs_list_has_the_documented_fields_and_filters(served):
    server, _, _ = served
    jobs = server.get("/api/jobs")
    assert isinstance(jobs, list) and len(jobs) == 2
    for job in jobs:
        assert set(job) >= JOB_FIELDS
        assert job["kind"] == "training"
        assert job["last_message_at"].endswith("Z")
        assert "project_key" not in job
    running = server.get("/api/jobs?state=running")
    assert [(j["id"], j["step"], j["percentage"]) for j in running] == [("model-api", 3, 30.0)]
    assert [j["id"] for j in server.get("/api/jobs?state=done")] == ["모델-끝"]
    assert server.get("/api/jobs?kind=validation") == []
    resp, body = _request(server, "/api/jobs")
    assert resp.getheader("Content-Type") == "application/json; charset=utf-8"
    assert "모델-끝".encode() in body  # UTF-8, not \\u escapes


def test_job_detail_metrics_and_messages(served):
    server, _, model_dir = served
    detail = server.get("/api/jobs/training/model-api")
    assert detail["state"] == "running" and detail["registered"] is True
    assert detail["graphs"] == ["loss.log"]
    metrics_dir = model_dir / "save" / "metrics"
    # A hand-written graph: a NaN cell is a gap, a short row is skipped, and a line still
    # being written (no newline yet) is not read.
    (metrics_dir / "acc.log").write_text("epoch, top1\n1, 0.5\n2, nan\n3\n4, 0.7\n5, 0.")
    graphs = server.get("/api/jobs/training/model-api/metrics")["graphs"]
    by_file = {g["file"]: g for g in graphs}
    assert list(by_file) == ["acc.log", "loss.log"]
    assert by_file["loss.log"]["columns"] == ["step", "train", "val"]
    assert by_file["loss.log"]["rows"] == [[1, 1.0, 2.0], [2, 0.5, 1.0], [3, 1 / 3, 2 / 3]]
    assert by_file["acc.log"]["rows"] == [[1, 0.5], [2, None], [4, 0.7]]
    assert by_file["acc.log"]["skipped_rows"] == 1
    messages = server.get("/api/jobs/training/model-api/messages?limit=2")
    assert [(m["step"], m["outcome"]) for m in messages] == [(3, "applied"), (2, "applied")]
    older = server.get(f"/api/jobs/training/model-api/messages?before={messages[-1]['seq']}")
    assert [m["step"] for m in older] == [1]
    quoted = urllib.parse.quote("모델-끝", safe="")
    unregistered = server.get(f"/api/jobs/training/{quoted}/metrics")
    assert unregistered["graphs"] == [] and "not registered" in unregistered["note"]


def test_errors_are_json_with_the_right_status(served):
    server, _, _ = served
    assert server.status("/api/jobs/training/no-such-job") == 404
    assert server.status("/api/jobs/training/no-such-job/metrics") == 404
    assert server.status("/api/jobs/bogus-kind/model-api") == 404
    assert server.status("/api/nothing-here") == 404
    assert server.status("/jobs/bogus-kind/x") == 404
    assert server.status("/static/../../etc/passwd") == 404
    assert server.status("/api/rejected?reason=bogus") == 400
    assert server.status("/api/jobs/training/model-api/messages?limit=ten") == 400
    resp, body = _request(server, "/api/jobs", method="POST")
    assert resp.status == 405 and "read-only" in json.loads(body)["error"]
    # Another site's name for this address (DNS rebinding) is refused.
    resp, _ = _request(server, "/api/jobs", headers={"Host": "evil.example:8080"})
    assert resp.status == 403


def test_pages_and_static_files_are_served_with_strict_headers(served):
    server, _, _ = served
    for path, kind in [
        ("/", "text/html"),
        ("/jobs/training/model-api", "text/html"),
        ("/static/job.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/vendor/uPlot.iife.min.js", "text/javascript"),
        ("/static/vendor/uPlot.LICENSE", "text/plain"),
    ]:
        resp, body = _request(server, path)
        assert resp.status == 200, path
        assert resp.getheader("Content-Type").startswith(kind), path
        assert "script-src 'self'" in resp.getheader("Content-Security-Policy")
        assert resp.getheader("X-Content-Type-Options") == "nosniff"
        assert body
    _, page = _request(server, "/")
    assert b'<meta charset="utf-8">' in page
    assert b"//cdn" not in page and b"https://" not in page


def test_event_stream_sends_a_snapshot_then_changes(served, broker, queue):
    server, run, _ = served
    url = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    conn.request("GET", "/api/events")
    resp = conn.getresponse()
    assert resp.getheader("Content-Type").startswith("text/event-stream")

    def next_event() -> tuple[str, dict]:
        name, data = "", ""
        while True:
            line = resp.fp.readline().decode("utf-8").rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and name:
                return name, json.loads(data)

    name, snapshot = next_event()
    assert name == "snapshot"
    assert {j["id"] for j in snapshot["jobs"]} == {"model-api", "모델-끝"}
    assert snapshot["rejected"] == {}
    run.progress(8)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        name, data = next_event()
        if name == "job" and data["id"] == "model-api" and data["step"] == 8:
            break
    else:
        pytest.fail("no job event for step 8")
    publish_raw(broker, queue, b"not json", message_id="junk")
    while time.monotonic() < deadline:
        name, data = next_event()
        if name == "rejected":
            assert data == {"malformed_json": 1}
            break
    else:
        pytest.fail("no rejected event")
    conn.close()


def test_health_and_vocabulary(served):
    server, _, _ = served
    health = server.get("/api/health")
    assert health["receiver"] == "consuming" and health["database"].startswith("sqlite:///")
    assert health["received"] >= 5 and health["outcomes"]["applied"] >= 5
    vocabulary = server.get("/api/vocabulary")
    assert vocabulary["states"] == ["waiting", "running", "done", "error", "abnormal"]
    assert "unknown_project_key" in vocabulary["outcomes"]
