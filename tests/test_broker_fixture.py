"""The test infrastructure itself: real broker, restart/kill, proxy faults, alarms, TLS."""

from __future__ import annotations

import json
import ssl
import threading
import time

import pika
import pika.exceptions
import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from _broker import Broker, BrokerError

# BlockingConnection re-raises the last workflow error as is: not always an
# AMQPConnectionError (e.g. AMQPConnectorStackTimeout, ssl.SSLError, OSError).
CONNECT_ERRORS = (pika.exceptions.AMQPConnectionError, AMQPConnectorException, OSError)


@pytest.fixture(scope="module")
def scratch_broker():
    """A private node the fault tests below may stop, kill and restart."""
    b = Broker().start()
    yield b
    b.close()


def _wait_until(cond, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def test_publish_with_pika_then_drain_returns_parsed_bodies_and_properties(broker, queue):
    conn = pika.BlockingConnection(pika.URLParameters(broker.amqp_url))
    ch = conn.channel()
    ch.basic_publish(
        "",
        queue,
        json.dumps({"epoch": 1, "loss": 0.5}),
        pika.BasicProperties(headers={"kind": "metric"}),
    )
    ch.basic_publish("", queue, b"\xffnot json")
    conn.close()

    msgs = broker.drain(queue)

    assert [m["body"] for m in msgs] == [{"epoch": 1, "loss": 0.5}, b"\xffnot json"]
    assert msgs[0]["properties"].headers == {"kind": "metric"}
    assert broker.list_queues()[queue] == 0  # drained messages were acked
    assert broker.drain(queue) == []


def test_wait_for_accumulates_until_predicate_holds(broker, queue):
    def publish_later():
        for i in range(3):
            time.sleep(0.2)
            broker.publish(queue, {"i": i})

    t = threading.Thread(target=publish_later)
    t.start()
    msgs = broker.wait_for(queue, lambda ms: len(ms) >= 3, timeout=10)
    t.join()

    assert [m["body"] for m in msgs] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert broker.wait_for(queue, timeout=0.3) == []  # times out, returns what it has


def test_list_queues_counts_are_exact_immediately(broker, queue):
    for i in range(5):
        broker.publish(queue, {"i": i})
    assert broker.list_queues()[queue] == 5


def test_restart_keeps_durable_queue_persistent_messages_and_port(scratch_broker):
    b = scratch_broker
    port = b.port
    b.declare_queue("durable-q", durable=True)
    b.declare_queue("transient-q", durable=False)
    b.publish("durable-q", {"keep": True}, persistent=True)
    b.publish("durable-q", {"keep": False}, persistent=False)

    b.restart()

    assert b.port == port
    queues = b.list_queues()
    assert "transient-q" not in queues
    assert queues["durable-q"] == 1
    assert [m["body"] for m in b.drain("durable-q")] == [{"keep": True}]


def test_kill_makes_broker_unreachable_and_start_brings_it_back(scratch_broker):
    b = scratch_broker
    b.declare_queue("survivor")
    b.publish("survivor", {"n": 1})
    # The queue's definition reaches disk through Mnesia's log, asynchronously: on a loaded
    # machine a kill -9 right after the declare can lose it. Flush it, as time would.
    b.ctl("eval", "mnesia:sync_log().")
    conn = b.connect()

    b.kill()

    assert not b.is_running()
    with pytest.raises(pika.exceptions.AMQPError):
        conn.channel().queue_declare("survivor", passive=True)
    with pytest.raises(CONNECT_ERRORS):
        b.connect(connection_attempts=1)

    b.start()

    msgs = b.drain("survivor")
    assert [m["body"] for m in msgs] == [{"n": 1}]  # confirmed + persistent: survives a crash
    assert msgs[0]["redelivered"]  # recovered after an unclean shutdown


def test_start_fails_loudly_with_the_boot_error_when_the_node_cannot_boot():
    b = Broker(extra_config=["no_such_setting = 1"])
    try:
        with pytest.raises(BrokerError, match="no_such_setting"):
            b.start()
        assert not b.is_running()
    finally:
        b.close()


def test_proxy_drop_closes_live_pika_connection(broker, queue, proxy):
    p = proxy()
    conn = pika.BlockingConnection(broker.params(port=p.port))
    ch = conn.channel()
    ch.queue_declare(queue, passive=True)
    assert p.connections == 1

    p.drop()

    with pytest.raises(pika.exceptions.AMQPError):
        ch.basic_publish("", queue, b"lost?")
        conn.process_data_events(time_limit=1)
        ch.queue_declare(queue, passive=True)
    assert conn.is_closed
    # the proxy keeps accepting: a new connection goes through
    conn2 = pika.BlockingConnection(broker.params(port=p.port))
    conn2.channel().queue_declare(queue, passive=True)
    conn2.close()


def test_proxy_blackhole_delay_and_refuse(broker, queue, proxy):
    p = proxy()

    p.blackhole(True)  # TCP connects, but the AMQP handshake never completes
    with pytest.raises(CONNECT_ERRORS):
        pika.BlockingConnection(
            broker.params(port=p.port, connection_attempts=1, socket_timeout=1, stack_timeout=1.5)
        )
    p.blackhole(False)

    p.delay(0.1)  # each round trip now costs >= 2 x 0.1 s
    conn = pika.BlockingConnection(broker.params(port=p.port))
    ch = conn.channel()
    t0 = time.monotonic()
    ch.queue_declare(queue, passive=True)
    assert time.monotonic() - t0 >= 0.18
    conn.close()
    p.delay(0)

    p.refuse(True)
    with pytest.raises(CONNECT_ERRORS):
        pika.BlockingConnection(broker.params(port=p.port, connection_attempts=1))
    p.refuse(False)
    pika.BlockingConnection(broker.params(port=p.port)).close()


def test_memory_alarm_blocks_publishers_and_clearing_it_unblocks(broker, queue):
    conn = broker.connect()
    events = []
    conn.add_on_connection_blocked_callback(lambda _c, frame: events.append("blocked"))
    conn.add_on_connection_unblocked_callback(lambda _c, frame: events.append("unblocked"))
    ch = conn.channel()
    try:
        broker.set_memory_alarm(True)
        ch.basic_publish("", queue, b'{"during": "alarm"}')
        assert _wait_until(lambda: conn.process_data_events(0.1) or "blocked" in events)
        time.sleep(0.5)
        assert broker.list_queues()[queue] == 0  # the publish is held back by the broker
    finally:
        broker.set_memory_alarm(False)
    assert _wait_until(lambda: conn.process_data_events(0.1) or "unblocked" in events)
    conn.close()
    assert [m["body"] for m in broker.wait_for(queue)] == [{"during": "alarm"}]


def test_tls_listener_verifies_server_and_accepts_ca_signed_client_cert(broker, queue):
    ctx = ssl.create_default_context(cafile=str(broker.ca_file))  # verifies chain + hostname
    cert, key = broker.make_client_cert("trainer")
    ctx.load_cert_chain(cert, key)
    params = broker.params(port=broker.tls_port, ssl_options=pika.SSLOptions(ctx, "localhost"))
    conn = pika.BlockingConnection(params)
    conn.channel().basic_publish("", queue, b'{"tls": true}')
    conn.close()

    # no client cert is fine too (fail_if_no_peer_cert = false)
    plain_ctx = ssl.create_default_context(cafile=str(broker.ca_file))
    pika.BlockingConnection(
        broker.params(port=broker.tls_port, ssl_options=pika.SSLOptions(plain_ctx, "localhost"))
    ).close()

    # a client that does not trust our CA refuses the server
    untrusting = ssl.create_default_context(cafile=ssl.get_default_verify_paths().cafile)
    with pytest.raises(ssl.SSLCertVerificationError):  # pika re-raises the handshake error
        pika.BlockingConnection(
            broker.params(
                port=broker.tls_port,
                connection_attempts=1,
                ssl_options=pika.SSLOptions(untrusting, "localhost"),
            )
        )
    assert [m["body"] for m in broker.drain(queue)] == [{"tls": True}]


def test_user_and_vhost_helpers(broker):
    broker.add_vhost("tw-vhost")
    broker.add_user("trainer", "s3cret", vhost="tw-vhost")
    try:
        conn = broker.connect(vhost="tw-vhost", user="trainer", pw="s3cret")
        conn.channel().queue_declare("vq", durable=True)
        conn.close()
        broker.publish("vq", {"v": 1}, vhost="tw-vhost")
        assert [m["body"] for m in broker.drain("vq", vhost="tw-vhost")] == [{"v": 1}]
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            broker.connect(user="trainer", pw="wrong", connection_attempts=1)
    finally:
        broker.delete_user("trainer")
        broker.delete_vhost("tw-vhost")


def test_make_config_json_overrides_removal_and_yaml(make_config, broker, queue):
    cfg = json.loads(make_config().read_text())
    assert cfg["message_host"] == broker.host and cfg["message_port"] == broker.port
    assert cfg["queue_name"] == queue and cfg["message_id"] == cfg["message_pw"] == "guest"
    assert (cfg["project_key"], cfg["model_id"]) == ("pk-test", "model-1")

    cfg = json.loads(make_config(model_id="m2", message_pw=None, extra=1).read_text())
    assert cfg["model_id"] == "m2" and "message_pw" not in cfg and cfg["extra"] == 1

    import yaml

    path = make_config(fmt="yaml", queue_name="other")
    assert path.suffix == ".yaml" and yaml.safe_load(path.read_text())["queue_name"] == "other"
