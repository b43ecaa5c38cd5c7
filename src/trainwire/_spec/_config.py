"""The training config file: reading it, checking it, and explaining what is wrong with it."""

from __future__ import annotations

import json
import os
import reprlib
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Union

from .._errors import ConfigError
from ._layout import metrics_dir, save_dir
from ._protocol import Identity, Kind, clean_text, find_unsafe, identity_problem

__all__ = ["CONFIG_ENV", "Config", "Endpoint", "load_config"]

CONFIG_ENV = "TRAINWIRE_CONFIG"

PathLike = Union[str, "os.PathLike[str]"]

#: A training config is a few lines; anything bigger is not one (or is /dev/zero).
MAX_CONFIG_BYTES = 1 << 20
#: How deep a YAML config may nest (a training config is a flat mapping).
MAX_NESTING = 32
#: How many broker nodes ``message_host`` may list (a cluster is a handful of nodes).
MAX_BROKERS = 64
#: AMQP sends queue and virtual host names as "short strings": at most 255 bytes.
_AMQP_SHORT_STR = 255
#: What an error message shows of a wrong value: bounded however big or deep the value is
#: (a YAML "billion laughs" expands to gigabytes when fully printed).
_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxlist, _PREVIEW.maxdict, _PREVIEW.maxstring = 2, 4, 4, 60
_PREVIEW.maxother = 60


class Endpoint(NamedTuple):
    """One broker node: a host name or address and its AMQP port."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Config:
    """A checked training config. ``message_pw`` never appears in its repr."""

    path: Path
    kind: Kind
    project_key: str
    job_id: str
    model_write_path: Path
    message_host: str | None = None
    message_port: int = 5672
    message_id: str = "guest"
    message_pw: str = field(default="", repr=False)
    queue_name: str = ""
    message_vhost: str = "/"
    message_tls: bool = False
    message_ca_file: Path | None = None
    message_cert_file: Path | None = None
    message_key_file: Path | None = None
    #: Every broker node, in file order; the first is ``message_host:message_port``.
    #: Empty when the config names no broker.
    brokers: tuple[Endpoint, ...] = ()

    @property
    def identity(self) -> Identity:
        """The identity every status message of this job carries."""
        return Identity(self.kind, self.project_key, self.job_id)

    @property
    def has_broker(self) -> bool:
        """False when the file names no ``message_host``: the offline default applies."""
        return self.message_host is not None

    @property
    def save_dir(self) -> Path:
        """``<model_write_path>/save``: where the metrics and trainwire's spools live."""
        return save_dir(self.model_write_path)

    @property
    def metrics_dir(self) -> Path:
        """``<model_write_path>/save/metrics``: the graph files."""
        return metrics_dir(self.model_write_path)

    def describe_broker(self) -> str:
        """``amqp[s]://user@host:port/vhost queue=...`` with no password, for logs and errors."""
        scheme = "amqps" if self.message_tls else "amqp"
        nodes = ",".join(map(str, self.brokers)) or f"{self.message_host}:{self.message_port}"
        return (
            f"{scheme}://{self.message_id}@{nodes}"
            f"/{self.message_vhost.lstrip('/')} queue={self.queue_name!r}"
        )


def _shown(path: Path) -> str:
    """The path for an error message: printable even when the name is not valid UTF-8."""
    return clean_text(str(path))


def _kind_of_file(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def _check_regular(path: Path, mode: int, size: int) -> None:
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{_shown(path)}: is a folder, expected a training config file.")
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"{_shown(path)}: is {_kind_of_file(mode)}, not a regular file: "
            "point it at the training config file itself."
        )
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{_shown(path)}: is larger than {MAX_CONFIG_BYTES // 1024} KiB; a training config "
            "file holds a few keys. Check that this is the right file."
        )


def _read_bytes(path: Path) -> bytes:
    # Look before opening (opening a device can act on it), open without blocking (a FIFO
    # with no writer would wait forever), check again what was opened, read a bounded amount.
    _check_regular(path, os.stat(path).st_mode, 0)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        _check_regular(path, info.st_mode, info.st_size)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    _check_regular(path, stat.S_IFREG, size)  # it grew while we read
    return b"".join(chunks)


