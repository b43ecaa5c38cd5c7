"""A private three-node RabbitMQ cluster on loopback, and the faults to inject into it.

Each node is a :class:`~_broker.Broker` (own temp dir, node name, AMQP and distribution
ports, all on 127.0.0.1) with one Erlang cookie shared by the three, so that
``rabbitmqctl join_cluster`` can join nodes 2 and 3 to node 1. Start-up costs 15 s to a
minute on two cores (with the load), so the test session starts one cluster (the
``cluster`` fixture, made available by tests/conftest.py) and every
fault test gives it back whole: :meth:`Cluster.restore` starts what was stopped or
killed, heals what was partitioned, and waits (with a deadline, never a fixed sleep)
until every node runs and every quorum queue declared through the cluster has all its
members online again.

Faults: :meth:`Cluster.stop_app` (``rabbitmqctl stop_app``: the node leaves, its VM
stays), :meth:`Cluster.stop` (the whole node, gracefully), :meth:`Cluster.kill`
(``kill -9`` of the node's Erlang VM), :meth:`Cluster.partition` (the node's TCP proxy
stops forwarding: a client that connects through :meth:`Cluster.endpoints` with
``via_proxy=True`` loses that node without being told, as in a network partition).

Every failure message carries the tail of the nodes' logs (``TW_KEEP_BROKER_DIR=1`` keeps
their folders). Use it as::

    def test_x(cluster):
        q = cluster.declare_quorum_queue()
        ...
        node = cluster.wait_client_node(proc.pid)
        cluster.kill(node)
        ...
        cluster.restore()
"""

from __future__ import annotations

import contextlib
import enum
import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import pika
import pika.exceptions
import pytest

from _broker import Broker, BrokerError
from _proxy import TcpProxy

__all__ = [
    "Cluster",
    "ClusterError",
    "ClusterNode",
    "Counted",
    "NodeState",
    "QueueCounter",
    "Training",
    "cluster_fixture",
    "report",
    "write_config",
]

T = TypeVar("T")

#: How long the cluster may take to get back to three running nodes and full queues.
RESTORE_TIMEOUT = 90.0
#: Polling interval for conditions (a poll, never a synchronisation by itself).
POLL = 0.1


class NodeState(enum.Enum):
    """What the tests did to a node (the cluster's own view may lag behind)."""

    NEW = "new"
    RUNNING = "running"
    APP_STOPPED = "app-stopped"  # rabbitmqctl stop_app: the VM runs, the broker does not
    STOPPED = "stopped"  # the whole node stopped gracefully
    KILLED = "killed"  # kill -9 of its VM
    PARTITIONED = "partitioned"  # running, but its proxy forwards nothing


#: The states in which the node's broker runs (a partition only cuts off its clients).
UP = (NodeState.RUNNING, NodeState.PARTITIONED)


class ClusterError(BrokerError):
    """The cluster could not be started, driven or restored; the message has log tails."""


class ClusterNode(Broker):
    """One node of the cluster: a private ``Broker`` holding the cluster's Erlang cookie."""

    def __init__(self, index: int, cookie: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.index = index
        self.cookie = cookie
        self.state = NodeState.NEW

    def _prepare(self) -> None:
        fresh = not self._prepared
        super()._prepare()
        if fresh:  # the same cookie on every node: Erlang distribution refuses others
            cookie = self.dir / "home" / ".erlang.cookie"
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)

    def ctl(self, *args: str, **kw: Any) -> str:
        self._prepare()  # the cookie must exist before rabbitmqctl talks to the node
        return super().ctl(*args, **kw)

    _spawning = False

    def spawn(self) -> None:
        """Start the node's VM without waiting for it (then :meth:`wait_started`), so that
        the nodes boot side by side; from the main thread, so that the node still dies
        with the test process (``Broker.start``'s PDEATHSIG)."""
        self._spawning = True
        try:
            self.start()
        finally:
            self._spawning = False

    def _wait_ready(self) -> None:
        if not self._spawning:
            super()._wait_ready()

    def wait_started(self) -> None:
        """Wait for a :meth:`spawn`-ed node to accept AMQP connections."""
        try:
            super()._wait_ready()
        except BaseException:
            self.kill()
            raise
        self.state = NodeState.RUNNING

    def __repr__(self) -> str:
        return f"<node{self.index} {self.node} amqp={self.port} {self.state.value}>"


