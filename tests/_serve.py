"""Helpers for the ``trainwire serve`` tests: the server as a real subprocess, its API, and
raw publishing of hand-made messages.

Import the fixture into a test module with
``from _serve import serve_factory_fixture  # noqa: F401`` (it is named ``serve_factory``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pika
import pytest

URL_LINE = re.compile(r"web page at (http://\S+?)/?$", re.M)


class ServeError(AssertionError):
    """The server did not start or did not reach the expected state."""


class ServeProcess:
    """``python -m trainwire serve ARGS --port 0`` with its stderr in a file."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.args = [sys.executable, "-m", "trainwire", "-v", "serve", "--port", "0", *args]
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.log = cwd / f"serve-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 45.0) -> ServeProcess:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.args, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = URL_LINE.search(self.output())
            if match:
                self.url = match.group(1)
                return self
            if self.proc.poll() is not None:
                raise ServeError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        self.stop()
        raise ServeError(f"serve did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a graceful stop), SIGKILL after ``timeout``; the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    # -- the API -------------------------------------------------------------------

    def get(self, path: str) -> Any:
        """GET ``path`` and parse the JSON answer."""
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def status(self, path: str) -> int:
        """The HTTP status of GET ``path``."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def job(self, job_id: str, kind: str = "training") -> dict[str, Any] | None:
        """The job from ``/api/jobs``, or None."""
        for job in self.get("/api/jobs"):
            if job["kind"] == kind and job["id"] == job_id:
                return job  # type: ignore[no-any-return]
        return None

    def messages(self, job_id: str, kind: str = "training") -> list[dict[str, Any]]:
        """The job's message log, oldest first."""
        path = f"/api/jobs/{kind}/{urllib.parse.quote(job_id, safe='')}/messages?limit=1000"
        return list(reversed(self.get(path)))

    def rejected(self) -> list[dict[str, Any]]:
        """Every rejected message, oldest first."""
        return list(reversed(self.get("/api/rejected?limit=1000")["messages"]))

    def wait_until(self, what: str, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            if self.proc is not None and self.proc.poll() is not None:
                raise ServeError(f"serve died while waiting for {what}:\n{self.output()}")
            time.sleep(0.05)
        raise ServeError(f"timed out waiting for {what} (last: {last!r})\n{self.output()[-3000:]}")

    def wait_count(
        self, what: str, fetch: Callable[[], list[Any]], n: int, timeout: float = 20.0
    ) -> list[Any]:
        """Wait until ``fetch()`` returns exactly ``n`` items; return them."""

        def check() -> list[Any] | None:
            items = fetch()
            return items if len(items) == n else None

        return self.wait_until(f"{n} {what}", check, timeout)  # type: ignore[no-any-return]

    def wait_job(
        self, job_id: str, kind: str = "training", timeout: float = 20.0, **fields: Any
    ) -> dict[str, Any]:
        """Wait until the job exists with every given field equal; return it."""

        def check() -> dict[str, Any] | None:
            job = self.job(job_id, kind)
            if job and all(job.get(k) == v for k, v in fields.items()):
                return job
            return None

        return self.wait_until(f"{kind} job {job_id!r} with {fields}", check, timeout)  # type: ignore[no-any-return]


@pytest.fixture(name="serve_factory")
def serve_factory_fixture(tmp_path: Path):
    """``serve_factory(*args, cwd=None, env=None) -> ServeProcess`` (started); stopped after."""
    procs: list[ServeProcess] = []

    def make(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> ServeProcess:
        p = ServeProcess(list(args), cwd or tmp_path, env)
        procs.append(p)
        return p.start()

    yield make
    for p in procs:
        p.stop()


def serve_with_job(
    serve_factory: Any, broker: Any, queue: str, config: Path, jobs_dir: Path
) -> tuple[ServeProcess, Path]:
    """A serve consuming ``queue`` with ``config``'s job registered from ``jobs_dir`` (made
    here); the server and the job's metrics folder."""
    jobs_dir.mkdir()
    (jobs_dir / config.name).write_text(config.read_text())
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--jobs", str(jobs_dir))
    metrics = Path(json.loads(config.read_text())["model_write_path"]) / "save" / "metrics"
    return server, metrics


def publish_raw(
    broker: Any,
    queue: str,
    body: bytes | str | dict[str, Any],
    *,
    message_id: str | None = None,
    timestamp: int | None = None,
) -> None:
    """Publish one hand-made message (confirmed) with the given AMQP properties."""
    if isinstance(body, dict):
        body = json.dumps(body, ensure_ascii=False)
    if isinstance(body, str):
        body = body.encode("utf-8")
    props = pika.BasicProperties(
        content_type="application/json", delivery_mode=2, message_id=message_id, timestamp=timestamp
    )
    broker.publish(queue, body, properties=props)


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m trainwire ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "trainwire", *args], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