def _read_text(path: Path) -> str:
    try:
        raw = _read_bytes(path)
    except ConfigError:  # a ValueError too: not the NUL case below
        raise
    except FileNotFoundError:
        raise ConfigError(
            f"{_shown(path)}: the training config file does not exist. "
            f"Pass the right path to trainwire.init(config=...) or set {CONFIG_ENV}."
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{_shown(path)}: the training config file cannot be read (permission denied). "
            "Make it readable by the user that runs training."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{_shown(path)}: the training config file cannot be read ({exc.strerror or exc})."
        ) from None
    except ValueError:  # a NUL in the path
        raise ConfigError(
            f"{_shown(path)}: is not a valid file name (it contains a NUL character)."
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{_shown(path)}: is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None


def _read(path: Path) -> Mapping[str, Any]:
    text = _read_text(path)
    yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        data = _parse_yaml(path, text) if yaml else _parse_json(path, text)
    except ConfigError:  # a ValueError too: already says what is wrong
        raise
    except RecursionError:
        raise ConfigError(
            f"{_shown(path)}: is nested too deeply to be a training config "
            "(a training config is a flat mapping of keys to values)."
        ) from None
    except ValueError as exc:  # an integer of over 4300 digits, a YAML date like 2024-13-45
        reason = str(exc).split(";")[0][:160]
        raise ConfigError(
            f"{_shown(path)}: holds a value that cannot be read ({reason}). "
            "Fix the value in the training config file."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{_shown(path)}: expected a mapping of keys to values at the top level, "
            f"found {type(data).__name__}."
        )
    return data


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{_shown(path)}: is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}."
        ) from None


def _parse_yaml(path: Path, text: str) -> Any:
    import yaml  # only YAML configs pay for the import

    class Loader(yaml.SafeLoader):
        """Refuses nesting beyond MAX_NESTING early: PyYAML recurses per level, and letting
        it run into RecursionError takes seconds."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    raise RecursionError  # reported like JSON's own nesting limit
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{_shown(path)}: is not valid YAML: {problem}{where}.") from None


def _preview(value: Any) -> str:
    try:
        return _PREVIEW.repr(value)
    except Exception:  # e.g. an int too long to print
        return f"a {type(value).__name__}"


class _Reader:
    """Pulls typed values out of the mapping, with errors that name file and key."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        self.data = data

    def _fail(self, key: str, expected: str, value: Any) -> ConfigError:
        shown = "<hidden>" if key == "message_pw" else _preview(value)
        return ConfigError(
            f"{_shown(self.path)}: key {key!r} must be {expected}, found {shown} "
            f"({type(value).__name__}). Fix the value in the training config file."
        )

    def _bad_text(self, key: str, problem: str) -> ConfigError:
        return ConfigError(
            f"{_shown(self.path)}: key {key!r} {problem}. Fix the value in the training "
            "config file."
        )

    def missing(self, key: str, why: str) -> ConfigError:
        return ConfigError(
            f"{_shown(self.path)}: key {key!r} is missing; {why}. Add it to the file."
        )

    def text(self, key: str, *, required: bool, why: str = "") -> str | None:
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.missing(key, why or "it is required")
            return None
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self._fail(key, "a string", value)
        value = str(value)
        if not value.strip():
            raise self._fail(key, "a non-empty string", value)
        position = find_unsafe(value)
        if position >= 0:
            raise self._bad_text(
                key,
                "contains a control character or an invalid code point "
                f"(U+{ord(value[position]):04X} at position {position})",
            )
        return value

    def identifier(self, key: str, why: str) -> str:
        """A ``project_key``/``model_id``/``validation_id``: what the protocol accepts."""
        value = self.text(key, required=True, why=why)
        assert value is not None
        problem = identity_problem(value)
        if problem is not None:
            raise self._bad_text(key, problem)
        return value

    def short_name(self, key: str, *, required: bool, why: str = "") -> str | None:
        """A queue or virtual host name: AMQP carries at most 255 bytes of it."""
        value = self.text(key, required=required, why=why)
        if value is not None and len(value.encode()) > _AMQP_SHORT_STR:
            raise self._bad_text(
                key, f"is longer than AMQP allows ({_AMQP_SHORT_STR} bytes of UTF-8)"
            )
        return value

    def port(self, key: str) -> int:
        value = self.data.get(key, 5672)
        digits = value.strip() if isinstance(value, str) else ""
        if digits.isascii() and digits.isdigit() and len(digits) <= 5:
            value = int(digits)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise self._fail(key, "a port number between 1 and 65535", value)
        return value

    def endpoints(self, key: str, port: int) -> tuple[Endpoint, ...]:
        """``message_host``: one host name, or a list of ``"host"``/``"host:port"`` entries."""
        value = self.data[key]
        if not isinstance(value, list):
            self.text(key, required=True)  # a number or a mapping fails as "a string"
            return (self._entry(key, str(value), port),)
        if not value or len(value) > MAX_BROKERS:
            raise self._fail(key, f"a host name or a list of 1 to {MAX_BROKERS} of them", value)
        found = tuple(self._entry(key, item, port) for item in value)
        if len(set(found)) != len(found):
            raise self._bad_text(key, "lists the same broker twice")
        return found

    def _entry(self, key: str, item: Any, port: int) -> Endpoint:
        expected = 'a "host" or "host:port" string, or a list of them'
        if not isinstance(item, str) or not item.strip():
            raise self._fail(key, expected, item)
        _Reader(self.path, {key: item}).text(key, required=True)
        tail: str | None
        host, sep, tail = item.strip().rpartition(":")
        if not sep or (":" in host and not host.startswith("[")):
            host, tail = item.strip(), None  # a plain name, or an IPv6 address without a port
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if tail is not None:
            digits = tail if tail.isascii() and tail.isdigit() and len(tail) <= 5 else "0"
            port = int(digits)
            if not 0 < port < 65536:
                raise self._fail(key, f"{expected} (a port between 1 and 65535)", item)
        if not host or any(c in host for c in "[]/ "):
            raise self._fail(key, expected, item)
        return Endpoint(host, port)

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def file(self, key: str) -> Path | None:
        value = self.text(key, required=False)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.path.parent / path
        if not path.is_file():
            raise ConfigError(
                f"{_shown(self.path)}: key {key!r} names {str(path)!r}, which is not a "
                "readable file."
            )
        return path


