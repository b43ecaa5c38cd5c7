"""A three-node cluster against one node: every-step throughput, terminal latency, failover.

The cluster is the test suite's (tests/_cluster.py): three private RabbitMQ nodes on
loopback joined with ``rabbitmqctl join_cluster``, and a quorum queue replicated on all
three (a publisher confirm then means a majority, two nodes, has the message). The one
node is the benchmarks' private broker with a quorum queue of one member: the same queue
type, without the replication.

- **throughput**: ``trainwire.init(config, max_rate=None)``, ``n`` calls of
  ``run.progress(step)``, timed until the broker confirmed all ``n``; the config lists the
  three nodes or names the one node. Alternating, several reps.
- **terminal latency**: ``run.done()`` right after that (nothing else waiting), which
  returns once the broker confirmed the terminal message.
- **failover**: a run reports every 2 ms; the node it is connected to is killed
  (``kill -9`` of its Erlang VM); timed from the kill to the first message the broker
  confirmed through another node. The run reaches each node through a TCP proxy on
  loopback (how the benchmark sees which node it uses). Baseline: a run whose config names
  only the killed node, timed from the same kill to its first confirm once the node was
  started again (what a single-node config waits for).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from ._broker import Broker
from ._common import Context, Figure, delivered, fmt, median, online_run, wait_until

__all__ = ["measure"]

#: Pause between two progress() calls of a run that is failed over.
FEED_PAUSE = 0.002


def _config(ctx: Context, name: str, hosts: list[str], queue: str) -> Path:
    models = ctx.dir / f"cluster-models-{name}"
    models.mkdir(parents=True, exist_ok=True)
    path = ctx.dir / f"cluster-{name}.json"
    path.write_text(json.dumps({
        "message_host": hosts if len(hosts) > 1 else hosts[0], "message_id": "guest",
        "message_pw": "guest", "queue_name": queue, "project_key": "pk-bench",
        "model_id": f"model-{name}", "model_write_path": str(models),
    }))  # fmt: skip
    return path


def _rate_and_terminal(config: Path, n: int) -> tuple[float, float]:
    """Every-step msg/s until all ``n`` are confirmed, then done()'s duration in ms."""
    run = online_run(config, total_steps=n, max_rate=None)
    try:
        base = delivered(run)
        t0 = time.perf_counter()
        for step in range(1, n + 1):
            run.progress(step)
        if not wait_until(lambda: delivered(run) >= base + n, timeout=120, interval=0.002):
            raise RuntimeError(f"{config}: {delivered(run) - base} of {n} messages confirmed")
        rate = n / (time.perf_counter() - t0)
    finally:
        t1 = time.perf_counter()
        run.done()
    return rate, (time.perf_counter() - t1) * 1000.0


class _Feeder(threading.Thread):
    """Calls ``run.progress(step)`` every FEED_PAUSE until stopped."""

    def __init__(self, run: Any) -> None:
        super().__init__(name="bench-feeder", daemon=True)
        self.run_, self.halt = run, threading.Event()

    def run(self) -> None:
        step = 0
        while not self.halt.wait(FEED_PAUSE):
            step += 1
            self.run_.progress(step, percentage=50.0)


def _first_confirm_after(run: Any, since: float, moved: Any, timeout: float) -> float:
    """Seconds from ``since`` to the first confirm once ``moved()`` is true."""
    if not wait_until(moved, timeout=timeout, interval=0.001):
        raise RuntimeError("the run never moved to another node")
    before = delivered(run)
    if not wait_until(lambda: delivered(run) > before, timeout=timeout, interval=0.001):
        raise RuntimeError("no confirm after the move")
    return time.perf_counter() - since


def _one_failover(ctx: Context, cluster: Any, queue: str, rep: int) -> tuple[float, float]:
    """Kill the node a 3-node run uses; (ms to its first confirm through another node, ms
    for a run naming only that node to get its first confirm after the node restarted)."""
    hosts = cluster.endpoints(via_proxy=True)
    multi = online_run(_config(ctx, f"multi{rep}", hosts, queue), max_rate=None)
    proxies = [cluster.proxy(node) for node in cluster.nodes]
    if not wait_until(lambda: sum(bool(p.connections) for p in proxies) == 1, timeout=10):
        raise RuntimeError(f"expected one proxied connection: {[p.connections for p in proxies]}")
    (used,) = [i for i, p in enumerate(proxies) if p.connections]
    victim = cluster.nodes[used]
    single = online_run(_config(ctx, f"single{rep}", [f"{victim.host}:{victim.port}"], queue),
                        max_rate=None)  # fmt: skip
    feeders = [_Feeder(multi), _Feeder(single)]
    try:
        for feeder in feeders:
            feeder.start()
        wait_until(lambda: delivered(multi) > 10 and delivered(single) > 10, timeout=30)
        t0 = time.perf_counter()
        cluster.kill(victim)
        others = [p for i, p in enumerate(proxies) if i != used]
        failover = _first_confirm_after(
            multi, t0, lambda: any(p.connections for p in others), timeout=60
        )
        cluster.start_node(victim)
        baseline = _first_confirm_after(single, t0, lambda: True, timeout=120)
    finally:
        for feeder in feeders:
            feeder.halt.set()
            feeder.join(5)
        multi.done()
        single.done()
        cluster.restore()
    return failover * 1000.0, baseline * 1000.0


