"""Every kind of config mistake gets an error naming the file, the key and the fix."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

import trainwire
from trainwire import ConfigError, load_config
from trainwire._spec._protocol import Kind

GOOD = {
    "message_host": "127.0.0.1",
    "message_port": 5672,
    "message_id": "trainer",
    "message_pw": "s3cret-pw",
    "queue_name": "status",
    "project_key": "pk",
    "model_id": "m-1",
    "model_write_path": "/tmp/model",
}


def write(tmp_path, data, name="train_config.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def with_(**changes):
    data = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def test_good_json_config_loads_every_field(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.kind is Kind.TRAINING
    assert (config.message_host, config.message_port, config.queue_name) == (
        "127.0.0.1",
        5672,
        "status",
    )
    assert config.job_id == "m-1" and config.project_key == "pk"
    assert str(config.model_write_path) == "/tmp/model"


def test_yaml_config_loads(tmp_path):
    text = "".join(f"{k}: {json.dumps(v)}\n" for k, v in GOOD.items())
    config = load_config(write(tmp_path, text, "c.yaml"))
    assert config.message_pw == "s3cret-pw" and config.job_id == "m-1"


def test_path_comes_from_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(write(tmp_path, GOOD)))
    assert load_config().job_id == "m-1"


def test_no_path_and_no_environment_variable_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("TRAINWIRE_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TRAINWIRE_CONFIG"):
        load_config()


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.json: the training config file does not exist"):
        load_config(tmp_path / "nope.json")


def test_a_folder_instead_of_a_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_unreadable_file(tmp_path):
    path = write(tmp_path, GOOD)
    if os.geteuid() == 0:  # root reads anything: make it unreadable for real
        path.unlink()
        path.symlink_to("/proc/self/mem")
        with pytest.raises(ConfigError, match=str(path)):
            load_config(path)
    else:
        path.chmod(0)
        with pytest.raises(ConfigError, match="permission denied"):
            load_config(path)


def test_malformed_json_gives_line_and_column(tmp_path):
    path = write(tmp_path, '{"model_id": "m",\n "project_key": }')
    with pytest.raises(ConfigError, match=r"not valid JSON: .* line 2, column 17"):
        load_config(path)


def test_malformed_yaml_gives_line(tmp_path):
    path = write(tmp_path, "model_id: m\nproject_key: [unclosed\n", "c.yml")
    with pytest.raises(ConfigError, match=r"not valid YAML: .*line \d+"):
        load_config(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes(b'{"model_id": "\xff"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"expected a mapping .* found list"):
        load_config(write(tmp_path, [1, 2]))


@pytest.mark.parametrize(
    "key", ["project_key", "model_id", "model_write_path", "message_id", "message_pw", "queue_name"]
)
def test_missing_required_key_is_named(tmp_path, key):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, with_(**{key: None})))
    text = str(info.value)
    assert f"key {key!r} is missing" in text and "train_config.json" in text
    assert "Add it to the file" in text


def test_missing_identifier_mentions_validation_alternative(tmp_path):
    with pytest.raises(ConfigError, match="validation_id"):
        load_config(write(tmp_path, with_(model_id=None)))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("message_port", "abc", "a port number between 1 and 65535"),
        ("message_port", 70000, "a port number between 1 and 65535"),
        ("message_port", True, "a port number"),
        ("project_key", ["a"], "a string"),
        ("model_id", "  ", "a non-empty string"),
        ("queue_name", {"x": 1}, "a string"),
        ("message_tls", "yes", "true or false"),
    ],
)
def test_wrong_type_names_key_expected_and_found(tmp_path, key, value, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, with_(**{key: value})))
    text = str(info.value)
    assert f"key {key!r} must be {expected}" in text
    assert "found" in text and "train_config.json" in text


def test_port_given_as_digit_string_is_accepted(tmp_path):
    assert load_config(write(tmp_path, with_(message_port="5673"))).message_port == 5673


def test_password_never_appears_in_errors_or_repr(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in config.describe_broker()
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, with_(message_pw=["s3cret-pw"])))
    assert "s3cret-pw" not in str(info.value) and "<hidden>" in str(info.value)


def test_missing_ca_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'message_ca_file' names .* not a readable file"):
        load_config(write(tmp_path, with_(message_tls=True, message_ca_file="ca.pem")))


def test_validation_job_is_detected(tmp_path):
    config = load_config(write(tmp_path, with_(model_id=None, validation_id="v-1")))
    assert config.kind is Kind.VALIDATION and config.job_id == "v-1"
    assert config.identity.base(trainwire._spec._protocol.Status.DONE)["cmd"] == "validation_status"


def test_kind_argument_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="kind must be 'training' or 'validation'"):
        load_config(write(tmp_path, GOOD), kind="testing")


def test_no_message_host_means_offline_and_other_broker_keys_optional(tmp_path):
    config = load_config(
        write(tmp_path, {"project_key": "p", "model_id": "m", "model_write_path": "out"})
    )
    assert not config.has_broker
    assert config.model_write_path == tmp_path / "out"  # relative to the config's folder


def test_init_raises_config_error_before_training_starts(tmp_path):
    with pytest.raises(ConfigError, match="model_write_path"):
        trainwire.init(config=write(tmp_path, with_(model_write_path=None)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"total_steps": 0}, "total_steps must be a positive integer"),
        ({"total_steps": 1.5}, "total_steps must be a positive integer"),
        ({"max_rate": 0}, "max_rate must be a positive number or None"),
        ({"flush_timeout": -1}, "flush_timeout must be a number of seconds"),
        ({"language": "fr"}, "language must be one of"),
    ],
)
def test_bad_init_arguments_raise_at_the_call(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        trainwire.init(config=write(tmp_path, GOOD), **kwargs)


@pytest.mark.parametrize(
    ("step", "error", "match"),
    [
        (-5, ValueError, r"step must be .*0.*9223372036854775807"),
        (1.5, TypeError, "step must be an integer"),
        (True, TypeError, "step must be an integer, got bool"),
        ("3", TypeError, "step must be an integer"),
    ],
)
def test_bad_progress_arguments_raise_at_the_call(tmp_path, monkeypatch, step, error, match):
    monkeypatch.setenv("TRAINWIRE_MODE", "disabled")
    run = trainwire.init(config=write(tmp_path, GOOD), total_steps=10)
    with pytest.raises(error, match=match):
        run.progress(step)
    with pytest.raises(ValueError, match="percentage is NaN"):
        run.progress(1, percentage=float("nan"))
    run.done()


def test_progress_without_total_needs_an_explicit_percentage(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWIRE_MODE", "disabled")
    run = trainwire.init(config=write(tmp_path, GOOD))
    with pytest.raises(ValueError, match="needs total_steps"):
        run.progress(3)
    run.progress(3, percentage=250)  # clamped, not an error
    run.done()


# -- hostile files and values: a clear ConfigError, fast, never a hang or a traceback ----


def _load_within(path, seconds=10.0):
    """``load_config(path)`` in a helper thread: what it raised, or a failure if it hangs."""
    outcome: list[BaseException | None] = []

    def target():
        try:
            load_config(path)
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"load_config({path}) still running after {seconds} s"
    return outcome[0]


def test_a_config_that_links_to_dev_zero_is_refused_naming_the_file(tmp_path):
    link = tmp_path / "train_config.json"
    link.symlink_to("/dev/zero")
    error = _load_within(link)
    assert isinstance(error, ConfigError), repr(error)
    assert str(link) in str(error) and "character device" in str(error)


def test_a_config_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "train_config.json"
    os.mkfifo(fifo)
    error = _load_within(fifo)
    assert isinstance(error, ConfigError), repr(error)
    assert str(fifo) in str(error) and "FIFO" in str(error)


def test_a_huge_config_file_is_refused_before_it_is_read(tmp_path):
    path = write(tmp_path, json.dumps(with_(notes="x" * (2 << 20))))
    with pytest.raises(ConfigError, match="larger than 1024 KiB") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_billion_laughs_yaml_value_fails_fast_with_a_short_error(tmp_path):
    text = "".join(f"{k}: {json.dumps(v)}\n" for k, v in with_(model_id=None).items())
    text += 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in range(1, 9):
        text += f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]\n"
    text += "model_id: *l8\n"  # 9**9 strings once expanded
    path = write(tmp_path, text, "c.yaml")
    started = time.monotonic()
    error = _load_within(path, seconds=30)
    elapsed = time.monotonic() - started
    assert isinstance(error, ConfigError), repr(error)
    assert "'model_id'" in str(error) and len(str(error)) < 600
    assert elapsed < 3.0, f"{elapsed:.1f} s"  # was 16.7 s and 1.5 GB formatting the error


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", "[" * 100_000),
        ("deep.yaml", "model_id: " + "[" * 100_000),
        ("deep-block.yaml", "".join(" " * i + f"k{i}:\n" for i in range(500))),
    ],
    ids=["json", "yaml-flow", "yaml-block"],
)
def test_a_deeply_nested_config_is_a_config_error_not_a_traceback(tmp_path, name, text):
    error = _load_within(write(tmp_path, text, name))
    assert isinstance(error, ConfigError), repr(error)
    assert "nested too deeply" in str(error)


@pytest.mark.parametrize("name", ["c.json", "c.yaml"])
def test_a_5000_digit_integer_is_a_config_error_naming_the_file(tmp_path, name):
    text = json.dumps(with_(model_id=None))[:-1] + ', "model_id": 1' + "0" * 5000 + "}"
    path = write(tmp_path, text, name)  # JSON is YAML too
    with pytest.raises(ConfigError, match="4300 digits") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("model_id", "m\udcff", "U+DCFF at position 1"),
        ("project_key", "p\x00k", "U+0000 at position 1"),
        ("model_id", "m\x1b[2J", "U+001B"),
        ("project_key", "k" * 513, "at most 512 characters"),
        ("message_host", "host\nname", "U+000A"),
        ("queue_name", "q" * 256, "255 bytes"),
    ],
    ids=["surrogate", "nul", "escape", "long-key", "newline-host", "long-queue"],
)
def test_text_that_cannot_travel_is_refused_naming_the_key(tmp_path, key, value, problem):
    with pytest.raises(ConfigError, match=f"key '{key}'") as info:
        load_config(write(tmp_path, with_(**{key: value})))
    assert problem in str(info.value)


def test_a_port_of_5000_digits_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'message_port' must be a port number"):
        load_config(write(tmp_path, with_(message_port="1" * 5000)))


@pytest.mark.parametrize("password", ["pw\x00secret-4711", ["secret-4711"] * 3])
def test_a_bad_password_value_is_never_echoed(tmp_path, password):
    with pytest.raises(ConfigError, match="'message_pw'") as info:
        load_config(write(tmp_path, with_(message_pw=password)))
    assert "secret-4711" not in str(info.value)


def test_a_config_path_that_is_not_utf8_is_shown_readably(tmp_path):
    path = tmp_path / os.fsdecode(b"conf-\xff.json")
    with pytest.raises(ConfigError) as info:
        load_config(path)  # missing: the error names it
    assert "conf-\\xff.json" in str(info.value)
    str(info.value).encode("utf-8")  # printable anywhere
    write(tmp_path, GOOD, path.name)
    assert load_config(path).job_id == "m-1"
