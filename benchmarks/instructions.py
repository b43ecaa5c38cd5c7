"""Hot path in CPU instructions (valgrind's callgrind): the same comparison as ``hot_path``
counted instead of timed, so the machine's load cannot move it.

One child interpreter runs each loop in turn under ``valgrind --tool=callgrind
--dump-before=time_sleep``, with a ``time.sleep(0)`` between loops: every sleep starts a
new dump, so each dump holds exactly one loop. Instructions per iteration are the dump's
total over the number of iterations. Slow (about 20 s), so only in the full run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ._common import Context, Figure, child_env, fmt, python

__all__ = ["measure"]

CALLS = 100_000
VALGRIND_NULL = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
VARIANTS = ("empty", "deque", "tqdm", "disabled")


def _child(config: str, n: int) -> None:
    import collections

    import tqdm as tqdm_module

    import trainwire

    tqdm_module.tqdm.monitor_interval = 0  # no monitor thread adding its own instructions
    os.environ["TRAINWIRE_MODE"] = "disabled"
    run = trainwire.init(config, total_steps=10**12)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the process ends right after
    bar = tqdm_module.tqdm(total=None, file=devnull)
    sink: collections.deque[int] = collections.deque(maxlen=1)

    def loop_empty() -> None:
        for _ in range(n):
            pass

    def loop_index(f: Callable[[int], Any]) -> Callable[[], None]:
        def loop() -> None:
            for i in range(n):
                f(i)

        return loop

    def loop_one(f: Callable[[int], Any]) -> Callable[[], None]:
        def loop() -> None:
            for _ in range(n):
                f(1)

        return loop

    loops = {
        "empty": loop_empty,
        "deque": loop_index(sink.append),
        "tqdm": loop_one(bar.update),
        "disabled": loop_index(run.progress),
    }
    for name in VARIANTS:  # specialise the bytecode before counting
        loops[name]()
    time.sleep(0)  # dump: everything up to here
    for name in VARIANTS:
        loops[name]()
        time.sleep(0)  # dump: this loop
    run.done()


def _import_runs(ctx: Context) -> list[tuple[str, subprocess.Popen[str]]]:
    """Start callgrind on ``python -c "pass"`` and ``-c "import trainwire"`` (bytecode
    cached, as in import_time); they run beside the hot-path count on the other core."""
    from .import_time import _env

    env = _env(ctx)
    env["PYTHONHASHSEED"] = "0"
    subprocess.run([python(), "-c", "import trainwire"], check=True, env=env)  # fill cache
    return [
        (
            code,
            subprocess.Popen(
                [*VALGRIND_NULL, python(), "-c", code],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            ),
        )
        # trainwire twice: a source file edited meanwhile would be compiled in one run
        for code in ("pass", "import trainwire", "import trainwire")
    ]


def _collected(proc: subprocess.Popen[str]) -> int:
    _, err = proc.communicate(timeout=900)
    match = re.search(r"Collected\s*:\s*(\d+)", err)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"callgrind run failed ({proc.returncode}):\n{err[-2000:]}")
    return int(match.group(1))


def _count(ctx: Context, n: int) -> dict[str, float]:
    out_dir = Path(tempfile.mkdtemp(prefix="tw-callgrind-", dir=ctx.dir))
    out_file = out_dir / "callgrind.out"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--dump-before=time_sleep",
        f"--callgrind-out-file={out_file}",
        python(),
        "-m",
        "benchmarks.instructions",
        "--child",
        str(ctx.config()),
        str(n),
    ]
    env = child_env()
    env["PYTHONHASHSEED"] = "0"  # string hashes (dict probes) vary per process otherwise
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    totals = {}
    for path in out_dir.glob("callgrind.out.*"):
        match = re.search(r"^totals:\s*(\d+)", path.read_text(errors="replace"), re.M)
        if match:
            totals[int(path.name.rsplit(".", 1)[1])] = int(match.group(1))
    # dump 1: start-up; dumps 2..: one loop each, in VARIANTS order
    dumps = [totals[k] for k in sorted(totals)]
    if len(dumps) < 1 + len(VARIANTS):
        raise RuntimeError(f"callgrind wrote {len(dumps)} dumps, expected {1 + len(VARIANTS)}")
    shutil.rmtree(out_dir, ignore_errors=True)
    return {name: dumps[1 + i] / n for i, name in enumerate(VARIANTS)}


def measure(ctx: Context) -> list[Figure]:
    """Two figures: instructions per progress() call (disabled run) against
    tqdm.update(1), and instructions of ``import trainwire`` against a bare interpreter."""
    imp = Figure(
        key="instructions.import",
        title='import in CPU instructions: `python -c "import trainwire"`',
        unit="Minstr",
        trainwire=None,
        baseline=None,
        baseline_name='`python -c "pass"`',
        goal="(see import time)",
    )
    base = Figure(
        key="instructions",
        title="hot path in CPU instructions: `run.progress(step)`, disabled run",
        unit="instr",
        trainwire=None,
        baseline=None,
        baseline_name="`tqdm.update(1)`",
        goal="no more than tqdm.update (ratio <= 1.00)",
    )
    if ctx.quick or shutil.which("valgrind") is None:
        for f in (base, imp):
            f.available = False
            f.note = (
                "skipped in --quick (callgrind takes about 20 s)"
                if ctx.quick
                else "not available: valgrind is not installed (apt-get install valgrind)"
            )
        return [base, imp]
    imports = _import_runs(ctx)
    per = _count(ctx, CALLS)
    counts = [_collected(proc) / 1e6 for _, proc in imports]
    bare, ours = counts[0], min(counts[1:])
    imp.trainwire, imp.baseline = ours, bare
    imp.ratio = ours / bare
    imp.note = (
        f"trainwire adds {ours - bare:.0f} M instructions, {(ours - bare) / bare:.2f}x what "
        "a bare interpreter start costs here; deterministic, like the row above"
    )
    base.trainwire = per["disabled"]
    base.baseline = per["tqdm"]
    base.ratio = per["disabled"] / per["tqdm"]
    base.met = base.ratio <= 1.0
    base.note = (
        "per loop iteration, loop included; valgrind counts, no clock (tqdm's own count "
        "moves by a few % between runs: it redraws its bar on a wall-clock interval)"
    )
    base.details = [
        (label, f"{fmt(per[key], 'instr')} per iteration")
        for key, label in (
            ("empty", "empty loop body"),
            ("deque", "`deque(maxlen=1).append(i)`"),
            ("tqdm", "`tqdm.update(1)`"),
            ("disabled", "`run.progress(i)`, disabled run"),
        )
    ]
    return [base, imp]


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    _child(sys.argv[2], int(sys.argv[3]))  # the counts are in callgrind's dumps
