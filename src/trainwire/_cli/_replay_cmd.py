"""``trainwire replay``: deliver the messages a run kept in its local spool."""

from __future__ import annotations

from typing import Any

import click

from ._common import EXIT_FAILED, EXIT_OK, config_option, emit_json, load_or_exit, verbosity_options

__all__ = ["replay"]


def _describe(body: dict[str, Any]) -> str:
    status = str(body.get("status", "?"))
    if "step" in body:
        return f"{status} step {body.get('step')} ({body.get('percentage')} %)"
    if "message" in body:
        return f"{status}: {body.get('message')}"
    return status


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
    help="Seconds to wait for the broker to confirm everything.",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show what the spool holds; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@verbosity_options
def replay(config_path: str | None, timeout: float, dry_run: bool, as_json: bool) -> None:
    """Send what the spool <model_write_path>/save/trainwire-spool.jsonl holds.

    A run keeps its final status there when the broker did not confirm it in time.
    Messages go to the config's queue_name in the order they were kept, terminal
    messages last, each with its original message_id (so a consumer can drop a
    duplicate); only what the broker confirmed leaves the spool.

    Only this job's messages are sent (the config's project_key and model_id or
    validation_id); messages of other jobs sharing the folder are left for their config.

    Exit status: 0 nothing of this job is left (or there was nothing); 1 something is
    left (the reason says what to fix; run replay again); 2 bad config file.
    """
    from .._broker._delivery import belongs_to, replay_order, replay_spool, spool_for

    config = load_or_exit(config_path)
    if dry_run:
        spool = spool_for(config)
        records = [r for r in replay_order(spool.read()) if belongs_to(config, r.body)]
        if as_json:
            emit_json({"spool": str(spool.path), "records": [
                {"message_id": r.message_id, "terminal": r.terminal, "body": r.body}
                for r in records
            ]})  # fmt: skip
        else:
            click.echo(f"{spool.path}: {len(records)} message(s) to send")
            for record in records:
                click.echo(f"  {record.message_id}  {_describe(record.body)}")
        raise SystemExit(EXIT_OK)
    result = replay_spool(config, timeout=timeout)
    if as_json:
        emit_json({
            "ok": result.ok,
            "spool": result.spool,
            "sent": [{"message_id": r.message_id, "body": r.body} for r in result.sent],
            "remaining": result.remaining,
            "other_jobs": result.others,
            "problem": result.problem,
            "reason": result.reason,
        })  # fmt: skip
    else:
        if not result.sent and not result.remaining and result.problem is None:
            click.echo(f"nothing to replay: {result.spool} holds no message of this job")
        for record in result.sent:
            click.echo(f"sent {_describe(record.body)}  (message_id {record.message_id})")
        if result.sent:
            click.echo(f"{len(result.sent)} message(s) confirmed by the broker, queue "
                       f"{config.queue_name!r}")  # fmt: skip
        if result.others:
            click.echo(
                f"{result.others} message(s) of other jobs are left in {result.spool}: "
                "replay them with their own config"
            )
        if result.remaining:
            click.echo(
                f"trainwire: error: {result.remaining} message(s) remain in {result.spool}: "
                f"{result.reason or 'not confirmed'}. Fix that and run "
                f"`trainwire replay --config {config.path}` again.",
                err=True,
            )
    raise SystemExit(EXIT_OK if result.ok else EXIT_FAILED)
