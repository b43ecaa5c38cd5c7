"""Failover between broker nodes, on one real broker reached through two TCP proxies.

Each proxy stands for one node of a cluster (the queue behind them is the same, as a
cluster's is): the config lists both, and a fault cuts the node the training is using
mid-run. A node that dies (its connections reset, new ones refused), a node that goes
silent (a partition: the socket stays open, no byte flows) and a node that is down from
the start; on a classic queue, and on a quorum queue (confirms and redelivery as a
cluster's quorum queue gives them; tests/test_cluster_failover.py has the real cluster).
For each: the run goes on on the other node, exactly one terminal message, steps never go
back, no step lost (every-step mode), and the worst ``progress()`` call is reported. The
time from the fault to the first new step visible to an independent consumer through the
other node is printed (a figure, not asserted).

The consumer side (``trainwire serve``): :func:`trainwire._broker.connect` with several
nodes moves on past a refusing node, and starts after the node it used last.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from _faults import (
    DONE,
    PROGRESS,
    STALL_BOUND,
    Training,
    check_run,
    collect,
    fault_report,
    write_config,
)
from _proxy import TcpProxy
from trainwire._broker import connect, url_parameters

__all__ = ["fault_report"]  # fixtures

STEPS = 400


def _two_nodes(proxy: Any, tmp_path: Any, queue: str) -> tuple[TcpProxy, TcpProxy, Any]:
    a, b = proxy(), proxy()
    hosts = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    return a, b, write_config(tmp_path, port=a.port, queue=queue, host=hosts)  # type: ignore[arg-type]


def _steps(msgs: list[dict[str, Any]]) -> list[int]:
    return [m["body"]["step"] for m in msgs if m["body"].get("status") == PROGRESS]


def _node_in_use(a: TcpProxy, b: TcpProxy, timeout: float = 30.0) -> tuple[TcpProxy, TcpProxy]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if a.connections:
            return a, b
        if b.connections:
            return b, a
        time.sleep(0.01)
    raise AssertionError("the training never connected through either node")


def _cut(node: TcpProxy, fault: str) -> None:
    if fault == "dies":
        node.refuse(True)
        node.drop()
    else:  # a partition: nothing flows, nothing is closed
        node.blackhole(True)


CASES = [
    pytest.param(fault, max_rate, kind, id=f"{fault}-{mode}-{kind}")
    for fault in ("dies", "silent")
    for max_rate, mode in ((None, "every step"), (10, "max_rate=10"))
    for kind in ("classic", "quorum")
    if kind == "classic" or (fault == "dies" and max_rate is None)
]


@pytest.fixture
def queue_of_kind(broker, queue):
    """``queue_of_kind(kind)``: the test's classic queue, or a fresh quorum queue."""
    made: list[str] = []

    def _make(kind: str) -> str:
        if kind == "classic":
            return queue
        name = broker.declare_queue(f"{queue}-quorum", arguments={"x-queue-type": "quorum"})
        made.append(name)
        return name

    yield _make
    for name in made:
        broker.delete_queue(name)


@pytest.mark.parametrize(("fault", "max_rate", "kind"), CASES)
def test_the_node_in_use_fails_mid_run_and_the_run_goes_on_on_the_other(
    broker, queue_of_kind, proxy, tmp_path, fault, max_rate, kind, fault_report
):
    queue = queue_of_kind(kind)
    a, b, config = _two_nodes(proxy, tmp_path, queue)
    run = Training(config, tmp_path, steps=STEPS, sleep=0.02, flush=60, max_rate=max_rate)
    # The run reports through one node: let it get well under way there.
    before = broker.wait_for(queue, lambda ms: any(s >= 40 for s in _steps(ms)), timeout=60)
    used, other = _node_in_use(a, b)
    accepted = other.accepted
    cut_at = time.monotonic()
    _cut(used, fault)
    before += broker.drain(queue)  # what got through before the cut
    newest = max(_steps(before))
    after = broker.wait_for(queue, lambda ms: any(s > newest for s in _steps(ms)), timeout=90)
    moved_in = time.monotonic() - cut_at
    assert run.wait(timeout=120) == 0, run.describe()
    msgs = before + after + collect(broker, queue, timeout=60)
    mode = ("every step" if max_rate is None else f"max_rate={max_rate}") + f", {kind} queue"
    fault_report.line(
        f"failover, node {fault} ({mode}): first new step through the other node "
        f"{moved_in:.2f} s after the fault"
    )
    fault_report.stall(f"failover, node {fault} ({mode})", run.worst)
    check = check_run(msgs, DONE, last_step=STEPS, context="\n" + run.describe())
    if max_rate is None:
        assert check.steps == list(range(1, STEPS + 1)), "a step was lost"
    assert run.event("ended")["delivered"] is True, run.describe()
    assert other.accepted > accepted  # the other node took over
    assert run.worst < STALL_BOUND
    if fault == "silent":  # not pika's heartbeat (tens of seconds): the missing confirms
        assert "moving to another node" in run.stderr, run.stderr


def test_a_node_down_from_the_start_is_passed_over(broker, queue, proxy, tmp_path):
    a, b, config = _two_nodes(proxy, tmp_path, queue)
    a.refuse(True)
    run = Training(config, tmp_path, steps=50, sleep=0.01, flush=30, max_rate=None)
    assert run.wait(timeout=90) == 0, run.describe()
    check_run(collect(broker, queue), DONE, last_step=50, context="\n" + run.describe())
    assert run.event("ended")["delivered"] is True, run.describe()
    assert b.accepted >= 1


def test_the_consumer_passes_over_a_refusing_node_and_starts_after_the_node_it_used(broker, proxy):
    a, b = proxy(), proxy()
    nodes = url_parameters([f"amqp://guest:guest@127.0.0.1:{p.port}/%2F" for p in (a, b)])
    first = connect(nodes)
    first.close()
    used = a if a.accepted else b
    second = connect(nodes)
    second.close()
    assert a.accepted == 1 and b.accepted == 1, (a.accepted, b.accepted)  # the other one
    used.refuse(True)
    for _ in range(3):  # wherever the order starts, the refusing node is passed over
        connect(nodes).close()
    assert (a if used is b else b).accepted == 4