def _resolve_path(path: PathLike | None) -> Path:
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if not env:
            raise ConfigError(
                "no training config file given: pass trainwire.init(config='train_config.json') "
                f"or set the environment variable {CONFIG_ENV} to its path."
            )
        path = env
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"config must be a path, got {type(path).__name__}")
    return Path(path).expanduser()


def load_config(path: PathLike | None = None, *, kind: str | None = None) -> Config:
    """Read and check a training config (JSON, or YAML by ``.yaml``/``.yml`` suffix).

    ``path`` defaults to ``$TRAINWIRE_CONFIG``. ``kind`` ("training" or "validation")
    overrides the detection: a file with ``validation_id`` and no ``model_id`` is a
    validation job. Every problem raises :class:`ConfigError` naming the file and key.
    """
    resolved = _resolve_path(path)
    data = _read(resolved)
    reader = _Reader(resolved, data)

    if kind is None:
        chosen = (
            Kind.VALIDATION if "validation_id" in data and "model_id" not in data else Kind.TRAINING
        )
    else:
        try:
            chosen = Kind(kind)
        except ValueError:
            raise ValueError(f"kind must be 'training' or 'validation', got {kind!r}") from None

    job_id = reader.identifier(
        chosen.id_field,
        why=f"a {chosen.value} job is identified by {chosen.id_field!r}"
        + (" (a validation job has 'validation_id' instead)" if chosen is Kind.TRAINING else ""),
    )
    project_key = reader.identifier("project_key", why="every message must carry it")
    write_path = reader.text(
        "model_write_path", required=True, why="graphs and undelivered messages are written there"
    )
    assert write_path is not None
    values: dict[str, Any] = {}
    host: str | None = None
    if data.get("message_host") is not None:
        brokers = reader.endpoints("message_host", reader.port("message_port"))
        host = brokers[0].host
        why = "it is needed to reach the broker named by 'message_host'"
        values = {
            "brokers": brokers,
            "message_port": brokers[0].port,
            "message_id": reader.text("message_id", required=True, why=why),
            "message_pw": reader.text("message_pw", required=True, why=why),
            "queue_name": reader.short_name(
                "queue_name", required=True, why="messages are sent there"
            ),
            "message_vhost": reader.short_name("message_vhost", required=False) or "/",
            "message_tls": reader.flag("message_tls"),
            "message_ca_file": reader.file("message_ca_file"),
            "message_cert_file": reader.file("message_cert_file"),
            "message_key_file": reader.file("message_key_file"),
        }
    write = Path(write_path).expanduser()
    if not write.is_absolute():
        write = resolved.parent / write
    return Config(
        path=resolved,
        kind=chosen,
        project_key=project_key,
        job_id=job_id,
        model_write_path=write,
        message_host=host,
        **values,
    )
