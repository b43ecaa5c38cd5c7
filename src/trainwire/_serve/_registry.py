"""Jobs registered from their training config files (``jobs add``, ``serve --jobs DIR``).

Registering a job tells the server its ``model_write_path`` (so where its graphs are) and
its ``project_key`` (which then counts as a configured key: a message for that job must
carry exactly it). A registered job shows as ``waiting`` until its first ``training_ing``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .._errors import ConfigError
from .._spec._config import load_config
from ._store import JobRecord, Store

__all__ = ["CONFIG_SUFFIXES", "JobsFolder", "register_config"]

log = logging.getLogger("trainwire.serve")

#: The files ``--jobs DIR`` reads as training configs.
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def register_config(store: Store, path: Path, *, reset: bool = False) -> JobRecord:
    """Register the job of the training config at ``path``; ``ConfigError`` if it is bad."""
    config = load_config(path)
    return store.register(
        config.kind,
        config.job_id,
        config.project_key,
        str(config.model_write_path.resolve()),
        str(config.path.resolve()),
        reset=reset,
    )


class JobsFolder:
    """Watches a folder of training configs and registers each new or changed file.

    A file that is not a valid training config is reported once (until it changes) and
    otherwise ignored. Files that disappear leave their job registered.
    """

    def __init__(
        self,
        store: Store,
        folder: Path,
        *,
        interval: float = 2.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.folder = folder
        self.interval = interval
        self.on_change = on_change
        self._seen: dict[Path, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trainwire-jobs", daemon=True)

    def scan(self) -> list[JobRecord]:
        """Register every config that is new or changed since the last scan."""
        registered: list[JobRecord] = []
        try:
            entries = sorted(self.folder.iterdir())
        except OSError as exc:
            log.warning("trainwire serve: cannot read the jobs folder %s: %s", self.folder, exc)
            return registered
        for path in entries:
            if path.suffix.lower() not in CONFIG_SUFFIXES or path.name.startswith("."):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            signature = (st.st_mtime_ns, st.st_size)
            if self._seen.get(path) == signature:
                continue
            self._seen[path] = signature
            try:
                job = register_config(self.store, path)
            except ConfigError as exc:
                log.warning("trainwire serve: skipped %s: %s", path, exc)
                continue
            log.info(
                "trainwire serve: registered %s job %r from %s", job.kind.value, job.job_id, path
            )
            registered.append(job)
        if registered and self.on_change is not None:
            self.on_change()
        return registered

    def start(self) -> None:
        """Scan now, then every ``interval`` seconds in a daemon thread."""
        self.scan()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except Exception:  # the store may be down for a moment: try again later
                log.exception("trainwire serve: scanning %s failed", self.folder)
