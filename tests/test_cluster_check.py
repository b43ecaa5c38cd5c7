"""``trainwire check`` with a config listing several broker nodes: a line per node, a
stopped node is a warning while another node is ready, and no ready node is a failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _broker import free_port
from _cli_helpers import trainwire
from _cluster import Cluster, write_config


def check(config: Path) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    """Exit status, the JSON report, and the node lines by ``host:port``."""
    result = trainwire("check", "--config", config, "--json")
    report = json.loads(result.stdout)
    nodes = {c["node"]: c for c in report["checks"] if c["name"] == "node"}
    return result.returncode, report, nodes


def test_a_stopped_node_is_a_warning_and_the_others_are_ready(
    cluster: Cluster, tmp_path: Path
) -> None:
    queue = cluster.declare_quorum_queue()
    endpoints = cluster.endpoints()
    config = write_config(tmp_path, endpoints, queue)
    stopped = cluster.nodes[1]
    cluster.stop_app(stopped)
    try:
        status, report, nodes = check(config)
        text = trainwire("check", "--config", config)
    finally:
        cluster.restore()
        cluster.delete_queue(queue)
    down = endpoints[stopped.index - 1]
    assert status == 0 and report["ok"] is True, report
    assert report["brokers"] == endpoints
    assert list(nodes) == endpoints
    assert nodes[down]["verdict"] == "warn"
    assert nodes[down]["detail"].startswith("unreachable: "), nodes[down]
    assert all(nodes[ep]["verdict"] == "pass" for ep in endpoints if ep != down), nodes
    assert all(repr(queue) in nodes[ep]["detail"] for ep in endpoints if ep != down)
    (summary,) = [c for c in report["checks"] if c["name"] == "nodes"]
    assert summary["verdict"] == "pass" and summary["detail"].startswith("2 of 3 nodes ready")
    assert text.returncode == 0
    assert f"[warn] node {down}" in text.stdout
    assert f"READY, with 1 warning(s): node {down}." in text.stdout
    assert all(f"[pass] node {ep}" in text.stdout for ep in endpoints if ep != down)


def test_no_node_ready_fails_and_a_refused_login_is_a_failure_not_a_warning(
    cluster: Cluster, tmp_path: Path
) -> None:
    closed = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    status, report, nodes = check(write_config(tmp_path, closed, "tw-any"))
    assert status == 1 and report["ok"] is False
    assert [n["verdict"] for n in nodes.values()] == ["warn", "warn"]
    (summary,) = [c for c in report["checks"] if c["name"] == "nodes"]
    assert summary["verdict"] == "fail" and "message_host" in summary["fix"]

    config = write_config(tmp_path, [cluster.endpoints()[0], closed[0]], "tw-any")
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "message_pw": "wrong-secret-987"}))
    result = trainwire("check", "--config", config, "--json")
    report = json.loads(result.stdout)
    verdicts = [c["verdict"] for c in report["checks"] if c["name"] == "node"]
    assert result.returncode == 1 and verdicts == ["fail", "warn"], report
    assert "wrong-secret-987" not in result.stdout + result.stderr
