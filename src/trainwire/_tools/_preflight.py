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

Nothing is sent unless ``send_test`` is true, and the password is never shown.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Callable

from .._errors import ConfigError
from .._spec._config import CONFIG_ENV, Config, PathLike, load_config
from .._spec._protocol import clean_text, new_message_id, progress_message
from .._spec._spool import OFFLINE_FILE

__all__ = ["CHECKS", "CheckResult", "Preflight", "run_checks"]

PASS, FAIL, SKIP = "pass", "fail", "skip"
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
}
CONNECT_TIMEOUT = 5.0


@dataclass
class CheckResult:
    """One line of the checklist."""

    name: str
    verdict: str
    detail: str
    fix: str | None = None

    @property
    def title(self) -> str:
        """What the check verifies, in words."""
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


def _check_broker(config: Config, results: list[CheckResult], send_test: bool) -> None:
    """login, vhost, queue (and send): one AMQP connection."""
    from .._broker._amqp import describe_connect_error
    from .._broker._diagnosis import FailureKind
    from .._broker._probe import probe_queue

    who = f"user {config.message_id!r}"
    probe = probe_queue(config, CONNECT_TIMEOUT)
    if probe.connect_error is not None:
        kind, sentence, _ = describe_connect_error(config, probe.connect_error)
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
        return
    results.append(CheckResult("login", PASS, f"{who} logged in"))
    results.append(CheckResult("vhost", PASS, f"virtual host {config.message_vhost!r}"))
    if probe.missing is not None:
        results.append(CheckResult(
            "queue", FAIL,
            f"no queue named {config.queue_name!r} in virtual host {config.message_vhost!r}"
            f" ({probe.missing})",
            f"check 'queue_name' in {config.path}; the platform creates that queue, "
            "trainwire does not",
        ))  # fmt: skip
        if send_test:
            results.append(CheckResult("send", SKIP, "not sent: the queue is missing"))
        return
    results.append(CheckResult(
        "queue", PASS,
        f"{config.queue_name!r} exists ({probe.messages} message(s) waiting, "
        f"{probe.consumers} consumer(s))",
    ))  # fmt: skip
    if send_test:
        results.append(_send_test(config))


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
