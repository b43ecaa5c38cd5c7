"""``trainwire serve --serve-config FILE``: every option from one YAML or JSON file, against
real ``serve`` processes and the real broker; the command line wins over the file; each bad
file is refused with exit status 2, naming the file and the key, never echoing a password;
and the complete example in docs/serve.md starts a server as it is."""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from _postgres import Postgres
from _serve import ServeProcess, publish_raw, serve_factory_fixture  # noqa: F401
from test_serve_cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs" / "serve.md"


@pytest.fixture(scope="module", name="postgres")
def postgres_fixture():
    pg = Postgres().start()
    yield pg
    pg.close()


def _send(broker, queue, job_id: str, project_key: str, step: int) -> None:
    from trainwire._spec._protocol import Identity, Kind, Status

    body = {
        **Identity(Kind.TRAINING, project_key, job_id).base(Status("training_ing")),
        "percentage": step * 10.0,
        "step": step,
    }
    publish_raw(broker, queue, body, message_id=uuid.uuid4().hex)


def _user_url(broker) -> str:
    return f"amqp://{broker.user}@{broker.host}:{broker.port}/%2F"


def _deploy(tmp_path: Path, broker, name: str, settings: dict[str, Any]) -> Path:
    """``deploy/NAME`` holding ``settings``, next to ``deploy/secrets/`` (relative paths)."""
    folder = tmp_path / "deploy"
    (folder / "secrets").mkdir(parents=True, exist_ok=True)
    (folder / "secrets" / "amqp-password").write_text(broker.password + "\n")
    (folder / "secrets" / "webhook-secret").write_text("webhook-secret\n")
    path = folder / name
    text = yaml.safe_dump(settings) if name.endswith(".yaml") else json.dumps(settings)
    path.write_text(text)
    return path


def test_a_serve_config_sets_the_options_it_names(serve_factory, broker, queue, tmp_path):
    hook = "http://127.0.0.1:9/hooks/tw"
    config = _deploy(tmp_path, broker, "serve.yaml", {
        "amqp_url": [_user_url(broker)], "amqp_password_file": "secrets/amqp-password",
        "queue": queue, "db": "sqlite:///from-config.sqlite3", "stale_after": 123.5,
        "project_key": ["pk-allowed"], "prefetch": 7, "keep_messages": 2,
        "webhook": [hook + "#running,done"], "webhook_secret_file": "secrets/webhook-secret",
        "public_url": "https://status.example.com/",
    })  # fmt: skip
    server = serve_factory("--serve-config", str(config))  # run from tmp_path, not deploy/
    health = server.get("/api/health")
    assert health["stale_after"] == 123.5
    assert f"queue={queue!r}" in health["broker"] and f"{broker.user}:***@" in health["broker"]
    assert health["database"].endswith("from-config.sqlite3")
    assert (tmp_path / "from-config.sqlite3").exists(), "a sqlite URL is relative to the cwd"
    alerts = server.get("/api/alerts")
    assert [(w["url"], w["states"]) for w in alerts["webhooks"]] == [
        ("http://127.0.0.1:9/…", ["done", "running"])  # shown shortened
    ]
    assert alerts["signed"] is True, "the secret file was found relative to the config"
    for step in (1, 2, 3):
        _send(broker, queue, "kept", "pk-allowed", step)
    _send(broker, queue, "other-key", "pk-not-listed", 1)
    server.wait_job("kept", state="running", step=3)
    kept = server.wait_count("kept messages", lambda: server.messages("kept"), 2, timeout=30)
    assert [m["step"] for m in kept] == [2, 3]
    assert server.wait_until("the foreign key's message", server.rejected)
    assert server.job("other-key") is None


def test_the_command_line_wins_over_a_json_serve_config(serve_factory, broker, queue, tmp_path):
    config = _deploy(tmp_path, broker, "serve.json", {
        "amqp-url": _user_url(broker), "amqp-password-file": "secrets/amqp-password",
        "queue": "not-this-queue", "stale-after": 111,
    })  # fmt: skip
    server = serve_factory("--serve-config", str(config), "--queue", queue, "--stale-after", "222")
    health = server.get("/api/health")
    assert health["stale_after"] == 222.0
    assert f"queue={queue!r}" in health["broker"]
    server.wait_until("consuming", lambda: server.get("/api/health")["receiver"] == "consuming")


