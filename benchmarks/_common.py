"""What every benchmark shares: the figure record, the run context, timing helpers."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "REPO",
    "Context",
    "Figure",
    "alternate",
    "env_mode",
    "median",
    "percentile",
    "wait_until",
]

#: The repository root (the folder holding ``benchmarks/`` and ``src/``).
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Figure:
    """One row of the results table: trainwire against its baseline, measured in one run.

    ``ratio`` is trainwire / baseline unless the module says otherwise; ``met`` is None
    when the figure has no goal. ``details`` are extra ``(label, value)`` rows shown under
    the table (the reference loops, percentiles, counts).
    """

    key: str
    title: str
    unit: str
    trainwire: float | None
    baseline: float | None
    baseline_name: str
    goal: str = ""
    met: bool | None = None
    ratio: float | None = None
    ratio_style: str = "x"
    note: str = ""
    available: bool = True
    details: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain dict (for ``--json``)."""
        return asdict(self)

    @property
    def ratio_text(self) -> str:
        """The ratio as shown in the table: ``1.23x`` or ``92 %``."""
        if self.ratio is None:
            return "—"
        if self.ratio_style == "%":
            return f"{self.ratio * 100:.1f} %"
        return f"{self.ratio:.2f}x"

    @property
    def met_text(self) -> str:
        """``yes``, ``**no**``, or ``—`` when the figure has no goal."""
        if not self.available:
            return "not available"
        if self.met is None:
            return "—"
        return "yes" if self.met else "**no**"


def fmt(value: float | None, unit: str) -> str:
    """A measured value with its unit, rounded for reading."""
    if value is None:
        return "—"
    if unit == "msg/s":
        return f"{value:,.0f} msg/s"
    if unit == "ns":
        return f"{value:,.0f} ns" if value >= 100 else f"{value:.1f} ns"
    if unit == "µs":
        return f"{value:,.1f} µs"
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "MB":
        return f"{value:+.2f} MB"
    if unit == "Minstr":
        return f"{value:,.1f} M instr"
    if unit == "instr":
        return f"{value:,.0f} instr"
    return f"{value:g} {unit}"


def median(values: list[float]) -> float:
    """The median (of a non-empty list)."""
    return float(statistics.median(values))


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank, of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def alternate(
    variants: dict[str, Callable[[int], int]], n: int, rounds: int
) -> dict[str, list[float]]:
    """Run each ``variant(n) -> elapsed ns`` once per round, rotating the order every round.

    Returns ns per iteration for each variant and round. Rotating spreads the machine's
    noise evenly; ratios should be taken per round (same moment, same load).
    """
    names = list(variants)
    for name in names:  # warm up: specialise the bytecode, fill caches
        variants[name](min(n, 10_000))
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(variants[name](n) / n)
    return out


def per_round_ratio(results: dict[str, list[float]], num: str, den: str) -> float:
    """The median over rounds of ``results[num] / results[den]``."""
    return median([a / b for a, b in zip(results[num], results[den])])


@contextlib.contextmanager
def env_mode(mode: str | None) -> Iterator[None]:
    """Set ``TRAINWIRE_MODE`` (None: unset) for the ``trainwire.init`` calls inside."""
    old = os.environ.get("TRAINWIRE_MODE")
    if mode is None:
        os.environ.pop("TRAINWIRE_MODE", None)
    else:
        os.environ["TRAINWIRE_MODE"] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TRAINWIRE_MODE", None)
        else:
            os.environ["TRAINWIRE_MODE"] = old


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(interval)
    return True


class Context:
    """What one benchmark run shares: options, a scratch folder and (on demand) a broker."""

    def __init__(self, *, quick: bool, workdir: Path) -> None:
        self.quick = quick
        self.dir = workdir
        self._broker: Any = None
        self.rabbitmq_version: str | None = None
        self._configs = 0

    # -- the broker ----------------------------------------------------------------

    def broker(self) -> Any:
        """The run's private RabbitMQ node (started on first use, stopped by close())."""
        if self._broker is None:
            from ._broker import Broker

            self._broker = Broker().start()
            self.rabbitmq_version = self._server_version()
        elif not self._broker.is_running():
            self._broker.start()
        return self._broker

    def _server_version(self) -> str | None:
        try:
            conn = self._broker.connect()
        except Exception:
            return None
        try:
            props = conn._impl.server_properties
            version = props.get("version") or props.get(b"version")
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            conn.close()

    def new_queue(self) -> str:
        """A fresh durable classic queue on the broker (as the platform declares it)."""
        return str(self.broker().declare_queue(f"tw-bench-{uuid.uuid4().hex[:10]}"))

    def delete_queue(self, name: str) -> None:
        """Delete a queue made by new_queue (ignores a broker that is down)."""
        broker = self._broker
        if broker is not None and broker.is_running():
            with contextlib.suppress(Exception):
                broker.delete_queue(name)

    # -- configs -------------------------------------------------------------------

    def config(self, *, queue: str | None = None, port: int | None = None) -> Path:
        """A training config file: to the broker and ``queue``, to ``port`` on loopback
        (nothing listening: a broker that is down), or with no broker (offline)."""
        self._configs += 1
        models = self.dir / f"models-{self._configs}"
        models.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, Any] = {
            "message_id": "guest",
            "message_pw": "guest",
            "queue_name": queue or "tw-bench-unused",
            "project_key": "pk-bench",
            "model_id": "model-bench",
            "model_write_path": str(models),
        }
        if port is not None:
            cfg.update(message_host="127.0.0.1", message_port=port)
        elif queue is not None:
            b = self.broker()
            cfg.update(message_host=b.host, message_port=b.port)
        path = self.dir / f"config-{self._configs}.json"
        path.write_text(json.dumps(cfg, indent=2))
        return path

    def close(self) -> None:
        """Stop the broker, if one was started."""
        if self._broker is not None:
            self._broker.close()
            self._broker = None


def child_env() -> dict[str, str]:
    """The environment for a child ``python -m benchmarks.X``: the repo on sys.path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    env.pop("TRAINWIRE_MODE", None)
    env.pop("TRAINWIRE_CONFIG", None)
    return env


def python() -> str:
    """The interpreter running the benchmarks (the real binary, not a shim)."""
    return sys.executable


def delivered(run: Any) -> int:
    """Messages of ``run`` the broker confirmed so far (the AMQP transport's counter)."""
    return int(getattr(run._transport, "delivered", 0))


def online_run(config: Path, **options: Any) -> Any:
    """``trainwire.init(config, **options)`` to a live broker, once its first message is
    confirmed (so that connecting is not part of what is measured)."""
    import trainwire

    with env_mode(None):
        run = trainwire.init(config, flush_timeout=10, **options)
    run.progress(0, percentage=0.0)
    if not wait_until(lambda: delivered(run) >= 1, timeout=30):
        run.done()
        raise RuntimeError(f"the run to {config} never got its first confirm from the broker")
    return run
