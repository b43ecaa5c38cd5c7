"""Preflight: everything ``trainwire check`` verifies before a job trains.

Each check gives a :class:`CheckResult` with a verdict (``pass``/``fail``/``skip``), what
was seen and, for a failure, the fix. The checks run in order and a failure skips the
checks that depend on it:

1. ``config``: the training config file is valid;
2. ``host``: ``message_host`` resolves;
3. ``port``: a TCP connection to ``message_host:message_port`` opens;
4. ``login``: the AMQP (or AMQPS) handshake and login with ``message_id``/``message_pw``;
5. ``vhost``: the user may enter ``message_vhost``;
6. ``queue``: ``queue_name`` exists (passive declare: nothing is created);
7. ``folder``: ``<model_write_path>/save`` is writable (a probe file is written and
   removed; no folder is created);
8. ``send``: only with ``send_test``: one ``training_ing`` (step 0, 0 %) is published and
   confirmed.

A config that lists several broker nodes (a cluster) gets checks 2-6 on every node, at the
same time, as one ``node`` line per node: ``pass`` when the node is ready, ``warn`` when it
cannot be reached (the SDK fails over to the others), ``fail`` when it answers but refuses
(login, virtual host, queue: a problem of the config, not of the node). Then ``nodes``
passes when at least one node is ready and fails when none is.

Nothing is sent unless ``send_test`` is true, and the password is never shown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Callable

from .._broker._sentences import missing_queue_fix
from .._errors import ConfigError
from .._spec._config import CONFIG_ENV, Config, Endpoint, PathLike, load_config
from .._spec._protocol import clean_text, new_message_id, progress_message
from .._spec._spool import OFFLINE_FILE

__all__ = ["CHECKS", "CheckResult", "Preflight", "run_checks"]

PASS, FAIL, SKIP = "pass", "fail", "skip"
#: A cluster node that cannot be reached while another one is ready: not a failure.
WARN = "warn"
#: The checks in order: name -> what it verifies.
CHECKS = {
    "config": "config file is valid",
    "host": "broker host resolves",
    "port": "broker port accepts TCP connections",
    "login": "broker accepts the login",
    "vhost": "user may use the virtual host",
    "queue": "queue exists",
    "folder": "model_write_path is writable",
    "send": "test message confirmed",
    "node": "broker node",  # one per node of a cluster, titled with the node
    "nodes": "a broker node is ready",
}
#: Nodes checked at the same time (each check may wait CONNECT_TIMEOUT).
MAX_PARALLEL_NODES = 8
CONNECT_TIMEOUT = 5.0


@dataclass
class CheckResult:
    """One line of the checklist."""

    name: str
    verdict: str
    detail: str
    fix: str | None = None
    #: The broker node (``host:port``) a ``node`` line is about.
    node: str | None = None

    @property
    def title(self) -> str:
        """What the check verifies, in words."""
        if self.node is not None:
            return f"node {self.node}"
        return CHECKS.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready mapping."""
        data = asdict(self)
        data["title"] = self.title
        return data


@dataclass
class Preflight:
    """Every check's result, and the config when it could be read."""

    path: str | None
    results: list[CheckResult]
    config: Config | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(result.verdict != FAIL for result in self.results)

    @property
    def config_ok(self) -> bool:
        """False when the config file itself is the problem."""
        return bool(self.results) and self.results[0].verdict == PASS

    def to_dict(self) -> dict[str, Any]:
        """The checklist as a JSON-ready mapping (no password)."""
        return {
            "ok": self.ok,
            "config": self.path,
            "broker": self.config.describe_broker() if self.config and self.config.has_broker
            else None,
            "brokers": [str(node) for node in self.config.brokers] if self.config else [],
            "checks": [result.to_dict() for result in self.results],
        }  # fmt: skip


