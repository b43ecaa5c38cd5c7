"""``trainwire check``: preflight a training config before the job trains."""

from __future__ import annotations

import click

from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, config_option, emit_json, verbosity_options

__all__ = ["check"]

_MARK = {"pass": "pass", "fail": "FAIL", "skip": "skip"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option(
    "--send-test", is_flag=True,
    help="Also publish one training_ing (step 0, 0 %) and wait for the broker's confirm. "
    "The platform then shows the job as started.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the checklist as JSON.")
@verbosity_options
def check(config_path: str | None, send_test: bool, as_json: bool) -> None:
    """Check a training config: file, host, port, login, vhost, queue, folder.

    Prints a checklist with a verdict per check and, for each failure, the fix. Sends
    nothing unless --send-test is given; never shows the password.

    Exit status: 0 every check passed; 1 a check failed; 2 the config file itself is
    missing or invalid.
    """
    from .._tools._preflight import run_checks

    preflight = run_checks(config_path, send_test=send_test)
    if as_json:
        emit_json(preflight.to_dict())
    else:
        click.echo(f"trainwire check: {preflight.path or '(no config file)'}")
        if preflight.config is not None and preflight.config.has_broker:
            click.echo(f"  broker: {preflight.config.describe_broker()}")
        width = max(len(result.title) for result in preflight.results)
        for result in preflight.results:
            click.echo(f"  [{_MARK.get(result.verdict, result.verdict)}] "
                       f"{result.title:<{width}}  {result.detail}")  # fmt: skip
            if result.fix and result.verdict == "fail" and result.fix != result.detail:
                click.echo(f"  {'':6} {'':<{width}}  fix: {result.fix}")
        failed = [r for r in preflight.results if r.verdict == "fail"]
        if failed:
            names = ", ".join(r.name for r in failed)
            click.echo(f"NOT READY: {len(failed)} check(s) failed ({names}).")
        else:
            warned = [r.title for r in preflight.results if r.verdict == "warn"]
            if warned:
                click.echo(f"READY, with {len(warned)} warning(s): {'; '.join(warned)}.")
            else:
                click.echo("READY: every check passed.")
    if not preflight.config_ok:
        raise SystemExit(EXIT_USAGE)
    raise SystemExit(EXIT_OK if preflight.ok else EXIT_FAILED)