class Cluster:
    """Three joined nodes; ``nodes[0]`` is the one the others joined."""

    size = 3

    def __init__(self, size: int = 3, *, extra_config: Sequence[str] = ()) -> None:
        cookie = secrets.token_hex(16).upper()
        self.size = size
        self.nodes = [
            ClusterNode(i + 1, cookie, extra_config=extra_config, start_timeout=RESTORE_TIMEOUT)
            for i in range(size)
        ]
        self._proxies: dict[str, TcpProxy] = {}
        #: Quorum queues declared through the cluster: restore() waits for their members.
        self._quorum_queues: set[str] = set()
        self._lock = threading.Lock()

    # -- life ---------------------------------------------------------------------------

    def start(self) -> Cluster:
        """Start every node and join nodes 2.. to node 1; wait until all run together."""
        first = self.nodes[0]
        try:
            for node in self.nodes:
                node.spawn()
            for node in self.nodes:
                node.wait_started()
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.node)
                node.ctl("start_app")
            self.wait_running(self.nodes, timeout=RESTORE_TIMEOUT)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every node and proxy; remove the nodes' folders (unless kept)."""
        for proxy in self._proxies.values():
            proxy.close()
        self._proxies.clear()
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.close()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where clients connect ----------------------------------------------------------

    def proxy(self, node: ClusterNode) -> TcpProxy:
        """The TCP proxy in front of ``node``'s AMQP port (made on first use)."""
        with self._lock:
            if node.node not in self._proxies:
                self._proxies[node.node] = TcpProxy(node.host, node.port, lifetime=3600.0)
            return self._proxies[node.node]

    def endpoints(self, *, via_proxy: bool = False) -> list[str]:
        """``"host:port"`` of every node, in node order (through their proxies if asked)."""
        out = []
        for node in self.nodes:
            target = self.proxy(node) if via_proxy else node
            out.append(f"{target.host}:{target.port}")
        return out

    def amqp_urls(self, *, via_proxy: bool = False) -> list[str]:
        """An ``amqp://guest:guest@host:port/%2F`` URL per node."""
        return [f"amqp://guest:guest@{ep}/%2F" for ep in self.endpoints(via_proxy=via_proxy)]

    def node_at_port(self, port: int) -> ClusterNode | None:
        """The node whose AMQP port, or whose proxy's port, is ``port``."""
        for node in self.nodes:
            proxy = self._proxies.get(node.node)
            if port == node.port or (proxy is not None and port == proxy.port):
                return node
        return None

    def running(self) -> list[ClusterNode]:
        """The nodes whose broker app runs (partitioned nodes included: they run)."""
        return [n for n in self.nodes if n.state in UP]

    def any_running(self, *, besides: Sequence[ClusterNode] = ()) -> ClusterNode:
        """A node that runs and is not one of ``besides``."""
        for node in self.running():
            if node not in besides:
                return node
        raise ClusterError(f"no running node besides {list(besides)}: {self.nodes}")

    # -- queues -------------------------------------------------------------------------

    def declare_quorum_queue(self, name: str | None = None, **arguments: Any) -> str:
        """A durable quorum queue replicated on every node (``x-quorum-initial-group-size``
        = the cluster's size); :meth:`restore` waits for all its members."""
        name = name or f"tw-qq-{uuid.uuid4().hex[:10]}"
        args = {"x-queue-type": "quorum", "x-quorum-initial-group-size": self.size, **arguments}
        home = self.any_running()
        home.declare_queue(name, arguments=args)
        self._quorum_queues.add(name)
        self.wait_queue_members(name)
        return name

    def declare_classic_queue(
        self, name: str | None = None, *, on: ClusterNode | None = None
    ) -> str:
        """A durable classic queue; it lives on the node ``on`` (where it is declared)."""
        name = name or f"tw-cq-{uuid.uuid4().hex[:10]}"
        home = on or self.any_running()
        home.declare_queue(name)
        return name

    def delete_queue(self, name: str) -> None:
        """Delete a queue declared through the cluster (from a running node)."""
        self._quorum_queues.discard(name)
        self.any_running().delete_queue(name)

    def queue_info(self, name: str) -> dict[str, Any]:
        """``rabbitmqctl list_queues`` of one queue: name, type, leader, members, online,
        messages."""
        return self.queue_infos()[name]

    def queue_infos(self) -> dict[str, dict[str, Any]]:
        """``rabbitmqctl list_queues`` (asked from one running node): name -> row."""
        node = self.running()[-1]
        out = node.ctl(
            "list_queues", "--formatter", "json", "name", "type", "leader", "members",
            "online", "messages", timeout=30,
        )  # fmt: skip
        return {row["name"]: dict(row) for row in json.loads(out or "[]")}

    def leader(self, name: str) -> ClusterNode:
        """The node holding the quorum queue's leader."""

        def find() -> ClusterNode | None:
            leader = self.queue_info(name).get("leader")
            return next((n for n in self.running() if n.node == leader), None)

        return self.wait(f"a leader for quorum queue {name!r}", find, timeout=30)

    def wait_queue_members(self, *names: str, timeout: float = RESTORE_TIMEOUT) -> None:
        """Wait until each quorum queue has every node as an online member, and a leader."""
        everyone = {n.node for n in self.nodes}

        def full() -> bool:
            infos = self.queue_infos()
            for name in names:
                info = infos.get(name, {})
                online, members = set(info.get("online") or ()), set(info.get("members") or ())
                if not (online == members == everyone and info.get("leader")):
                    return False
            return True

        self.wait(f"quorum queue(s) {list(names)} to have all {self.size} members online", full,
                  timeout=timeout)  # fmt: skip

    # -- clients --------------------------------------------------------------------------

    def client_nodes(self, pid: int) -> list[ClusterNode]:
        """The nodes process ``pid`` holds an established TCP connection to (``ss -tnp``),
        directly or through a node's proxy."""
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, timeout=10
        ).stdout
        found: list[ClusterNode] = []
        for line in out.splitlines():
            if f"pid={pid}," not in line:
                continue
            # Recv-Q Send-Q Local:Port Peer:Port users:(...): no State column with a filter
            port = line.split()[3].rpartition(":")[2]
            node = self.node_at_port(int(port)) if port.isdigit() else None
            if node is not None and node not in found:
                found.append(node)
        return found

    def wait_client_node(
        self, pid: int, *, besides: Sequence[ClusterNode] = (), timeout: float = 30.0,
        alive: Callable[[], bool] | None = None,
    ) -> ClusterNode:  # fmt: skip
        """Wait until ``pid`` is connected to exactly one node not in ``besides``; that node.
        ``alive`` (e.g. ``lambda: proc.poll() is None``) ends the wait early with a clear
        failure when the client is gone."""

        def connected() -> ClusterNode | None:
            if alive is not None and not alive():
                raise ClusterError(f"client pid {pid} ended before it connected")
            nodes = [n for n in self.client_nodes(pid) if n not in besides]
            return nodes[0] if len(nodes) == 1 else None

        what = f"pid {pid} to connect to a node" + (
            f" other than {list(besides)}" if besides else ""
        )
        return self.wait(what, connected, timeout=timeout)

    # -- faults -----------------------------------------------------------------------------

    def stop_app(self, node: ClusterNode) -> None:
        """``rabbitmqctl stop_app``: the broker closes its clients' connections and leaves
        the cluster; the Erlang VM keeps running."""
        node.ctl("stop_app")
        node.state = NodeState.APP_STOPPED

    def stop(self, node: ClusterNode) -> None:
        """Stop the whole node gracefully (SIGTERM to its VM)."""
        node.stop()
        node.state = NodeState.STOPPED

    def kill(self, node: ClusterNode) -> None:
        """``kill -9`` the node's Erlang VM: its sockets are reset, nothing is said."""
        pid = node.pid
        if pid is None:
            raise ClusterError(f"{node} has no running VM to kill\n{node.logs()}")
        node.kill()
        node.state = NodeState.KILLED

    def partition(self, node: ClusterNode) -> None:
        """Cut the node off from clients connected through its proxy: nothing is forwarded
        any more, in either direction, and no error is sent (a silent network partition).
        New connections through the proxy open at TCP level and then hear nothing."""
        self.proxy(node).blackhole(True)
        node.state = NodeState.PARTITIONED

    def heal(self, node: ClusterNode) -> None:
        """End :meth:`partition`: the proxy forwards again and drops the connections held
        during the partition (a client gave up on them long ago)."""
        proxy = self.proxy(node)
        proxy.drop()
        proxy.reset()
        node.state = NodeState.RUNNING

    def start_node(self, node: ClusterNode) -> None:
        """Bring one faulted node back: start its app or the whole node, or heal it."""
        if node.state is NodeState.APP_STOPPED:
            node.ctl("start_app", timeout=RESTORE_TIMEOUT)
        elif node.state in (NodeState.STOPPED, NodeState.KILLED):
            node.start()
        elif node.state is NodeState.PARTITIONED:
            self.heal(node)
        node.state = NodeState.RUNNING

    def restore(self, timeout: float = RESTORE_TIMEOUT) -> None:
        """Give the cluster back whole: every node running in it, every proxy forwarding,
        every quorum queue declared through the cluster with all its members online."""
        for node in self.nodes:
            if node.state is not NodeState.RUNNING:
                self.start_node(node)
            proxy = self._proxies.get(node.node)
            if proxy is not None:
                proxy.reset()
        self.wait_running(self.nodes, timeout=timeout)
        if self._quorum_queues:
            self.wait_queue_members(*sorted(self._quorum_queues), timeout=timeout)

    def wait_running(self, nodes: Sequence[ClusterNode], timeout: float = RESTORE_TIMEOUT) -> None:
        """Wait until the cluster lists ``nodes`` among its running nodes and each of them
        accepts AMQP connections."""
        wanted = {n.node for n in nodes}

        def together() -> bool:
            asked = self.running()[-1]  # one rabbitmqctl per poll: each costs a second or two
            out = asked.ctl("cluster_status", "--formatter", "json", timeout=30)
            running = set(json.loads(out).get("running_nodes", ()))
            return wanted <= running and all(_accepts_amqp(n) for n in nodes)

        self.wait(f"{sorted(wanted)} to run in the cluster", together, timeout=timeout)

    # -- waiting and explaining ---------------------------------------------------------------

    def wait(self, what: str, predicate: Callable[[], T | None], timeout: float) -> T:
        """Poll ``predicate`` until it returns something truthy; fail naming ``what``, with
        the nodes' states and log tails."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = predicate()
            except ClusterError:
                raise
            except (BrokerError, subprocess.SubprocessError, OSError, ValueError) as exc:
                last = exc
            else:
                if last:
                    return last
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"timed out after {timeout:g} s waiting for {what} (last: {last!r})\n"
                    f"nodes: {self.nodes}\n{self.logs()}"
                )
            time.sleep(POLL)

    def logs(self, lines: int = 25) -> str:
        """The tail of every node's logs, for failure messages."""
        return "\n".join(f"===== {n!r}\n{n.logs(lines)}" for n in self.nodes)


