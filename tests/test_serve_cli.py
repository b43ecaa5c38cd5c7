"""The ``trainwire serve`` and ``trainwire jobs`` command lines: help, clear errors that
never echo a password, exit statuses, and recovery when the broker is away.

Commands that end before serving run in-process through click's runner (the real command
code, just without a new interpreter per case); the ones that serve run as processes."""

from __future__ import annotations

import json
import logging
import os
import socket

import pytest
from click.testing import CliRunner

import trainwire
from _serve import publish_raw, serve_factory_fixture  # noqa: F401
from trainwire._cli import main


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args: str, cwd, env: dict | None = None) -> _Result:
    """Run ``trainwire ARGS`` in-process from the folder ``cwd``."""
    runner = CliRunner()
    old = os.getcwd()
    logger = logging.getLogger("trainwire")  # the command configures it: put it back after
    saved = (logger.handlers[:], logger.level, logger.propagate)
    os.chdir(cwd)
    try:
        result = runner.invoke(main, list(args), env=env, prog_name="trainwire")
    finally:
        os.chdir(old)
        logger.handlers[:], logger.level, logger.propagate = saved
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return _Result(result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize("args", [["serve"], ["jobs"], ["jobs", "add"], ["jobs", "list"]])
def test_every_command_has_help(args, tmp_path):
    result = cli(*args, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: trainwire " + " ".join(args) in result.stdout


def test_serve_help_shows_the_defaults(tmp_path):
    out = cli("serve", "--help", cwd=tmp_path).stdout
    for text in ("127.0.0.1", "8080", "600", "sqlite:///trainwire-serve.sqlite3", "--stale-after"):
        assert text in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "say where the messages come from"),
        (["--config", "a.json", "--amqp-url", "amqp://x"], "not both"),
        (["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2F"], "needs --queue"),
        (["--config", "missing.json"], "missing.json: the training config file does not exist"),
        (["--amqp-url", "ftp://x", "--queue", "q"], "is not an AMQP URL"),
        (["--port", "70000", "--amqp-url", "amqp://x", "--queue", "q"], "70000"),
    ],
)
def test_serve_usage_errors_exit_2_and_say_what_to_do(args, expected, tmp_path):
    env = {"TRAINWIRE_CONFIG": ""}
    result = cli("serve", *args, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr


def test_serve_refuses_a_config_without_a_broker(tmp_path):
    config = tmp_path / "offline.json"
    config.write_text(json.dumps({"project_key": "p", "model_id": "m", "model_write_path": "."}))
    result = cli("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "names no 'message_host'" in result.stderr and str(config) in result.stderr


def test_wrong_broker_password_exits_2_without_echoing_it(broker, queue, tmp_path):
    url = f"amqp://guest:hunter2-secret@{broker.host}:{broker.port}/%2F"
    result = cli("serve", "--amqp-url", url, "--queue", queue, "--port", "0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "refused the login of user 'guest'" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_wrong_password_in_a_config_names_the_keys_to_fix(make_config, tmp_path):
    config = make_config(message_pw="not-the-password")
    result = cli("serve", "--config", str(config), "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "check 'message_id' and 'message_pw' in " + str(config) in result.stderr
    assert "not-the-password" not in result.stderr


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ("mysql://root:db-secret@127.0.0.1/tw", "unknown database 'mysql'"),
        ("postgresql://tw:db-secret@127.0.0.1:1/tw", "cannot connect to PostgreSQL"),
        ("sqlite:///no-such-folder/x.sqlite3", "does not exist"),
        ("sqlite://relative.sqlite3", "a SQLite URL is sqlite:///"),
    ],
)
def test_unusable_database_exits_2_without_echoing_its_password(
    db, expected, broker, queue, tmp_path
):
    result = cli("serve", "--amqp-url", broker.amqp_url, "--queue", queue, "--db", db, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "db-secret" not in result.stderr


def test_busy_port_exits_1_and_names_the_option(broker, queue, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = cli(
            "serve", "--amqp-url", broker.amqp_url, "--queue", queue, "--port", port, cwd=tmp_path
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_jobs_add_registers_good_files_and_names_bad_ones(make_config, tmp_path):
    good = make_config(model_id="model-good", fmt="yaml")
    bad = make_config(model_id=None)
    result = cli("jobs", "add", str(good), str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "registered training job 'model-good' (waiting)" in result.stdout
    assert f"{bad}: key 'model_id' is missing" in result.stderr
    listed = cli("jobs", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert listed.stdout.split() == ["training", "model-good", "waiting", "-"]
    assert (tmp_path / "trainwire-serve.sqlite3").exists()


def test_sigterm_stops_serve_with_status_0(serve_factory, broker, queue):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    assert server.stop() == 0
    assert "trainwire serve: stopped" in server.output()


def test_serve_starts_while_the_broker_is_unreachable_and_catches_up(
    serve_factory, proxy, broker, queue, make_config
):
    gate = proxy()
    gate.refuse(True)
    url = f"amqp://guest:guest@127.0.0.1:{gate.port}/%2F"
    server = serve_factory("--amqp-url", url, "--queue", queue)
    assert "not connected yet" in server.output()
    assert server.get("/api/health")["receiver"] != "consuming"
    config = make_config(model_id="model-away")
    with trainwire.init(config, total_steps=2, max_rate=None) as run:  # straight to the broker
        run.progress(1)
    gate.refuse(False)
    server.wait_job("model-away", state="done", timeout=30)
    # A dropped connection is picked up again, and nothing published meanwhile is lost.
    gate.drop()
    publish_raw(broker, queue, b"{}", message_id="after-drop")
    server.wait_until("the message after the drop", lambda: server.rejected(), timeout=30)
    assert [m["message_id"] for m in server.rejected()] == ["after-drop"]


def test_serve_takes_a_clusters_urls_from_the_environment_and_fails_over(
    serve_factory, proxy, broker, queue
):
    # Two nodes (two proxies to the one broker) in $TRAINWIRE_AMQP_URL, separated by a comma
    # and a space; the first refuses connections, so the second one serves.
    first, second = proxy(), proxy()
    first.refuse(True)
    urls = [f"amqp://guest:guest@127.0.0.1:{p.port}/%2F" for p in (first, second)]
    server = serve_factory("--queue", queue, env={"TRAINWIRE_AMQP_URL": ", ".join(urls)})
    server.wait_until("consuming", lambda: server.get("/api/health")["receiver"] == "consuming")
    shown = f"127.0.0.1:{first.port}/%2F,amqp://guest:***@127.0.0.1:{second.port}/%2F"
    assert shown in server.output()
    publish_raw(broker, queue, b"{}", message_id="via-second")
    server.wait_until("the message via the second node", lambda: server.rejected())
    # The second node goes away while the first is back: the next connect takes the first.
    first.refuse(False)
    second.refuse(True)
    second.drop()
    publish_raw(broker, queue, b"{}", message_id="via-first")
    server.wait_count("messages", server.rejected, 2, timeout=30)
    assert first.connections >= 1


def test_a_bad_url_among_several_is_named_without_its_password(broker, queue, tmp_path):
    result = cli(
        "serve", "--amqp-url", broker.amqp_url, "--amqp-url", "ftp://u:url-secret@x",
        "--queue", queue, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "is not an AMQP URL" in result.stderr and "url-secret" not in result.stderr


def test_serve_consumes_from_a_config_that_lists_a_clusters_nodes(
    serve_factory, make_config, broker, queue
):
    with socket.socket() as closed:  # a node that is down: nothing listens on its port
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    config = make_config(model_id="m-nodes", message_host=[dead, f"{broker.host}:{broker.port}"])
    server = serve_factory("--config", str(config))
    server.wait_until("consuming", lambda: server.get("/api/health")["receiver"] == "consuming")
    with trainwire.init(config, total_steps=2, max_rate=None) as run:
        run.progress(1)
    server.wait_job("m-nodes", state="done", timeout=30)
