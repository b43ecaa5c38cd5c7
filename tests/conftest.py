"""Shared fixtures: a real RabbitMQ broker (tests/_broker.py) and a fault-injecting
TCP proxy (tests/_proxy.py).  The broker never skips: no RabbitMQ, no green run."""

from __future__ import annotations

import itertools
import json
import sys
import uuid
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:  # _broker/_proxy importable under any --import-mode
    sys.path.insert(0, _TESTS)

from _broker import Broker  # noqa: E402
from _cluster import cluster_fixture  # noqa: E402, F401  (the session's 3-node cluster)
from _proxy import TcpProxy  # noqa: E402


@pytest.fixture(scope="session")
def broker():
    """One private RabbitMQ node for the whole session, with a TLS listener too
    (``broker.tls_port``, ``broker.ca_file``, ``broker.make_client_cert()``).
    The ``queue`` fixture starts it again if a fault test left it down."""
    b = Broker(tls=True).start()
    yield b
    b.close()


@pytest.fixture
def queue(broker):
    """A fresh durable queue with a unique name on ``broker``; deleted afterwards."""
    if not broker.is_running():  # a fault test killed/stopped it
        broker.start()
    name = broker.declare_queue(f"tw-test-{uuid.uuid4().hex[:12]}")
    yield name
    if broker.is_running():
        broker.delete_queue(name)


@pytest.fixture
def make_config(tmp_path, broker, queue):
    """``make_config(fmt="json", **overrides) -> Path``: a training config file
    pointing at ``broker``/``queue``.  Overrides replace or add keys; a value of
    None removes the key.  ``fmt="yaml"`` writes YAML."""
    counter = itertools.count(1)

    def _make(fmt: str = "json", **overrides) -> Path:
        model_dir = tmp_path / "models"
        model_dir.mkdir(exist_ok=True)
        cfg = {
            "message_host": broker.host,
            "message_port": broker.port,
            "message_id": "guest",
            "message_pw": "guest",
            "queue_name": queue,
            "project_key": "pk-test",
            "model_id": "model-1",
            "model_write_path": str(model_dir),
        }
        cfg.update(overrides)
        cfg = {k: v for k, v in cfg.items() if v is not None}
        path = tmp_path / f"config-{next(counter)}.{'yaml' if fmt == 'yaml' else 'json'}"
        if fmt == "yaml":
            import yaml

            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        elif fmt == "json":
            path.write_text(json.dumps(cfg, indent=2))
        else:
            raise ValueError(f"fmt must be 'json' or 'yaml', not {fmt!r}")
        return path

    return _make


@pytest.fixture
def proxy(request):
    """``proxy(host=None, port=None, **kw) -> TcpProxy`` in front of ``host:port``
    (default: the session broker's AMQP port); all closed at teardown."""
    proxies: list[TcpProxy] = []

    def _make(host: str | None = None, port: int | None = None, **kw) -> TcpProxy:
        if port is None:
            b = request.getfixturevalue("broker")
            host, port = host or b.host, b.port
        p = TcpProxy(host or "127.0.0.1", port, **kw)
        proxies.append(p)
        return p

    yield _make
    for p in proxies:
        p.close()


@pytest.fixture
def broker_factory():
    """``broker_factory(**kw) -> Broker``: extra started private nodes (e.g. tls=True,
    or one a fault test may kill/restart freely); all closed at teardown."""
    brokers: list[Broker] = []

    def _make(**kw) -> Broker:
        b = Broker(**kw)
        brokers.append(b)
        return b.start()

    yield _make
    for b in brokers:
        b.close()
