"""``message_host`` names one broker or a cluster's nodes: both read as a list of endpoints."""

from __future__ import annotations

import json

import pytest

from trainwire import ConfigError, load_config
from trainwire._spec._config import Endpoint

BASE = {
    "message_port": 5672,
    "message_id": "trainer",
    "message_pw": "s3cret-pw",
    "queue_name": "status",
    "project_key": "pk",
    "model_id": "m-1",
    "model_write_path": "/tmp/model",
}


def load(tmp_path, host, name="c.json", **extra):
    data = dict(BASE, message_host=host, **extra)
    path = tmp_path / name
    if name.endswith(".yaml"):
        path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in data.items()))
    else:
        path.write_text(json.dumps(data))
    return load_config(path)


def test_a_single_host_is_one_endpoint_exactly_as_before(tmp_path):
    config = load(tmp_path, "rabbit.example", message_port=5673)
    assert config.brokers == (Endpoint("rabbit.example", 5673),)
    assert (config.message_host, config.message_port) == ("rabbit.example", 5673)


def test_a_list_keeps_file_order_and_message_port_is_the_default(tmp_path):
    config = load(tmp_path, ["n1", "n2:5673", "10.0.0.3", "[::1]:5674", "::1"], message_port=5700)
    assert config.brokers == (
        Endpoint("n1", 5700),
        Endpoint("n2", 5673),
        Endpoint("10.0.0.3", 5700),
        Endpoint("::1", 5674),
        Endpoint("::1", 5700),
    )
    assert (config.message_host, config.message_port) == ("n1", 5700)
    assert "n1:5700,n2:5673,10.0.0.3:5700,[::1]:5674,[::1]:5700" in config.describe_broker()


def test_a_yaml_list_is_read_like_a_json_array(tmp_path):
    config = load(tmp_path, ["a:1", "b:2"], name="c.yaml")
    assert config.brokers == (Endpoint("a", 1), Endpoint("b", 2))


def test_host_port_in_a_single_string_is_split(tmp_path):
    assert load(tmp_path, "n1:5999").brokers == (Endpoint("n1", 5999),)


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ([], "a host name or a list of 1 to 64"),
        (["n1", "n1:5672"], "lists the same broker twice"),
        (["n1:"], "a port between 1 and 65535"),
        (["n1:0"], "a port between 1 and 65535"),
        (["n1:70000"], "a port between 1 and 65535"),
        (["n1:http"], "a port between 1 and 65535"),
        ([5672], '"host:port" string'),
        ([["n1"]], '"host:port" string'),
        (["n 1"], '"host:port" string'),
        (["[::1"], '"host:port" string'),
        (["n1\u0000"], "U+0000"),
        ([f"n{i}" for i in range(65)], "1 to 64"),
    ],
)
def test_a_bad_broker_list_names_the_key_and_what_is_expected(tmp_path, host, says):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, host)
    text = str(caught.value)
    assert "'message_host'" in text and says in text and "c.json" in text
    assert "s3cret-pw" not in text
