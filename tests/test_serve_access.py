"""Access control of ``trainwire serve`` against real server processes: a non-loopback
address needs a token, the API and the event stream want it as a bearer token, and
``/metrics`` may have its own (the page's login form is in test_serve_browser.py)."""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from pathlib import Path

import pytest

from _serve import ServeProcess, cli, serve_factory_fixture  # noqa: F401

TOKEN = "s3cret-Token_0123456789.~"
METRICS_TOKEN = "scrape-only-token"


def _request(
    server: ServeProcess,
    path: str,
    token: str | None = None,
    *,
    form: dict[str, str] | None = None,
    cookie: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` (POST ``form``); the status, the headers (lower-case names), the body."""
    url = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = cookie
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request("GET" if form is None else "POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _token_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


def test_serve_refuses_a_public_address_without_a_token(broker, queue, tmp_path):
    args = ["serve", "--amqp-url", broker.amqp_url, "--queue", queue, "--port", "0"]
    assert "TRAINWIRE_SERVE_TOKEN" not in os.environ
    result = cli(*args, "--host", "0.0.0.0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    for how in ("--token-file", "$TRAINWIRE_SERVE_TOKEN", "--host 127.0.0.1"):
        assert how in result.stderr
    assert "web page at" not in result.stderr

    empty = tmp_path / "empty.token"
    empty.write_text("")
    result = cli(*args, "--host", "0.0.0.0", "--token-file", str(empty), cwd=tmp_path)
    assert result.returncode == 2 and "the file is empty" in result.stderr, result.stderr

    result = cli(*args, "--host", "0.0.0.0", cwd=tmp_path, env={"TRAINWIRE_SERVE_TOKEN": ""})
    assert result.returncode == 2 and "TRAINWIRE_SERVE_TOKEN is empty" in result.stderr

    korean = _token_file(tmp_path, "korean.token", "토큰")
    result = cli(*args, "--host", "0.0.0.0", "--token-file", korean, cwd=tmp_path)
    assert result.returncode == 2 and "printable ASCII" in result.stderr, result.stderr
    assert "토큰" not in result.stderr


def test_a_public_address_with_a_token_wants_it_and_never_prints_it(
    serve_factory, broker, queue, tmp_path
):
    token_file = _token_file(tmp_path, "serve.token", TOKEN)
    server = serve_factory(
        "--amqp-url", broker.amqp_url, "--queue", queue, "--host", "0.0.0.0",
        "--token-file", token_file,
    )  # fmt: skip
    status, headers, body = _request(server, "/api/jobs")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert "Bearer" in json.loads(body)["error"]
    assert _request(server, "/api/jobs", "wrong-token")[0] == 401
    assert _request(server, "/api/jobs", TOKEN[:-1])[0] == 401
    status, _, body = _request(server, "/api/jobs", TOKEN)
    assert status == 200 and json.loads(body) == []
    assert _request(server, "/api/health", TOKEN)[0] == 200
    # The pages send a reader without a session to the login form; its stylesheet is open.
    status, headers, _ = _request(server, "/")
    assert status == 303 and headers["location"] == "/login"
    assert _request(server, "/jobs/training/x")[0] == 303
    status, _, body = _request(server, "/login")
    assert status == 200 and b'type="password"' in body
    assert _request(server, "/static/app.css")[0] == 200
    assert TOKEN not in server.output()


def test_the_token_from_the_environment_is_enforced_on_loopback_too(
    serve_factory, broker, queue, tmp_path
):
    env = {"TRAINWIRE_SERVE_TOKEN": TOKEN}
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, env=env)
    assert _request(server, "/api/jobs")[0] == 401
    assert _request(server, "/api/jobs", TOKEN)[0] == 200
    status, _, body = _request(server, "/login", form={"password": "wrong"})
    assert status == 401 and b"Wrong token" in body
    # The cookie the login form sets opens the API; it is not the token; a made-up one fails.
    status, headers, _ = _request(server, "/login", form={"password": TOKEN})
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    session = cookie.split(";", 1)[0]
    assert _request(server, "/api/jobs", cookie=session)[0] == 200
    assert _request(server, "/", cookie=session)[0] == 200
    assert _request(server, "/api/jobs", cookie=session[:-1] + "0")[0] == 401
    assert _request(server, "/metrics", cookie=session)[0] == 401  # scrapers use bearer
    status, headers, _ = _request(server, "/logout", cookie=session)
    assert status == 303 and "Max-Age=0" in headers["set-cookie"]


def test_the_event_stream_wants_the_bearer_token(serve_factory, broker, queue, tmp_path):
    token_file = _token_file(tmp_path, "serve.token", TOKEN)
    server = serve_factory(
        "--amqp-url", broker.amqp_url, "--queue", queue, "--token-file", token_file
    )
    assert _request(server, "/api/events")[0] == 401
    url = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
        lines = [resp.fp.readline() for _ in range(3)]
        assert lines[2] == b"event: snapshot\n", lines
    finally:
        conn.close()


def test_metrics_takes_its_own_token(serve_factory, broker, queue, tmp_path):
    server = serve_factory(
        "--amqp-url", broker.amqp_url, "--queue", queue,
        "--token-file", _token_file(tmp_path, "serve.token", TOKEN),
        "--metrics-token-file", _token_file(tmp_path, "metrics.token", METRICS_TOKEN),
    )  # fmt: skip
    status, headers, _ = _request(server, "/metrics")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert _request(server, "/metrics", "wrong")[0] == 401
    status, _, body = _request(server, "/metrics", METRICS_TOKEN)
    assert status == 200 and b"# TYPE" in body
    assert _request(server, "/metrics", TOKEN)[0] == 200
    # The scrape token opens nothing else.
    assert _request(server, "/api/jobs", METRICS_TOKEN)[0] == 401


@pytest.mark.parametrize("token", [None, TOKEN])
def test_loopback_without_a_token_stays_open(serve_factory, broker, queue, token):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    assert _request(server, "/api/jobs", token)[0] == 200
    assert _request(server, "/metrics", token)[0] == 200
    assert _request(server, "/")[0] == 200
    assert _request(server, "/login")[0] == 404
