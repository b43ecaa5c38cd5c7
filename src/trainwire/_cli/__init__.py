"""The ``trainwire`` command. Subcommands live in their own modules and load on demand,
so ``trainwire --help`` stays fast and a command never pays for another's imports.

Exit statuses shared by every command: 0 success, 1 the command's check failed (see each
command's help), 2 bad usage or a bad config file.
"""

from __future__ import annotations

import importlib
import logging

import click

__all__ = ["main"]

#: name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "check": ("._check_cmd", "check", "Preflight a config: file, broker, login, queue, folder."),
    "demo": ("._demo_cmd", "demo", "Run a short simulated training and show what is sent."),
    "jobs": ("._serve_cmd", "jobs", "Register training jobs with the local platform."),
    "metrics": ("._metrics_cmd", "metrics", "Check or summarise a folder of metric graphs."),
    "replay": ("._replay_cmd", "replay", "Send the messages kept in a run's local spool."),
    "run": ("._run_cmd", "run", "Supervise any training command and report its status."),
    "send": ("._send_cmd", "send", "Send one status message by hand (for shell scripts)."),
    "serve": ("._serve_cmd", "serve", "Receive status messages and show jobs in a web page."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0], __name__)
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def configure_logging(verbosity: int) -> None:
    """-v shows trainwire's info lines, -q only errors; default: warnings."""
    level = {-1: logging.ERROR, 0: logging.WARNING}.get(verbosity, logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("trainwire")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", "verbose", flag_value=1, help="Show more (info lines).")
@click.option("-q", "--quiet", "verbose", flag_value=-1, help="Show only errors.")
@click.version_option(package_name="trainwire")
@click.pass_context
def main(ctx: click.Context, verbose: int | None) -> None:
    """trainwire: report training status to the ML platform, and check what it receives.

    Start with `trainwire demo`. The config file defaults to $TRAINWIRE_CONFIG.
    """
    verbosity = verbose or 0
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbosity
    configure_logging(verbosity)
