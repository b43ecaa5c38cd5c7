"""Failover on a real three-node cluster while a real training process reports every step.

A training subprocess (``trainwire.init(config, max_rate=None)``, ``progress()`` every step,
``done()`` at the end) has a config that lists all three nodes. Mid-run, the node it is
connected to is stopped (``rabbitmqctl stop_app``), killed (``kill -9``) or cut off by a
silent partition (its TCP proxy stops forwarding); or the quorum queue's leader's node is
restarted. An independent consumer (tests/_cluster.py ``QueueCounter``, on a node the
fault does not touch) counts every message. For each fault:

- exactly one terminal message (one ``message_id``, its copies identical) and nothing new
  after it;
- steps never go back (in the order messages first arrive);
- no step lost: every step from 1 to the last one the training reported arrived;
- the training reports the worst ``progress()`` call (printed, not asserted: the training
  never waits for the failover, and timing is for benchmarks/).

Classic and quorum queues both: the classic queue lives on a node the fault does not touch
(a classic queue is on one node only; losing that node is what quorum queues are for).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from _cluster import (
    STAGE_TIMEOUT,
    Cluster,
    ClusterError,
    ClusterNode,
    Counted,
    QueueCounter,
    Training,
    report,
    write_config,
)


class QueueKind(enum.Enum):
    CLASSIC = "classic"
    QUORUM = "quorum"


class Fault(enum.Enum):
    STOP = "stop"  # rabbitmqctl stop_app on the node the training uses
    KILL = "kill"  # kill -9 of that node's Erlang VM
    PARTITION = "partition"  # that node's proxy stops forwarding, silently
    RESTART_LEADER = "restart-leader"  # stop and start the quorum queue leader's node


def steps(seen: list[Counted]) -> list[int]:
    """The steps of the progress messages seen, in arrival order."""
    return [c.body["step"] for c in seen if c.body.get("status") == "training_ing"]


def newest_step(seen: list[Counted]) -> int:
    return max(steps(seen), default=0)


@dataclass
class Verdict:
    """What the counter saw, checked."""

    distinct: int
    copies: int
    longest_silence: float


def check_delivery(seen: list[Counted], last_step: int) -> Verdict:
    """Exactly one terminal, last; steps never go back; no step lost; copies identical."""
    first: dict[str, Counted] = {}
    for c in seen:
        assert c.message_id, f"a message without message_id: {c.body}"
        if c.message_id in first:
            assert c.body == first[c.message_id].body, f"two bodies for {c.message_id}"
        else:
            first[c.message_id] = c
    ordered = list(first.values())
    terminals = [c for c in ordered if c.body.get("status") != "training_ing"]
    assert [t.body["status"] for t in terminals] == ["training_done"], terminals[:3]
    assert ordered[-1] is terminals[0], "a new message arrived after the terminal one"
    got = steps(ordered)
    backwards = [(a, b) for a, b in zip(got, got[1:]) if b < a]
    assert not backwards, f"steps went back: {backwards[:5]}"
    missing = sorted(set(range(1, last_step + 1)) - set(got))
    assert not missing, f"{len(missing)} of {last_step} steps lost: {missing[:10]}..."
    assert len(got) == last_step, f"{len(got)} progress messages for {last_step} steps"
    times = [c.at for c in seen]
    silence = max((b - a for a, b in zip(times, times[1:])), default=0.0)
    return Verdict(len(ordered), len(seen) - len(ordered), silence)


def _wait_more_steps(counter: QueueCounter, training: Training, what: str) -> int:
    """Wait until the counter saw the step the training has now reached; that step."""
    target = training.step() + 100
    counter.wait_for(
        f"step {target} ({what})", lambda seen: newest_step(seen) >= target, STAGE_TIMEOUT
    )
    return target


def _fault(cluster: Cluster, fault: Fault, target: ClusterNode) -> None:
    if fault is Fault.STOP:
        cluster.stop_app(target)
    elif fault is Fault.KILL:
        cluster.kill(target)
    elif fault is Fault.PARTITION:
        cluster.partition(target)
    else:
        cluster.stop(target)


def run_through_fault(
    cluster: Cluster, folder: Path, kind: QueueKind, fault: Fault, request: pytest.FixtureRequest
) -> None:
    name = f"tw-{kind.value}-{fault.value}-{uuid.uuid4().hex[:8]}"
    if kind is QueueKind.QUORUM:
        cluster.declare_quorum_queue(name)
    endpoints = cluster.endpoints(via_proxy=fault is Fault.PARTITION)
    training = Training(write_config(folder, endpoints, name), folder)
    try:
        client = cluster.wait_client_node(training.pid, alive=training.alive)
        target = cluster.leader(name) if fault is Fault.RESTART_LEADER else client
        spare = cluster.any_running(besides=[client, target])  # untouched by the fault
        if kind is QueueKind.CLASSIC:  # on a node the fault leaves alone, declared before go
            cluster.declare_classic_queue(name, on=spare)
        others = [n for n in cluster.nodes if n is not spare]
        with QueueCounter(name, [spare, *others]) as counter:
            training.go()
            counter.wait_for("200 steps before the fault", lambda s: newest_step(s) >= 200,
                             STAGE_TIMEOUT)  # fmt: skip
            _fault(cluster, fault, target)
            moved = client
            if target is client:
                moved = cluster.wait_client_node(
                    training.pid, besides=[target], alive=training.alive, timeout=STAGE_TIMEOUT
                )
            _wait_more_steps(counter, training, f"sent after the {fault.value}")
            if fault is Fault.RESTART_LEADER:
                cluster.start_node(target)
                cluster.wait_running([target])
                _wait_more_steps(counter, training, "sent after the restart")
            result = training.end()
            seen = counter.settle(timeout=STAGE_TIMEOUT)
        verdict = check_delivery(seen, result["last_step"])
    except (AssertionError, ClusterError) as exc:
        raise AssertionError(f"{exc}\n{training.output()}") from exc
    finally:
        training.close()
        cluster.restore()
        cluster.delete_queue(name)
    report(
        request,
        f"node {client.index} (fault on {target.index}) -> {moved.index}: "
        f"{result['last_step']} steps, {verdict.distinct} messages (+{verdict.copies} "
        f"copies), worst progress() {result['worst_progress_s'] * 1000:.2f} ms, done() "
        f"{result['done_s']:.2f} s, longest silence at the consumer "
        f"{verdict.longest_silence:.2f} s",
    )


CASES = [
    pytest.param(kind, fault, id=f"{kind.value}-{fault.value}")
    for kind in QueueKind
    for fault in Fault
    if not (kind is QueueKind.CLASSIC and fault is Fault.RESTART_LEADER)
]


@pytest.mark.parametrize(("kind", "fault"), CASES)
def test_a_training_goes_on_through_a_node_fault_and_loses_nothing(
    cluster: Cluster, tmp_path: Path, kind: QueueKind, fault: Fault,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    run_through_fault(cluster, tmp_path, kind, fault, request)


def _counted(*items: tuple[str, dict[str, object]]) -> list[Counted]:
    return [Counted(body, mid, False, "n", float(i)) for i, (mid, body) in enumerate(items)]


def test_the_delivery_check_catches_a_lost_step_a_step_back_and_a_second_terminal() -> None:
    def ing(step: int) -> dict[str, object]:
        return {"status": "training_ing", "step": step}

    done, error = {"status": "training_done"}, {"status": "training_error", "message": "x"}
    good = [("a", ing(1)), ("b", ing(2)), ("a", ing(1)), ("c", ing(3)), ("d", done)]
    assert check_delivery(_counted(*good), 3).copies == 1
    bad = [  # (what the counter saw, the training's last step, the complaint)
        ([("a", ing(1)), ("c", ing(3)), ("d", done)], 3, "1 of 3 steps lost"),
        ([("a", ing(2)), ("b", ing(1)), ("d", done)], 2, "steps went back"),
        ([("a", ing(1)), ("d", done), ("e", error)], 1, "training_done"),
        ([("a", ing(1)), ("d", done), ("b", ing(2))], 2, "after the terminal"),
        ([("a", ing(1)), ("a", ing(2)), ("d", done)], 1, "two bodies"),
    ]
    for items, last_step, words in bad:
        with pytest.raises(AssertionError, match=words):
            check_delivery(_counted(*items), last_step)