_BIG = "# padding\n" * 110_000


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("s.yaml", "qeueu: status\n", "key 'qeueu' is not a serve option; did you mean 'queue'?"),
        ("s.yaml", "queue: [a, b]\n", "'queue': expected one value, as --queue Q takes, found a"),
        ("s.yaml", "webhook: {url: x}\n", "a list of values, one per --webhook, found a mapping"),
        ("s.yaml", "port: 70000\n", "key 'port': 70000 is not in the range"),
        ("s.yaml", "stale_after:\n", "'stale_after': expected one value, as --stale-after SECONDS"),
        ("s.json", '{"stale-after": 1, "stale_after": 2}', "key 'stale_after' is given twice"),
        ("s.yaml", "- queue\n", "expected a mapping of option names to values at the top level"),
        ("s.json", '{"queue": ', "is not valid JSON"),
        ("s.yaml", "queue: [a\n", "is not valid YAML"),
        ("s.yaml", _BIG, "is larger than 1024 KiB"),
        ("s.yaml", b"queue: \xff\n", "is not UTF-8 text"),
        ("s.yaml", None, "the serve config file does not exist"),
        ("s.yaml", "jobs: no-such-folder\n", "key 'jobs':"),
    ],
)  # fmt: skip
def test_a_bad_serve_config_exits_2_naming_the_file_and_key(name, content, expected, tmp_path):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = cli("serve", "--serve-config", str(path), cwd=tmp_path, env={"TRAINWIRE_CONFIG": ""})
    assert result.returncode == 2, result.stderr
    assert f"{path}: " in result.stderr and expected in result.stderr, result.stderr


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "serve.yaml"
    os.mkfifo(fifo)
    result = cli("serve", "--serve-config", str(fifo), cwd=tmp_path)
    assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("amqp_url", "amqp://guest:amqp-secret@127.0.0.1:5672/%2F"),
        ("db", "postgresql://tw:db-secret@127.0.0.1:5432/tw"),
        ("db", "postgresql://tw@127.0.0.1:5432/tw?password=db-secret"),
    ],
)
def test_a_password_in_a_serve_config_is_refused_and_never_shown(key, url, tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({key: [url] if key == "amqp_url" else url, "queue": "q"}))
    result = cli("serve", "--serve-config", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"key '{key}' holds a URL with a password (not shown)" in result.stderr
    assert "secret" not in result.stdout + result.stderr.replace("secrets", "")


def _docs_example() -> str:
    section = DOCS.read_text(encoding="utf-8").split("### A serve config file", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "docs/serve.md has no yaml example under 'A serve config file'"
    return match.group(1)


def test_the_docs_example_covers_every_option_and_starts_serve(
    serve_factory, broker, queue, postgres, tmp_path
):
    from click import Option

    from trainwire._cli._serve_cmd import serve

    example = yaml.safe_load(_docs_example())
    options = {
        o.opts[-1][2:].replace("-", "_")
        for o in serve.params
        if isinstance(o, Option) and o.opts[-1].startswith("--")
    }
    # 'config' is the other way to say what to consume (amqp_url and queue here).
    assert set(example) == options - {"serve_config", "config", "help"}
    deploy = _deploy(tmp_path, broker, "serve.yaml", {})
    deploy.write_text(_docs_example())
    secrets = deploy.parent / "secrets"
    (secrets / "db-password").write_text("unused-by-trust-auth\n")
    (secrets / "serve-token").write_text("docs-example-token\n")
    (secrets / "metrics-token").write_text("docs-metrics-token\n")
    (deploy.parent / "configs").mkdir()
    db = postgres.create_database(f"docs_{uuid.uuid4().hex[:10]}")
    server = serve_factory(
        "--serve-config", str(deploy), "--amqp-url", _user_url(broker), "--queue", queue,
        "--db", db,
    )  # fmt: skip
    assert server.status("/api/health") == 401, "the token file was read"
    health = _get(server, "/api/health", "docs-example-token")
    assert health["stale_after"] == example["stale_after"]
    alerts = _get(server, "/api/alerts", "docs-example-token")
    assert len(alerts["webhooks"]) == len(example["webhook"]) and alerts["signed"] is True
    _send(broker, queue, "docs-job", example["project_key"][0], 1)
    server.wait_until(
        "the docs job",
        lambda: [j for j in _get(server, "/api/jobs", "docs-example-token") if j["step"] == 1],
    )


def _get(server: ServeProcess, path: str, token: str) -> Any:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read().decode("utf-8"))
