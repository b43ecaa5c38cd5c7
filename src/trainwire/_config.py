"""The training config file: reading it, checking it, and explaining what is wrong with it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ._errors import ConfigError
from ._protocol import Identity, Kind

__all__ = ["CONFIG_ENV", "Config", "load_config"]

CONFIG_ENV = "TRAINWIRE_CONFIG"

PathLike = Union[str, "os.PathLike[str]"]

_BROKER_KEYS = ("message_host", "message_port", "message_id", "message_pw", "queue_name")


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
        return self.model_write_path / "save"

    def describe_broker(self) -> str:
        """``amqp[s]://user@host:port/vhost queue=...`` with no password, for logs and errors."""
        scheme = "amqps" if self.message_tls else "amqp"
        return (
            f"{scheme}://{self.message_id}@{self.message_host}:{self.message_port}"
            f"/{self.message_vhost.lstrip('/')} queue={self.queue_name!r}"
        )


def _read(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: the training config file does not exist. "
            f"Pass the right path to trainwire.init(config=...) or set {CONFIG_ENV}."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a training config file.") from None
    except PermissionError:
        raise ConfigError(
            f"{path}: the training config file cannot be read (permission denied). "
            "Make it readable by the user that runs training."
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: the training config file cannot be read ({exc.strerror or exc})."
        ) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        data = _parse_yaml(path, text)
    else:
        data = _parse_json(path, text)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys to values at the top level, "
            f"found {type(data).__name__}."
        )
    return data


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None


def _parse_yaml(path: Path, text: str) -> Any:
    import yaml  # only YAML configs pay for the import

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{path}: is not valid YAML: {problem}{where}.") from None


class _Reader:
    """Pulls typed values out of the mapping, with errors that name file and key."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        self.data = data

    def _fail(self, key: str, expected: str, value: Any) -> ConfigError:
        shown = "<hidden>" if key == "message_pw" else f"{value!r:.60}"
        return ConfigError(
            f"{self.path}: key {key!r} must be {expected}, found {shown} "
            f"({type(value).__name__}). Fix the value in the training config file."
        )

    def missing(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.path}: key {key!r} is missing; {why}. Add it to the file.")

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
        return value

    def port(self, key: str) -> int:
        value = self.data.get(key, 5672)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise self._fail(key, "a port number between 1 and 65535", value)
        return value

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
                f"{self.path}: key {key!r} names {str(path)!r}, which is not a readable file."
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

    job_id = reader.text(
        chosen.id_field,
        required=True,
        why=f"a {chosen.value} job is identified by {chosen.id_field!r}"
        + (" (a validation job has 'validation_id' instead)" if chosen is Kind.TRAINING else ""),
    )
    project_key = reader.text("project_key", required=True, why="every message must carry it")
    write_path = reader.text(
        "model_write_path", required=True, why="graphs and undelivered messages are written there"
    )
    assert job_id is not None and project_key is not None and write_path is not None
    host = reader.text("message_host", required=False)
    values: dict[str, Any] = {}
    if host is not None:
        why = "it is needed to reach the broker named by 'message_host'"
        values = {
            "message_port": reader.port("message_port"),
            "message_id": reader.text("message_id", required=True, why=why),
            "message_pw": reader.text("message_pw", required=True, why=why),
            "queue_name": reader.text("queue_name", required=True, why="messages are sent there"),
            "message_vhost": reader.text("message_vhost", required=False) or "/",
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
