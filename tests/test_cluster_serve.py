"""``trainwire serve`` on a real three-node cluster: the node it consumes from is stopped
while a real training reports every step; serve goes on from another node and applies each
message exactly once (the ``message_id`` table turns redeliveries into ``duplicate``)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from _cluster import STAGE_TIMEOUT, Cluster, Training, report, write_config
from _serve import ServeProcess, serve_factory_fixture  # noqa: F401

JOB = "model-cluster"


def message_log(server: ServeProcess) -> list[dict[str, Any]]:
    """The job's whole message log, oldest first (paged by ``before``)."""
    path = f"/api/jobs/training/{urllib.parse.quote(JOB, safe='')}/messages?limit=1000"
    out: list[dict[str, Any]] = []
    page = server.get(path)
    while page:
        out += page
        page = server.get(f"{path}&before={page[-1]['seq']}")
    return list(reversed(out))


def job_step(server: ServeProcess) -> int:
    """The newest step the server applied to the job (0 before any)."""
    return int((server.job(JOB) or {}).get("step") or 0)


def test_serve_goes_on_from_another_node_and_applies_each_message_once(
    cluster: Cluster, tmp_path: Path, serve_factory: Any, request: Any
) -> None:
    queue = cluster.declare_quorum_queue()
    args = [a for url in cluster.amqp_urls() for a in ("--amqp-url", url)]
    server = serve_factory(*args, "--queue", queue, "--prefetch", "20")
    assert server.proc is not None
    training = Training(write_config(tmp_path, cluster.endpoints(), queue), tmp_path, pause=0.01)
    try:
        consumed = cluster.wait_client_node(
            server.proc.pid, alive=lambda: server.proc.poll() is None
        )
        training.go()
        server.wait_job(JOB, timeout=STAGE_TIMEOUT, state="running")
        server.wait_until("step 100 applied", lambda: job_step(server) >= 100, STAGE_TIMEOUT)
        cluster.stop_app(consumed)
        moved = cluster.wait_client_node(
            server.proc.pid, besides=[consumed], timeout=STAGE_TIMEOUT,
            alive=lambda: server.proc.poll() is None,
        )  # fmt: skip
        assert moved is not consumed
        after = training.step() + 100
        server.wait_until(f"step {after} applied", lambda: job_step(server) >= after, STAGE_TIMEOUT)
        result = training.end()
        job = server.wait_job(JOB, timeout=STAGE_TIMEOUT, state="done")
    finally:
        training.close()
        cluster.restore()
    log = message_log(server)
    applied = [m for m in log if m["outcome"] == "applied"]
    ids = [m["message_id"] for m in applied]
    assert len(ids) == len(set(ids)), "a message was applied twice"
    steps = sorted(m["step"] for m in applied if m["status"] == "training_ing")
    assert steps == list(range(1, result["last_step"] + 1)), "a step was not applied"
    assert [m["status"] for m in applied].count("training_done") == 1
    assert job["applied"] == len(applied)
    assert {m["outcome"] for m in log} <= {"applied", "duplicate"}, {m["outcome"] for m in log}
    duplicates = sum(m["outcome"] == "duplicate" for m in log)
    cluster.delete_queue(queue)
    report(request, f"{len(applied)} applied once each, {duplicates} duplicate(s) recognised, "
                    f"consumer moved {consumed.index} -> {moved.index}")  # fmt: skip