def _accepts_amqp(node: ClusterNode) -> bool:
    try:
        node.connect(connection_attempts=1, socket_timeout=5).close()
    except pika.exceptions.AMQPError:
        return False
    return True


# -- the independent consumer ------------------------------------------------------------------


@dataclass
class Counted:
    """One delivery the counter saw."""

    body: Any
    message_id: str | None
    redelivered: bool
    node: str
    #: ``time.monotonic()`` when it arrived.
    at: float


class QueueCounter:
    """A plain consumer, independent of trainwire, that records every message of a queue.

    It consumes from ``nodes`` in order (the first that answers), acknowledging each
    message after recording it, and moves to the next node when its connection is lost
    (what was delivered but not acknowledged then comes again, marked redelivered).
    Use it as a context manager; :attr:`seen` only grows.
    """

    def __init__(self, queue: str, nodes: Sequence[ClusterNode]) -> None:
        self.queue = queue
        self.nodes = list(nodes)
        self.seen: list[Counted] = []
        self.error: BaseException | None = None
        #: Connections lost (or refused) on the way.
        self.reconnects = 0
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"counter:{queue}", daemon=True)

    def __enter__(self) -> QueueCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop consuming (what is not acknowledged goes back to the queue)."""
        self._stop.set()
        self._thread.join(15)

    def bodies(self) -> list[Any]:
        """The bodies seen, in arrival order."""
        return [c.body for c in self.seen]

    def wait_for(
        self, what: str, predicate: Callable[[list[Counted]], bool], timeout: float
    ) -> None:
        """Wait until ``predicate(seen)``; fail naming ``what`` with what was seen."""
        deadline = time.monotonic() + timeout
        while not predicate(list(self.seen)):
            if self.error is not None:
                raise ClusterError(f"the counter of {self.queue!r} failed: {self.error!r}")
            if time.monotonic() >= deadline:
                tail = [c.body for c in self.seen[-3:]]
                raise ClusterError(
                    f"timed out after {timeout:g} s waiting for {what} on {self.queue!r}: "
                    f"{len(self.seen)} message(s) seen, the last {tail}"
                )
            time.sleep(POLL)

    def settle(self, timeout: float = 30.0) -> list[Counted]:
        """Once nothing more is being sent: wait until the queue holds no message and the
        last delivery is a moment old; every message seen."""

        def drained() -> bool:
            node = self.nodes[0] if self.nodes[0].state is NodeState.RUNNING else self.nodes[-1]
            conn = node.connect(connection_attempts=1)
            try:
                declared = conn.channel().queue_declare(self.queue, passive=True)
            finally:
                conn.close()
            ready = int(declared.method.message_count)
            return ready == 0 and time.monotonic() - self._last >= 0.5

        self.wait_for("the queue to be drained", lambda _seen: drained(), timeout)
        return list(self.seen)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for node in self.nodes:
                    if self._stop.is_set():
                        return
                    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                        self._consume(node)
                    self.reconnects += 1
        except BaseException as exc:  # reported by wait_for
            self.error = exc

    def _consume(self, node: ClusterNode) -> None:
        conn = node.connect(connection_attempts=1, socket_timeout=5, heartbeat=5)
        try:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=500)

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                try:
                    decoded: Any = json.loads(body)
                except ValueError:
                    decoded = body
                self._last = time.monotonic()
                self.seen.append(
                    Counted(decoded, props.message_id, method.redelivered, node.node, self._last)
                )
                ch.basic_ack(method.delivery_tag)

            channel.basic_consume(self.queue, on_message)
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.1)
        finally:
            with contextlib.suppress(Exception):
                conn.close()


# -- a training process and what it reports ------------------------------------------------

#: The training: waits for ``go``, reports every step until ``end``, then ``done()``.
TRAINING = r"""
import json, os, sys, time
from pathlib import Path
import trainwire

