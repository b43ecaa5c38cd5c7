"""A private, throw-away RabbitMQ node for integration tests.

``Broker`` runs ``rabbitmq-server`` directly (not the ``/usr/sbin`` su-wrapper)
with every path, port and the Erlang cookie confined to a temp dir, listening on
127.0.0.1 only.  It never skips: if the server is missing or does not come up,
it raises ``BrokerError`` with the tail of the broker's logs.

Typical use (see tests/conftest.py for the fixtures)::

    b = Broker().start()
    b.declare_queue("q")
    b.publish("q", {"hello": 1})
    assert b.drain("q")[0]["body"] == {"hello": 1}
    b.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import pika

RABBIT_BIN_DIR = Path(os.environ.get("TW_RABBITMQ_BIN_DIR", "/usr/lib/rabbitmq/bin"))
SERVER = RABBIT_BIN_DIR / "rabbitmq-server"
CTL = RABBIT_BIN_DIR / "rabbitmqctl"

# rabbitmqctl binds its own Erlang distribution port in 35672-35682 (node port
# + 30000 + 0..10); the node's default dist port is 25672.  Never hand those out.
_RESERVED_PORTS = set(range(35672, 35683)) | {4369, 5671, 5672, 25672}
_handed_out: set[int] = set()
_port_lock = threading.Lock()


class BrokerError(RuntimeError):
    """The broker could not be started/stopped/driven; message has log tails."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, outside RabbitMQ's reserved ports.

    Ports are never handed out twice per process, so several ports can be
    reserved before anything binds them.
    """
    with _port_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _RESERVED_PORTS and port not in _handed_out:
                _handed_out.add(port)
                return port
    raise BrokerError("could not find a free port")


# P-256 keys: instant to generate, fine for Erlang's ssl and Python's.
_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = trainwire test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path}: missing>"
    return f"--- {path} (last {lines} lines) ---\n" + "\n".join(text.splitlines()[-lines:])


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body


class Broker:
    """One private RabbitMQ node.  Ports and node name are fixed at construction,
    so ``restart()`` keeps the data dir (durable queues, persistent messages) and
    the AMQP port (clients can reconnect to the same URL)."""

    user = "guest"
    password = "guest"
    host = "127.0.0.1"

    def __init__(
        self,
        *,
        tls: bool = False,
        extra_config: Iterable[str] = (),
        start_timeout: float = 60.0,
        keep_dir: bool | None = None,
    ):
        """``extra_config``: extra rabbitmq.conf lines, e.g. ``["heartbeat = 5"]``."""
        self.tls = tls
        self.extra_config = list(extra_config)
        self.start_timeout = start_timeout
        # TW_KEEP_BROKER_DIR=1 keeps the temp dir (logs, mnesia) for post-mortems.
        self.keep_dir = bool(os.environ.get("TW_KEEP_BROKER_DIR")) if keep_dir is None else keep_dir
        self.dir = Path(tempfile.mkdtemp(prefix="tw-rabbit-"))
        self.node = f"tw{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.tls_port: int | None = free_port() if tls else None
        self.pid_file = self.dir / "rabbit.pid"
        self.log_file = self.dir / "log" / f"{self.node}.log"
        self.stdout_file = self.dir / "server.out"
        self._proc: subprocess.Popen | None = None
        self._prepared = False
        self._client_certs = 0
        self.env = self._make_env()
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ setup
    def _make_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        d = self.dir
        env.update(
            HOME=str(d / "home"),  # private ~/.erlang.cookie, shared with rabbitmqctl
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq"),  # no ".conf": rabbit appends it
            RABBITMQ_CONFIG_FILES=str(d / "conf.d"),  # keep /etc/rabbitmq/conf.d out
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),  # absent on purpose
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_MOTD_FILE=str(d / "motd"),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_CRASH_DUMP=str(d / "erl_crash.dump"),  # never into the caller's cwd
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def _prepare(self) -> None:
        if self._prepared:
            return
        d = self.dir
        for sub in ("home", "mnesia", "log", "conf.d"):
            (d / sub).mkdir(exist_ok=True)
        (d / "enabled_plugins").write_text("[].\n")  # no plugins: faster start/stop
        (d / "rabbitmq-env.conf").write_text("")
        conf = [
            f"listeners.tcp.1 = 127.0.0.1:{self.port}",
            "loopback_users = none",
            "vm_memory_high_watermark.relative = 0.4",
            "disk_free_limit.absolute = 1MB",  # a nearly full CI disk must not block publishers
            "log.file.level = info",
            "log.console = false",
        ]
        if self.tls:
            self._make_tls()
            conf += [
                f"listeners.ssl.1 = 127.0.0.1:{self.tls_port}",
                f"ssl_options.cacertfile = {self.ca_file}",
                f"ssl_options.certfile = {self.server_cert_file}",
                f"ssl_options.keyfile = {self.server_key_file}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        conf += self.extra_config
        (d / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        self._prepared = True

    # ---------------------------------------------------------------- TLS
    @property
    def tls_dir(self) -> Path:
        return self.dir / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca_cert.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.tls_dir / "ca_key.pem"

    @property
    def server_cert_file(self) -> Path:
        return self.tls_dir / "server_cert.pem"

    @property
    def server_key_file(self) -> Path:
        return self.tls_dir / "server_key.pem"

    def _openssl(self, *args: str) -> None:
        if not shutil.which("openssl"):
            raise BrokerError("openssl CLI not found (apt-get install openssl)")
        r = subprocess.run(
            ["openssl", *args], cwd=self.tls_dir, capture_output=True, text=True, timeout=60
        )
        if r.returncode:
            raise BrokerError(f"openssl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")

    def _make_tls(self) -> None:
        self.tls_dir.mkdir(exist_ok=True)
        (self.tls_dir / "openssl.cnf").write_text(_OPENSSL_CNF)
        self._openssl(
            *("req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", *_EC_KEY, "-nodes"),
            *("-days", "30", "-keyout", str(self.ca_key_file), "-out", str(self.ca_file)),
        )
        self._sign("server", "localhost", self.server_cert_file, self.server_key_file)

    def _sign(self, kind: str, cn: str, cert: Path, key: Path) -> None:
        csr = self.tls_dir / f"{cert.stem}.csr"
        self._openssl(
            *("req", "-new", *_EC_KEY, "-nodes", "-subj", f"/CN={cn}"),
            *("-keyout", str(key), "-out", str(csr)),
        )
        self._openssl(
            *("x509", "-req", "-in", str(csr), "-days", "30", "-out", str(cert)),
            *("-CA", str(self.ca_file), "-CAkey", str(self.ca_key_file)),
            *("-set_serial", str(secrets.randbits(63))),
            *("-extfile", "openssl.cnf", "-extensions", kind),
        )

    def make_client_cert(self, cn: str = "trainwire-client") -> tuple[Path, Path]:
        """A fresh client cert/key pair (PEM) signed by this broker's CA: (cert, key)."""
        if not self.tls:
            raise BrokerError("make_client_cert() needs Broker(tls=True)")
        self._prepare()
        self._client_certs += 1
        n = self._client_certs
        cert, key = self.tls_dir / f"client{n}_cert.pem", self.tls_dir / f"client{n}_key.pem"
        self._sign("client", cn, cert, key)
        return cert, key

    # ---------------------------------------------------------- lifecycle
    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.port}/%2F"

    @property
    def amqps_url(self) -> str:
        if not self.tls:
            raise BrokerError("amqps_url needs Broker(tls=True)")
        return f"amqps://{self.user}:{self.password}@localhost:{self.tls_port}/%2F"

    @property
    def pid(self) -> int | None:
        """OS pid of the Erlang VM (the pid in the pid file), if running."""
        return self._beam_pid() if self.is_running() else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Broker:
        """Start the node and block until it accepts AMQP connections."""
        if self.is_running():
            return self
        if not (os.access(SERVER, os.X_OK) and os.access(CTL, os.X_OK)):
            raise BrokerError(f"{SERVER} / {CTL} not found: apt-get install rabbitmq-server")
        self._prepare()
        self.pid_file.unlink(missing_ok=True)  # a stale pid file confuses `rabbitmqctl wait`
        # rabbitmq-server is a /bin/sh wrapper that runs the VM as its child and
        # forwards SIGTERM/SIGINT to it as a graceful stop.  If pytest itself dies
        # (CI timeout, SIGKILL), PDEATHSIG sends the wrapper SIGTERM, so the node
        # goes down too.  PDEATHSIG fires when the *thread* that forked exits, so
        # only use it from the main thread (restart() from a helper thread is OK).
        cmd = [str(SERVER)]
        if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "TERM", "--", *cmd]
        with open(self.stdout_file, "ab") as out:
            out.write(f"\n===== start {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                env=self.env,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_pid_file(self, deadline: float) -> None:
        """Until the pid file holds a whole pid: ``rabbitmqctl wait`` reads it as soon as it
        exists, and fails with ``garbage_in_pid_file`` if it catches it before the pid is
        written (seen once in a benchmark run)."""
        last = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return  # _wait_ready reports the exit
            try:
                text = self.pid_file.read_text().strip()
            except OSError:
                text = ""
            if text.isdigit() and text == last:  # the same whole pid twice, 50 ms apart
                return
            last = text
            time.sleep(0.05)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        self._wait_pid_file(deadline)
        waiter = subprocess.Popen(
            [
                str(CTL),
                "-n",
                self.node,
                "wait",
                "--timeout",
                str(int(self.start_timeout)),
                str(self.pid_file),
            ],
            env=self.env,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            while True:
                if self._proc.poll() is not None:
                    rc = self._proc.returncode
                    raise BrokerError(
                        f"rabbitmq-server exited ({rc}) during startup\n{self.logs()}"
                    )
                rc = waiter.poll()
                if rc is not None:
                    if rc != 0:
                        out = waiter.stdout.read().decode(errors="replace")
                        raise BrokerError(
                            f"`rabbitmqctl wait` failed ({rc}):\n{out}\n{self.logs()}"
                        )
                    break
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"broker not ready after {self.start_timeout}s\n{self.logs()}"
                    )
                time.sleep(0.1)
        finally:
            if waiter.poll() is None:
                waiter.kill()
            waiter.wait()
            waiter.stdout.close()
        for port in filter(None, (self.port, self.tls_port)):
            try:
                socket.create_connection((self.host, port), timeout=5).close()
            except OSError as e:
                raise BrokerError(
                    f"broker up but port {port} not accepting: {e}\n{self.logs()}"
                ) from e

    def stop(self, grace: float = 30.0) -> None:
        """Graceful stop (SIGTERM to the VM's pid), SIGKILL after ``grace`` s."""
        if not self.is_running():
            self._proc = None
            return
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._proc.wait(10)
        self._proc = None

    def kill(self) -> None:
        """Crash the node (SIGKILL to the VM), for fault tests.  ``start()`` brings it back."""
        if self.is_running():
            self._signal(signal.SIGKILL)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()  # the sh wrapper, should it linger
                self._proc.wait(10)
        self._proc = None

    def restart(self, grace: float = 30.0) -> Broker:
        """Graceful stop + start; same node name, data dir and ports."""
        self.stop(grace)
        return self.start()

    def close(self) -> None:
        """Stop the node and remove its temp dir (unless keep_dir)."""
        self.stop()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _beam_pid(self) -> int | None:
        """The VM's pid: from the pid file, else the wrapper's child; only ever a
        live direct child of our wrapper process (guards against pid reuse)."""
        if self._proc is None:
            return None
        candidates = []
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int(self.pid_file.read_text().strip()))
        with contextlib.suppress(OSError):
            candidates += [
                int(p)
                for p in Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
                .read_text()
                .split()
            ]
        for pid in candidates:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == self._proc.pid:  # ppid
                return pid
        return None

    def _signal(self, sig: int) -> None:
        # Signal the VM by pid (never by group or name).  If it is not there
        # (yet), signal the wrapper: it forwards TERM, and KILL ends it anyway.
        pid = self._beam_pid() or self._proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _atexit(self) -> None:  # a session that dies without running close()
        if self.is_running():
            self.kill()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def logs(self, lines: int = 60) -> str:
        """Tail of the node log, plus the server's stdout/stderr: its first error
        lines (boot failures are explained there, before the node log exists)
        and its tail."""
        try:
            errors = [
                ln
                for ln in self.stdout_file.read_text(errors="replace").splitlines()
                if "[error]" in ln
            ][:15]
        except OSError:
            errors = []
        first_errors = (
            f"--- {self.stdout_file} (first error lines) ---\n" + "\n".join(errors) + "\n"
            if errors
            else ""
        )
        return f"{_tail(self.log_file, lines)}\n{first_errors}{_tail(self.stdout_file, 30)}"

    # ------------------------------------------------------------ control
    def ctl(self, *args: str, timeout: float = 60.0, check: bool = True, quiet: bool = True) -> str:
        """Run ``rabbitmqctl -n NODE [-q] ARGS`` against this node, return stdout."""
        cmd = [str(CTL), "-n", self.node, *(["-q"] if quiet else []), *map(str, args)]
        r = subprocess.run(
            cmd,
            env=self.env,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode:
            raise BrokerError(f"{' '.join(cmd[2:])} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def list_queues(self, vhost: str = "/") -> dict[str, int]:
        """{queue name: ready+unacked message count} (exact, via rabbitmqctl)."""
        out = self.ctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
        result = {}
        for line in out.splitlines():
            if line.strip():
                name, _, count = line.rpartition("\t")
                result[name] = int(count)
        return result

    def add_user(
        self, name: str, pw: str, vhost: str | None = "/", tags: Iterable[str] = ()
    ) -> None:
        """Create a user with full permissions on ``vhost`` (None: no permissions)."""
        self.ctl("add_user", name, pw)
        if tags:
            self.ctl("set_user_tags", name, *tags)
        if vhost is not None:
            self.ctl("set_permissions", "-p", vhost, name, ".*", ".*", ".*")

    def delete_user(self, name: str) -> None:
        self.ctl("delete_user", name)

    def add_vhost(self, name: str, users: Iterable[str] = ("guest",)) -> None:
        """Create a vhost and give ``users`` full permissions on it."""
        self.ctl("add_vhost", name)
        for user in users:
            self.ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")

    def delete_vhost(self, name: str) -> None:
        self.ctl("delete_vhost", name)

    def set_memory_alarm(self, on: bool) -> None:
        """Raise/clear the memory alarm: publishing connections get connection.blocked."""
        self.ctl("set_vm_memory_high_watermark", "0.0000001" if on else "0.4")

    def close_all_connections(self, reason: str = "closed by test") -> None:
        """Server-initiated connection.close on every client connection."""
        self.ctl("close_all_connections", reason)

    # --------------------------------------------------------------- AMQP
    def params(
        self, vhost: str = "/", user: str | None = None, pw: str | None = None, **kw: Any
    ) -> pika.ConnectionParameters:
        kw.setdefault("host", self.host)
        kw.setdefault("port", self.port)
        kw.setdefault("connection_attempts", 3)
        kw.setdefault("retry_delay", 0.5)
        kw.setdefault("socket_timeout", 5)
        kw.setdefault("blocked_connection_timeout", 30)
        return pika.ConnectionParameters(
            virtual_host=vhost,
            credentials=pika.PlainCredentials(user or self.user, pw or self.password),
            **kw,
        )

    def connect(self, **kw: Any) -> pika.BlockingConnection:
        """A pika BlockingConnection to this node (kwargs go to ``params()``)."""
        return pika.BlockingConnection(self.params(**kw))

    def declare_queue(
        self, name: str, durable: bool = True, vhost: str = "/", arguments: dict | None = None
    ) -> str:
        with self._channel(vhost) as ch:
            ch.queue_declare(name, durable=durable, arguments=arguments)
        return name

    def delete_queue(self, name: str, vhost: str = "/") -> None:
        with self._channel(vhost) as ch:
            ch.queue_delete(name)

    def purge_queue(self, name: str, vhost: str = "/") -> None:
        with self._channel(vhost) as ch:
            ch.queue_purge(name)

    def publish(
        self,
        queue: str,
        body: Any,
        persistent: bool = True,
        properties: pika.BasicProperties | None = None,
        vhost: str = "/",
    ) -> None:
        """Publish to ``queue`` via the default exchange; non-bytes bodies are JSON-encoded."""
        json_body = not isinstance(body, (bytes, str))
        if json_body:
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        props = properties or pika.BasicProperties(
            content_type="application/json" if json_body else None
        )
        if persistent and props.delivery_mode is None:
            props.delivery_mode = 2  # persistent
        with self._channel(vhost) as ch:
            ch.confirm_delivery()
            ch.basic_publish("", queue, body, props, mandatory=True)

    def drain(self, queue: str, timeout: float = 10.0, vhost: str = "/") -> list[dict]:
        """Get (and ack) every message currently in ``queue``.

        Each message is ``{"body": parsed JSON or raw bytes, "properties":
        pika.BasicProperties, "raw": bytes, "routing_key": str, "redelivered": bool}``.
        Stops when the queue is empty or after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        msgs = []
        with self._channel(vhost) as ch:
            while time.monotonic() < deadline:
                method, props, body = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                msgs.append(
                    {
                        "body": _decode(body),
                        "properties": props,
                        "raw": body,
                        "routing_key": method.routing_key,
                        "redelivered": method.redelivered,
                    }
                )
                ch.basic_ack(method.delivery_tag)
        return msgs

    def wait_for(
        self,
        queue: str,
        predicate: Callable[[list[dict]], bool] | None = None,
        timeout: float = 10.0,
        vhost: str = "/",
    ) -> list[dict]:
        """Drain repeatedly, accumulating, until ``predicate(messages)`` is true
        (default: at least one message) or ``timeout`` passes; returns all messages
        drained so far either way (assert on the result)."""
        predicate = predicate or bool
        deadline = time.monotonic() + timeout
        msgs: list[dict] = []
        while True:
            msgs += self.drain(queue, timeout=max(1.0, deadline - time.monotonic()), vhost=vhost)
            if predicate(msgs) or time.monotonic() >= deadline:
                return msgs
            time.sleep(0.1)

    def _channel(self, vhost: str = "/") -> _Channel:
        return _Channel(self, vhost)


class _Channel:
    """Short-lived connection + channel as a context manager."""

    def __init__(self, broker: Broker, vhost: str):
        self.broker, self.vhost = broker, vhost

    def __enter__(self):
        self.conn = self.broker.connect(vhost=self.vhost)
        return self.conn.channel()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
