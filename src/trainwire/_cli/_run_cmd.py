"""``trainwire run -- CMD ...``: supervise any training command and report its status."""

from __future__ import annotations

import logging
import sys

import click

from .._errors import ConfigError
from ._common import config_option, fail_usage, language_option, load_or_exit, verbosity_options

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
    "--max-rate", type=click.FloatRange(min=0), default=10.0, show_default=True,
    help="At most this many training_ing per second (newest step wins); 0 sends every one.",
)  # fmt: skip
@click.option(
    "--flush-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
    help="Seconds to wait for the broker to confirm the final status; what is not "
    "confirmed by then is kept in the spool for `trainwire replay`.",
)  # fmt: skip
@language_option
@click.option(
    "--no-progress", is_flag=True,
    help="Do not turn progress bars in the output into training_ing.",
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
    command: tuple[str, ...],
) -> None:
    """Run COMMAND and report its status: exactly one training_done or training_error.

    \b
        trainwire run --config train_config.json -- python train.py --lr 3e-4

    The command's output passes through unchanged. Progress bars it prints (tqdm,
    Keras, Lightning) and plain lines `trainwire step=N total=M` become training_ing.
    Exit status 0 sends training_done; any other status, or death by a signal, sends
    training_error with a sentence from the command's last output. SIGTERM, SIGINT,
    SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to the command. A command that
    uses the trainwire SDK itself (it sees TRAINWIRE_CONFIG) reports on its own, and then
    trainwire run sends nothing more.

    Exit status: the command's own (128+N when signal N killed it); 2 when the config
    file is bad (the command is not started); 126/127 when it cannot be started.
    """
    from .._supervisor import Supervisor, exit_status_name

    config = load_or_exit(config_path)
    supervisor = Supervisor(
        list(command),
        config,
        total_steps=total_steps,
        max_rate=max_rate or None,
        flush_timeout=flush_timeout,
        language=language,
        parse_progress=not no_progress,
    )
    try:
        outcome = supervisor.run()
    except ConfigError as exc:
        fail_usage(str(exc))
    if outcome.child_reported:
        log.info("trainwire: the command reported %s itself", outcome.child_reported)
    elif outcome.sent:
        state = "not sent"
        if outcome.delivered is not None:
            state = "confirmed by the broker" if outcome.delivered else "kept in the spool"
        log.info(
            "trainwire: command exited with status %s; sent %s (%s)",
            exit_status_name(outcome.exit_status), outcome.sent, state,
        )  # fmt: skip
    sys.exit(outcome.exit_status)