def _check_folder(config: Config) -> CheckResult:
    target = config.save_dir
    probe_dir = target
    while not probe_dir.exists():
        parent = probe_dir.parent
        if parent == probe_dir:
            break
        probe_dir = parent
    fix = (
        f"make {config.model_write_path} a folder this user can write to, or point "
        f"'model_write_path' in {config.path} at one"
    )
    if not probe_dir.is_dir():
        return CheckResult(
            "folder", FAIL, f"{probe_dir} is a file, not a folder, so {target} cannot be created",
            fix,
        )  # fmt: skip
    try:
        fd, name = tempfile.mkstemp(prefix=".trainwire-check-", dir=str(probe_dir))
        try:
            os.write(fd, b"trainwire check\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EROFS:
            reason = "the file system is read-only"
        return CheckResult("folder", FAIL, f"cannot write in {probe_dir}: {reason}", fix)
    if probe_dir == target:
        detail = f"{target} is writable"
    else:
        detail = f"{probe_dir} is writable; {target} will be created when the job writes"
    return CheckResult("folder", PASS, detail)


def _check_host(config: Config) -> CheckResult:
    host = config.message_host
    try:
        infos = socket.getaddrinfo(host, config.message_port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return CheckResult(
            "host", FAIL, f"{host!r} does not resolve ({exc})",
            f"check 'message_host' in {config.path} (a typo? a name only known inside "
            "another network?)",
        )  # fmt: skip
    addresses = sorted({str(info[4][0]) for info in infos})
    return CheckResult("host", PASS, f"{host} -> {', '.join(addresses[:4])}")


def _check_port(config: Config) -> CheckResult:
    where = f"{config.message_host}:{config.message_port}"
    try:
        with socket.create_connection(
            (config.message_host, config.message_port), timeout=CONNECT_TIMEOUT
        ):
            pass
    except ConnectionRefusedError:
        return CheckResult(
            "port", FAIL, f"nothing accepts connections at {where} (connection refused)",
            f"start the broker, or fix 'message_port' in {config.path} (AMQP is usually 5672, "
            "AMQPS 5671)",
        )  # fmt: skip
    except (socket.timeout, TimeoutError):
        return CheckResult(
            "port", FAIL, f"no answer from {where} within {CONNECT_TIMEOUT:g} s",
            f"check 'message_host' and 'message_port' in {config.path}, and that a firewall "
            "lets this machine reach the broker",
        )  # fmt: skip
    except OSError as exc:
        return CheckResult(
            "port", FAIL, f"cannot connect to {where}: {exc.strerror or exc}",
            f"check 'message_host' and 'message_port' in {config.path} and the network",
        )  # fmt: skip
    return CheckResult("port", PASS, f"{where} accepts TCP connections")


def _check_broker(config: Config, results: list[CheckResult], send_test: bool) -> bool:
    """login, vhost, queue (and send): one AMQP connection. False when the broker could
    not be reached in a way that retrying can mend (refused, timed out, lost mid-handshake)."""
    from .._broker._amqp import describe_connect_error
    from .._broker._diagnosis import FailureKind
    from .._broker._probe import probe_queue

    who = f"user {config.message_id!r}"
    probe = probe_queue(config, CONNECT_TIMEOUT)
    if probe.connect_error is not None:
        kind, sentence, retry = describe_connect_error(config, probe.connect_error)
        if kind is FailureKind.VHOST:
            results.append(CheckResult("login", PASS, f"{who} logged in"))
            results.append(CheckResult(
                "vhost", FAIL, f"{who} may not use virtual host {config.message_vhost!r}",
                sentence,
            ))  # fmt: skip
        else:
            scheme = "AMQPS" if config.message_tls else "AMQP"
            detail, fix = f"{scheme} connection failed ({kind.value} problem)", sentence
            if kind is FailureKind.AUTH:
                detail = f"the broker refused the login of {who} (wrong user name or password)"
                fix = f"check 'message_id' and 'message_pw' in {config.path}"
            results.append(CheckResult("login", FAIL, detail, fix))
            results.append(CheckResult("vhost", SKIP, "not checked: no login"))
        results.append(CheckResult("queue", SKIP, "not checked: no connection"))
        if send_test:
            results.append(CheckResult("send", SKIP, "not sent: no connection"))
        return not retry
    results.append(CheckResult("login", PASS, f"{who} logged in"))
    results.append(CheckResult("vhost", PASS, f"virtual host {config.message_vhost!r}"))
    if probe.missing is not None:
        results.append(CheckResult(
            "queue", FAIL,
            f"no queue named {config.queue_name!r} in virtual host {config.message_vhost!r}"
            f" ({probe.missing})",
            missing_queue_fix(config),
        ))  # fmt: skip
        if send_test:
            results.append(CheckResult("send", SKIP, "not sent: the queue is missing"))
        return True
    results.append(CheckResult(
        "queue", PASS,
        f"{config.queue_name!r} exists ({probe.messages} message(s) waiting, "
        f"{probe.consumers} consumer(s))",
    ))  # fmt: skip
    if send_test:
        results.append(_send_test(config))
    return True


def _check_node(config: Config, endpoint: Endpoint) -> CheckResult:
    """Checks 2-6 on one node of a cluster, told as one ``node`` line."""
    one = dataclasses.replace(
        config, message_host=endpoint.host, message_port=endpoint.port, brokers=(endpoint,)
    )
    where = str(endpoint)
    for step in (_check_host, _check_port):
        result = step(one)
        if result.verdict == FAIL:
            return CheckResult("node", WARN, f"unreachable: {result.detail}", result.fix, where)
    results: list[CheckResult] = []
    reached = _check_broker(one, results, send_test=False)
    failed = next((r for r in results if r.verdict == FAIL), None)
    if failed is None:
        return CheckResult("node", PASS, f"ready: {results[-1].detail}", None, where)
    if not reached:
        return CheckResult("node", WARN, f"unreachable: {failed.detail}", failed.fix, where)
    return CheckResult("node", FAIL, f"{failed.title}: {failed.detail}", failed.fix, where)


def _check_nodes(config: Config) -> list[CheckResult]:
    """Every node of a cluster at the same time, then whether at least one is ready."""
    workers = min(MAX_PARALLEL_NODES, len(config.brokers))
    with ThreadPoolExecutor(workers, thread_name_prefix="trainwire-check") as pool:
        lines = list(pool.map(lambda node: _check_node(config, node), config.brokers))
    ready = sum(line.verdict == PASS for line in lines)
    unreachable = sum(line.verdict == WARN for line in lines)
    total = len(lines)
    if ready:
        detail = f"{ready} of {total} nodes ready"
        if unreachable:
            detail += f", {unreachable} unreachable: the SDK fails over to the ready ones"
        return [*lines, CheckResult("nodes", PASS, detail)]
    return [*lines, CheckResult(
        "nodes", FAIL, f"none of the {total} nodes is ready",
        "start the broker nodes, or fix 'message_host' in "
        f"{config.path} (see the node lines above)",
    )]  # fmt: skip


def _send_test(config: Config) -> CheckResult:
    from .._broker._delivery import Outgoing, deliver

    message_id = new_message_id()
    body = progress_message(config.identity, 0, 0.0)
    outcome = deliver(config, [Outgoing(message_id, body)])
    if outcome.ok:
        return CheckResult(
            "send", PASS,
            f"training_ing (step 0, 0 %) confirmed by the broker, message_id {message_id}",
        )  # fmt: skip
    return CheckResult("send", FAIL, f"not confirmed: {outcome.reason}", outcome.reason)


def _shown(path: PathLike) -> str:
    """A config path as the checklist shows it: printable even when not valid UTF-8."""
    return clean_text(os.fspath(path))


def run_checks(path: PathLike | None = None, *, send_test: bool = False,
               kind: str | None = None) -> Preflight:  # fmt: skip
    """Run every check for the config at ``path`` (default ``$TRAINWIRE_CONFIG``)."""
    if not path and not os.environ.get(CONFIG_ENV):
        message = f"no training config file given: pass --config FILE or set {CONFIG_ENV}"
        return Preflight(None, [CheckResult("config", FAIL, message, message)])
    try:
        config = load_config(path, kind=kind)
    except ConfigError as exc:
        given = path if path is not None else os.environ.get(CONFIG_ENV, "")
        return Preflight(_shown(given), [CheckResult("config", FAIL, str(exc), str(exc))])
    results = [CheckResult(
        "config", PASS,
        f"{config.kind.value} job {config.job_id!r}, project {config.project_key!r}",
    )]  # fmt: skip
    preflight = Preflight(_shown(config.path), results, config)
    if not config.has_broker:
        results.append(CheckResult(
            "host", SKIP,
            "the config names no 'message_host': the SDK writes messages to "
            f"{config.save_dir / OFFLINE_FILE} (offline mode) instead of sending",
        ))  # fmt: skip
        results.append(_check_folder(config))
        return preflight
    if len(config.brokers) > 1:
        nodes = _check_nodes(config)
        results.extend([*nodes, _check_folder(config)])
        if send_test:
            ready = nodes[-1].verdict == PASS
            results.append(_send_test(config) if ready else
                           CheckResult("send", SKIP, "not sent: no node is ready"))  # fmt: skip
        return preflight
    steps: list[Callable[[Config], CheckResult]] = [_check_host, _check_port]
    for step in steps:
        result = step(config)
        results.append(result)
        if result.verdict == FAIL:
            for name in ("port", "login", "vhost", "queue"):
                if name not in {r.name for r in results}:
                    results.append(CheckResult(name, SKIP, f"not checked: {result.name} failed"))
            results.append(_check_folder(config))
            if send_test:
                results.append(CheckResult("send", SKIP, "not sent: no connection"))
            return preflight
    broker_results: list[CheckResult] = []
    _check_broker(config, broker_results, send_test)
    send = [r for r in broker_results if r.name == "send"]
    results.extend(r for r in broker_results if r.name != "send")
    results.append(_check_folder(config))
    results.extend(send)
    return preflight
