"""``run.log()`` per row against ``csv.writer.writerow`` + ``flush``."""

from __future__ import annotations

import csv
import time
from typing import Any, Callable

from ._common import Context, Figure, alternate, env_mode, fmt, median, per_round_ratio

__all__ = ["measure"]


def measure(ctx: Context) -> list[Figure]:
    """One figure: a two-series graph row through a disabled run's ``log`` against csv."""
    import trainwire

    n = 2_000 if ctx.quick else 20_000
    rounds = 3 if ctx.quick else 9
    with env_mode("disabled"):  # graphs are written in every mode; no broker needed
        run = trainwire.init(ctx.config(), total_steps=10**12)
    csv_path = ctx.dir / "baseline.csv"
    fh = open(csv_path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    writer = csv.writer(fh)
    writer.writerow(["step", "train", "val"])
    state = {"step": 0, "row": 0}

    def loop_log(n: int) -> int:
        log = run.log
        first = state["step"]
        t0 = time.perf_counter_ns()
        for step in range(first, first + n):
            train = 1.0 / (step + 1)
            log("loss", step, train=train, val=train * 0.5)
        elapsed = time.perf_counter_ns() - t0
        state["step"] = first + n
        return elapsed

    def loop_csv(n: int) -> int:
        writerow, flush = writer.writerow, fh.flush
        first = state["row"]
        t0 = time.perf_counter_ns()
        for step in range(first, first + n):
            train = 1.0 / (step + 1)
            writerow([step, train, train * 0.5])
            flush()
        elapsed = time.perf_counter_ns() - t0
        state["row"] = first + n
        return elapsed

    variants: dict[str, Callable[[int], int]] = {"csv": loop_csv, "log": loop_log}
    try:
        res = alternate(variants, n, rounds)
    finally:
        run.done()
        fh.close()
    med = {k: median(v) for k, v in res.items()}
    ratio = per_round_ratio(res, "log", "csv")
    graph: Any = next(iter((ctx.dir).glob("models-*/save/metrics/loss.log")), None)
    details = [
        ("`run.log('loss', step, train=t, val=v)`", f"{fmt(med['log'], 'ns')} per row"),
        ("`csv.writer(f).writerow([step, t, v]); f.flush()`", f"{fmt(med['csv'], 'ns')} per row"),
        (
            "how",
            f"{rounds} rounds of {n:,} rows each, order rotated; medians; both end in one "
            "write(2) per row",
        ),
    ]
    if graph is not None:
        size = graph.stat().st_size
        details.append(("file written by run.log", f"`{graph.name}`, {size:,} bytes"))
    return [
        Figure(
            key="log_rows",
            title="`run.log()` per row (2 series)",
            unit="ns",
            trainwire=med["log"],
            baseline=med["csv"],
            baseline_name="`csv.writer.writerow` + `flush`",
            goal="within 2x (ratio <= 2.00)",
            met=ratio <= 2.0,
            ratio=ratio,
            note="per row, including the write(2) system call",
            details=details,
        )
    ]