def _start_cluster() -> tuple[Any, float]:
    from _cluster import Cluster  # tests/ is on sys.path: benchmarks/_broker put it there

    t0 = time.perf_counter()
    return Cluster().start(), time.perf_counter() - t0


def measure(ctx: Context) -> list[Figure]:
    """Three figures: throughput and terminal latency side by side, and failover time."""
    if ctx.quick:
        return _skipped()
    n, reps, failovers = 5_000, 3, 3
    one: Broker = ctx.broker()
    quorum = {"x-queue-type": "quorum"}
    single_q = one.declare_queue("tw-bench-quorum-1", arguments=quorum)
    single_cfg = _config(ctx, "one", [f"{one.host}:{one.port}"], single_q)
    cluster, started = _start_cluster()
    try:
        cluster_q = cluster.declare_quorum_queue("tw-bench-quorum-3")
        cluster_cfg = _config(ctx, "three", cluster.endpoints(), cluster_q)
        sides: dict[str, list[tuple[float, float]]] = {"three": [], "one": []}
        for rep in range(reps):
            order = ("three", "one") if rep % 2 == 0 else ("one", "three")
            for side in order:
                config = cluster_cfg if side == "three" else single_cfg
                sides[side].append(_rate_and_terminal(config, n))
        times = [_one_failover(ctx, cluster, cluster_q, rep) for rep in range(failovers)]
    finally:
        cluster.close()
        ctx.delete_queue(single_q)
    return _figures(sides, times, n, reps, started)


def _skipped() -> list[Figure]:
    """The three figures, not measured: starting a 3-node cluster takes 15-90 s."""
    figures = _figures({"three": [(1.0, 1.0)], "one": [(1.0, 1.0)]}, [(1.0, 1.0)], 0, 0, 0.0)
    for f in figures:
        f.available, f.trainwire, f.baseline, f.ratio, f.met = False, None, None, None, None
        f.note = "skipped in --quick (a 3-node cluster takes 15-90 s to start)"
        f.details = []
    return figures


def _figures(
    sides: dict[str, list[tuple[float, float]]], times: list[tuple[float, float]], n: int,
    reps: int, started: float,
) -> list[Figure]:  # fmt: skip
    rate3, rate1 = [r for r, _ in sides["three"]], [r for r, _ in sides["one"]]
    end3, end1 = [t for _, t in sides["three"]], [t for _, t in sides["one"]]
    moved, waited = [m for m, _ in times], [w for _, w in times]
    how = (f"{reps} rep(s) of {n:,} messages each side, alternating who goes first; cluster "
           f"started in {started:.0f} s")  # fmt: skip
    ms = ", ".join
    return [
        Figure(
            key="cluster.throughput",
            title="throughput, every-step mode, 3-node quorum queue vs one node",
            unit="msg/s",
            trainwire=median(rate3),
            baseline=median(rate1),
            baseline_name="the same on one node (a quorum queue of one member)",
            ratio=median([a / b for a, b in zip(rate3, rate1)]),
            ratio_style="%",
            note="persistent messages, publisher confirms; on a quorum queue a confirm means "
            "a majority of the nodes has the message; three nodes share the machine's cores",
            details=[
                ("3 nodes, each rep", ms(fmt(v, "msg/s") for v in rate3)),
                ("one node, each rep", ms(fmt(v, "msg/s") for v in rate1)),
                ("how", how),
            ],
        ),
        Figure(
            key="cluster.terminal",
            title="terminal latency (`done()` until confirmed), 3-node quorum queue vs one node",
            unit="ms",
            trainwire=median(end3),
            baseline=median(end1),
            baseline_name="the same on one node",
            ratio=median(end3) / median(end1),
            details=[
                ("3 nodes, each rep", ms(fmt(v, "ms") for v in end3)),
                ("one node, each rep", ms(fmt(v, "ms") for v in end1)),
            ],
        ),
        Figure(
            key="cluster.failover",
            title="failover: `kill -9` of the node in use to the first confirm (p50)",
            unit="ms",
            trainwire=median(moved),
            baseline=median(waited),
            baseline_name="a config naming only that node: until it is back",
            ratio=median(moved) / median(waited),
            details=[
                (
                    "3 nodes listed, p50 / max",
                    f"{fmt(median(moved), 'ms')} / {fmt(max(moved), 'ms')}",
                ),
                (
                    "only the killed node listed, p50 / max",
                    f"{fmt(median(waited), 'ms')} / {fmt(max(waited), 'ms')}",
                ),
                (
                    "how",
                    f"{len(times)} kill(s) of the node in use while a run reports every "
                    f"{FEED_PAUSE * 1000:g} ms; the node restarted after each",
                ),
            ],
        ),
    ]
