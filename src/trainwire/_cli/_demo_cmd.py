"""``trainwire demo``: a short simulated training that shows what the platform receives."""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from .._spec._layout import GRAPH_SUFFIX
from ._common import language_option, verbosity_options

__all__ = ["demo"]


def _simulate(run: Any, steps: int, seconds: float, out: Any) -> None:
    rng = random.Random(7)
    pause = seconds / steps
    width = 30
    for step in range(1, steps + 1):
        time.sleep(pause)  # the "training step"
        loss = 2.0 * math.exp(-step / (steps / 4)) + rng.uniform(0, 0.05)
        run.progress(step)
        run.log("loss", step, train=round(loss, 4), val=round(loss * 1.1 + 0.02, 4))
        if step % max(1, steps // 10) == 0:
            run.log(
                "accuracy",
                step // max(1, steps // 10),
                x_axis="epoch",
                top1=round(1 - loss / 2.2, 4),
            )
        filled = width * step // steps
        out.write(
            f"\r  [{'#' * filled}{'.' * (width - filled)}] {100 * step // steps:3d}%"
            f"  step {step}/{steps}  loss {loss:.3f} "
        )
        out.flush()
    out.write("\n")


def _summary(path: Path, metrics_dir: Path) -> str:
    records = []
    if path.exists():
        records = [json.loads(line)["body"] for line in path.read_text("utf-8").splitlines()]
    lines = [f"What the platform would have received ({len(records)} messages, {path}):"]
    progress = [r for r in records if "step" in r]
    if progress:
        lines.append(
            f"  {len(progress)} x training_ing, steps {progress[0]['step']} -> "
            f"{progress[-1]['step']}, {progress[0]['percentage']}% -> "
            f"{progress[-1]['percentage']}%; the last one:"
        )
        lines.append("    " + json.dumps(progress[-1], ensure_ascii=False))
    others = [r for r in records if "step" not in r]
    if others:
        lines.append("  then the terminal message:")
        lines.extend("    " + json.dumps(r, ensure_ascii=False) for r in others)
    graphs = sorted(metrics_dir.glob("*" + GRAPH_SUFFIX)) if metrics_dir.is_dir() else []
    if graphs:
        lines.append(f"Training graphs the platform would draw ({metrics_dir}):")
        for graph in graphs:
            rows = graph.read_text("utf-8").splitlines()
            lines.append(
                f"  {graph.name}: header '{rows[0]}', {len(rows) - 1} rows, last '{rows[-1]}'"
            )
    return "\n".join(lines)


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Report to the broker named in this training config instead of offline.",
)
@click.option(
    "--steps",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Number of simulated steps.",
)
@click.option(
    "--seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="How long the simulated training takes.",
)
@language_option
@verbosity_options
@click.option(
    "--fail-at",
    type=int,
    default=None,
    help="Raise an error at this step, to see a training_error.",
)
def demo(
    config_path: str | None, steps: int, seconds: float, language: str, fail_at: int | None
) -> None:
    """Run a short simulated training (no ML libraries, no broker needed).

    Without --config it writes a throw-away training config that names no broker, so the
    run uses the offline default and the end shows exactly what the platform would have
    received. With --config it reports to that config's broker.
    """
    import trainwire
    from trainwire._spec._protocol import Status
    from trainwire._spec._spool import OFFLINE_FILE

    if config_path is None:
        folder = Path(tempfile.mkdtemp(prefix="trainwire-demo-"))
        config = folder / "train_config.json"
        config.write_text(
            json.dumps(
                {
                    "project_key": "demo-project",
                    "model_id": "demo-model",
                    "model_write_path": str(folder / "model"),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        config_path = str(config)
        click.echo(f"trainwire demo: offline, config {config}")
    else:
        click.echo(f"trainwire demo: reporting with config {config_path}")
    try:
        run = trainwire.init(
            config=config_path, total_steps=steps, language=language, flush_timeout=10
        )
    except trainwire.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"  {run!r}")
    try:
        with run:
            if fail_at is not None:
                steps_before = max(0, min(fail_at, steps))
                _simulate(run, steps_before, seconds * steps_before / steps, sys.stdout)
                raise trainwire.TrainingError(
                    "데모 학습이 의도적으로 실패했습니다."
                    if language == "ko"
                    else "The demo training failed on purpose."
                )
            _simulate(run, steps, seconds, sys.stdout)
    except trainwire.TrainingError as exc:
        click.echo(f"  training raised: {exc}")
    click.echo(f"  run ended: {run.status}, delivered: {run.delivered}")
    save = run.config.save_dir
    if run.mode == "offline":
        click.echo(_summary(save / OFFLINE_FILE, run.config.metrics_dir))
    if run.status != Status.DONE.value:
        sys.exit(1)
