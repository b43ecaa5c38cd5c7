"""A private, throw-away PostgreSQL server for integration tests.

``Postgres`` runs Debian's ``postgresql`` binaries (``initdb`` + ``postgres``) in a temp
dir, listening on 127.0.0.1 only, with ``trust`` authentication for the loopback.
PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` system user (made by the Debian package), started with ``setpriv`` so that
the pid we hold is the postmaster's own: it is stopped by that pid, never by name.
It never skips: no PostgreSQL, no green run.

    pg = Postgres().start()
    url = pg.create_database("t1")   # postgresql://postgres@127.0.0.1:PORT/t1
    pg.close()
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["Postgres", "PostgresError"]


class PostgresError(RuntimeError):
    """The server could not be started or driven; the message has the log's tail."""


def _bin_dir() -> Path:
    env = os.environ.get("TW_POSTGRES_BIN_DIR")
    if env:
        return Path(env)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise PostgresError("PostgreSQL is not installed: apt-get install -y postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """One private PostgreSQL cluster (user ``postgres``, no password, loopback only)."""

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.bin = _bin_dir()
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="tw-pg-"))
        self.data = self.dir / "data"
        self.log_file = self.dir / "postgres.log"
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresError(
                    "running as root but there is no 'postgres' user: apt-get install postgresql"
                ) from None
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            uid, gid = entry.pw_uid, entry.pw_gid
            self._as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--"]
        atexit.register(self._atexit)

    def _run(self, *args: str) -> None:
        r = subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, timeout=120, cwd=self.dir
        )
        if r.returncode:
            raise PostgresError(f"{' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")

    def start(self) -> Postgres:
        """initdb (once) and start the server; return when it accepts connections."""
        if self.is_running():
            return self
        if not (self.data / "PG_VERSION").exists():
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
        cmd = [
            *self._as_user, str(self.bin / "postgres"), "-D", str(self.data),
            "-c", f"listen_addresses={self.host}", "-p", str(self.port),
            "-c", f"unix_socket_directories={self.dir}",
            "-c", "max_connections=60", "-c", "shared_buffers=32MB",
            # Throw-away test data: durability costs time and proves nothing here.
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
        ]  # fmt: skip
        if threading.current_thread() is threading.main_thread():
            cmd = ["setpriv", "--pdeathsig", "TERM", "--", *cmd]  # dies with pytest
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise PostgresError(f"postgres exited with {self._proc.returncode}\n{self.logs()}")
            r = subprocess.run(
                [
                    str(self.bin / "pg_isready"),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    self.user,
                ],
                capture_output=True,
            )
            if r.returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise PostgresError(
                    f"postgres not ready after {self.start_timeout}s\n{self.logs()}"
                )
            time.sleep(0.1)

    def is_running(self) -> bool:
        """True while the postmaster we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        """Fast shutdown (SIGINT to the postmaster's pid), SIGKILL after ``grace`` s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        """Stop the server and remove its temp dir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _atexit(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def logs(self, lines: int = 40) -> str:
        """The tail of the server log."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "<no postgres log>"
        return "\n".join(text.splitlines()[-lines:])

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` on this server."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with ``psql`` (unaligned, tuples only) and return its output."""
        r = subprocess.run(
            [str(self.bin / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if r.returncode:
            raise PostgresError(f"psql {sql!r} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)
