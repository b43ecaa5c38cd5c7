"""``trainwire run -- CMD ...``: supervise any training command and report its status."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from .._errors import ConfigError
from .._sdk._run import DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_RATE
from ._common import config_option, fail_usage, language_option, load_or_exit, verbosity_options

if TYPE_CHECKING:
    from .._tools._supervisor import Outcome

__all__ = ["run"]

log = logging.getLogger("trainwire")


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    }
)
@config_option
@click.option(
    "--total-steps", type=click.IntRange(min=1), default=None,
    help="Steps of the whole training: percentage = step / total. Without it the "
    "percentage comes from the progress bar.",
)  # fmt: skip
@click.option(
    "--max-rate", type=click.FloatRange(min=0), default=DEFAULT_MAX_RATE, show_default=True,
    help="At most this many training_ing per second (newest step wins); 0 sends every one.",
)  # fmt: skip
@click.option(
    "--flush-timeout", type=click.FloatRange(min=0), default=DEFAULT_FLUSH_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the broker to confirm the final status; what is not "
    "confirmed by then is kept in the spool for `trainwire replay`.",
)  # fmt: skip
@language_option
@click.option(
    "--no-progress", is_flag=True,
    help="Do not turn progress bars in the output into training_ing.",
)  # fmt: skip
@click.option(
    "--tty/--no-tty", default=None,
    help="Give the command a pseudo-terminal for stdout and stderr (bars draw every frame, "
    "as in a terminal). Default: for each of them that is a terminal here.",
)  # fmt: skip
@click.option(
    "--hint-after", type=(click.FloatRange(min=0), click.IntRange(min=1)), default=None,
    hidden=True,  # for tests: the hint's thresholds (seconds, lines) without waiting 60 s
)  # fmt: skip
@verbosity_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    config_path: str | None,
    total_steps: int | None,
    max_rate: float,
    flush_timeout: float,
    language: str,
    no_progress: bool,
    tty: bool | None,
    hint_after: tuple[float, int] | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND and report its status: exactly one training_done or training_error.

    \b
        trainwire run --config train_config.json -- python train.py --lr 3e-4

    The command's output passes through unchanged. Progress bars it prints (tqdm,
    Keras, Lightning) and plain lines `trainwire step=N total=M` become training_ing;
    when none is recognised after 60 s or 200 lines, one hint on stderr says how to
    report progress.
    Exit status 0 sends training_done; any other status, or death by a signal, sends
    training_error with a sentence from the command's last output. SIGTERM, SIGINT,
    SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to the command. A command that
    uses the trainwire SDK itself (it sees TRAINWIRE_CONFIG) reports on its own, and then
    trainwire run sends nothing more (if the command died before the broker confirmed
    the terminal message it had decided, trainwire run delivers that one from the spool).

    After SIGTERM, SIGHUP or SIGQUIT the job did not finish: training_error even if the
    command then exits 0. After SIGINT (Ctrl+C) the command's outcome decides: exit 0
    sends training_done, anything else training_error saying the user stopped it.

    Exit status: the command's own (128+N when signal N killed it); 2 when the config
    file is bad (the command is not started); 126/127 when it cannot be started. When
    trainwire run itself got a stop signal and the job ended in training_error, it ends
    by that same signal (a shell shows 128+N).
    """
    from .._tools._hint import HINT_AFTER_LINES, HINT_AFTER_SECONDS
    from .._tools._supervisor import Supervisor

    config = load_or_exit(config_path)
    supervisor = Supervisor(
        list(command),
        config,
        total_steps=total_steps,
        max_rate=max_rate or None,
        flush_timeout=flush_timeout,
        language=language,
        parse_progress=not no_progress,
        tty=tty,
        hint_after=hint_after or (HINT_AFTER_SECONDS, HINT_AFTER_LINES),
    )
    try:
        outcome = supervisor.run()
    except ConfigError as exc:
        fail_usage(str(exc))
    _tell(outcome, config.path)
    if outcome.ends_by is not None:
        _end_by_signal(outcome.ends_by)
    sys.exit(outcome.exit_status)


def _delivery_state(delivered: bool | None) -> str:
    if delivered is None:
        return "not sent"
    return "confirmed by the broker" if delivered else "kept in the spool"


def _tell(outcome: Outcome, config_path: Path) -> None:
    """One info line: who reported what, and whether the broker has it."""
    from .._tools._supervisor import exit_status_name

    status = exit_status_name(outcome.exit_status)
    if outcome.forwarded and outcome.child_reported is not None:
        log.info(
            "trainwire: the command decided %s itself but ended (status %s) before the broker "
            "confirmed it; trainwire run delivered it from the spool (%s)",
            outcome.child_reported.value, status, _delivery_state(outcome.delivered),
        )  # fmt: skip
        if not outcome.delivered:
            log.warning("trainwire: send it with: trainwire replay --config %s", config_path)
    elif outcome.child_reported is not None:
        log.info("trainwire: the command reported %s itself", outcome.child_reported.value)
    elif outcome.sent is not None:
        log.info(
            "trainwire: command exited with status %s; sent %s (%s)",
            status, outcome.sent.value, _delivery_state(outcome.delivered),
        )  # fmt: skip


def _end_by_signal(signum: int) -> NoReturn:
    """End this process by ``signum``, as its default action does: whoever started
    ``trainwire run`` sees that it was stopped (a shell shows 128+N), not a success."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError, ValueError):
        # SIGQUIT's default action dumps core: the supervisor's core helps nobody.
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # not ended by it (it cannot be unblocked here): as a shell shows