config, ctl, pause = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + 300
run = trainwire.init(config, max_rate=None, total_steps=10**7, flush_timeout=60)
while not (ctl / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("no go")
    time.sleep(0.01)
clock, worst, step = time.perf_counter, 0.0, 0
while not (ctl / "end").exists() and time.monotonic() < deadline:
    for _ in range(20):
        step += 1
        t = clock()
        run.progress(step)
        took = clock() - t
        worst = max(worst, took)
        time.sleep(pause)
    (ctl / "step.tmp").write_text(str(step))
    os.replace(ctl / "step.tmp", ctl / "step")
t = clock()
run.done()
done_s = clock() - t
(ctl / "result.json").write_text(json.dumps(
    {"last_step": step, "worst_progress_s": worst, "done_s": done_s}))
"""

#: The training may take this long to end once told to (done() waits for the confirm).
END_TIMEOUT = 90.0
#: Time allowed for a stage of a run (a loaded 2-core CI machine is slow).
STAGE_TIMEOUT = 90.0


class Training:
    """A training subprocess (:data:`TRAINING`) and its control folder."""

    def __init__(self, config: Path, folder: Path, *, pause: float = 0.004) -> None:
        """Start ``python -c TRAINING``; ``pause`` seconds between steps."""
        self.folder = folder
        self.ctl = folder / "ctl"
        self.ctl.mkdir()
        self.log = folder / "training.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", TRAINING, str(config), str(self.ctl), str(pause)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def go(self) -> None:
        (self.ctl / "go").write_text("")

    def step(self) -> int:
        """The newest step the training reported (0 before the first)."""
        try:
            return int((self.ctl / "step").read_text() or 0)
        except (OSError, ValueError):
            return 0

    def end(self) -> dict[str, Any]:
        """Tell it to call done(); wait for it to exit 0; its result."""
        (self.ctl / "end").write_text("")
        try:
            rc = self.proc.wait(END_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(
                f"the training did not end in {END_TIMEOUT:g} s\n{self.output()}"
            ) from None
        assert rc == 0, f"the training exited {rc}\n{self.output()}"
        return json.loads((self.ctl / "result.json").read_text())  # type: ignore[no-any-return]

    def output(self) -> str:
        return "--- training output ---\n" + self.log.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


def write_config(folder: Path, endpoints: list[str], queue: str) -> Path:
    """A training config listing every node (a JSON array in ``message_host``)."""
    (folder / "models").mkdir(exist_ok=True)
    path = folder / "train_config.json"
    path.write_text(json.dumps({
        "message_host": endpoints, "message_id": "guest", "message_pw": "guest",
        "queue_name": queue, "project_key": "pk-cluster", "model_id": "model-cluster",
        "model_write_path": str(folder / "models"),
    }))  # fmt: skip
    return path


def report(request: pytest.FixtureRequest, text: str) -> None:
    """One line in the test run's output (figures are reported, never asserted)."""
    request.node.user_properties.append(("cluster", text))  # --junitxml keeps it too
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[cluster] {request.node.name}: {text}")


# -- the fixture ---------------------------------------------------------------------------------


@pytest.fixture(scope="session", name="cluster")
def cluster_fixture() -> Iterator[Cluster]:
    """One three-node cluster for the whole session (tests/conftest.py imports it as
    ``cluster``, so that every test module shares the same one)."""
    with Cluster() as c:
        yield c
