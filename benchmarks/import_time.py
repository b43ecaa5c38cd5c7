"""Import time: ``python -c "import trainwire"`` against ``python -c "pass"``, and what it
imports (no ML framework may come in with it).

Both run with compiled bytecode cached, as after ``pip install`` (which compiles): the
children get ``PYTHONPYCACHEPREFIX`` in the run's scratch folder and never
``PYTHONDONTWRITEBYTECODE``, and a first warm-up run of each fills the cache. Without a
cache every import compiles trainwire's sources, which is not what a user's job pays.
"""

from __future__ import annotations

import json
import subprocess
import time

from ._common import Context, Figure, child_env, median, python

__all__ = ["measure"]

#: Modules that would make ``import trainwire`` heavy or tie it to one framework.
FRAMEWORKS = (
    "torch",
    "tensorflow",
    "jax",
    "keras",
    "lightning",
    "pytorch_lightning",
    "transformers",
    "accelerate",
    "deepspeed",
    "ray",
    "xgboost",
    "lightgbm",
    "sklearn",
    "numpy",
    "pandas",
)
#: Heavy libraries trainwire uses but should load only when needed.
LAZY = ("pika", "yaml", "click", "tqdm", "sqlite3", "ssl", "asyncio")

_PROBE = (
    "import sys, json, trainwire; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
)


def _env(ctx: Context) -> dict[str, str]:
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ctx.dir / "pycache")
    return env


def _wall(code: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([python(), "-c", code], check=True, env=env)
    return (time.perf_counter() - t0) * 1000.0


def _top_imports(env: dict[str, str], limit: int = 6) -> list[tuple[str, int]]:
    """The slowest modules under ``import trainwire`` by ``-X importtime`` (cumulative µs)."""
    out = subprocess.run(
        [python(), "-X", "importtime", "-c", "import trainwire"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stderr
    rows: list[tuple[str, int]] = []
    inside = False
    for line in reversed(out.splitlines()):  # the trainwire block ends with its own line
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        if name.strip() == "trainwire":
            inside = True
        elif inside and not name.startswith("  "):
            break  # a top-level import before trainwire's block (site, encodings)
        if inside:
            rows.append((name.strip(), int(parts[1])))
    rows.sort(key=lambda r: -r[1])
    return rows[1 : limit + 1]


def measure(ctx: Context) -> list[Figure]:
    """One figure: the median extra wall time of importing trainwire; framework check."""
    reps = 5 if ctx.quick else 21
    ours: list[float] = []
    bare: list[float] = []
    env = _env(ctx)
    _wall("pass", env)  # fill the bytecode cache and the page cache
    _wall("import trainwire", env)
    for rep in range(reps):
        order = ("import trainwire", "pass") if rep % 2 else ("pass", "import trainwire")
        for code in order:
            (ours if code != "pass" else bare).append(_wall(code, env))
    diffs = [a - b for a, b in zip(ours, bare)]
    extra = median(diffs)
    loaded = json.loads(
        subprocess.run(
            [python(), "-c", _PROBE], capture_output=True, text=True, check=True, env=env
        ).stdout
    )
    frameworks = sorted(set(FRAMEWORKS) & set(loaded))
    lazy_loaded = sorted(set(LAZY) & set(loaded))
    top = _top_imports(env)
    met = extra < 50.0 and not frameworks
    return [
        Figure(
            key="import_time",
            title='import time: `python -c "import trainwire"`',
            unit="ms",
            trainwire=median(ours),
            baseline=median(bare),
            baseline_name='`python -c "pass"`',
            goal="< 50 ms more than a bare interpreter; no framework imported",
            met=met,
            ratio=median(ours) / median(bare),
            note=f"{extra:.1f} ms more than a bare interpreter (median of per-pair "
            f"differences); frameworks imported: {', '.join(frameworks) or 'none'}",
            details=[
                ("extra wall time, median of pairs", f"{extra:.1f} ms"),
                (
                    "fastest of each (the least disturbed run): bare / with trainwire / extra",
                    f"{min(bare):.1f} / {min(ours):.1f} / {min(ours) - min(bare):.1f} ms",
                ),
                ("frameworks imported", ", ".join(frameworks) or "none"),
                ("heavy libraries loaded at import", ", ".join(lazy_loaded) or "none"),
                (
                    "slowest imports inside (`-X importtime`, cumulative)",
                    ", ".join(f"`{name}` {us / 1000:.1f} ms" for name, us in top),
                ),
                (
                    "how",
                    f"{reps} pairs of fresh interpreters, order alternated; wall time; "
                    "bytecode cached",
                ),
            ],
        )
    ]
