"""The tables of ``trainwire serve`` and their version, created on first use."""

from __future__ import annotations

from ._records import StoreError
from ._tx import Tx

__all__ = ["SCHEMA_VERSION", "create_schema"]

SCHEMA_VERSION = "2"


def _statements(serial: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS tw_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS tw_jobs ("
        " kind TEXT NOT NULL, job_id TEXT NOT NULL, state TEXT NOT NULL,"
        " step BIGINT, percentage DOUBLE PRECISION, message TEXT,"
        " last_seen DOUBLE PRECISION, ts BIGINT, applied BIGINT NOT NULL DEFAULT 0,"
        " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,"
        " registered INTEGER NOT NULL DEFAULT 0, project_key TEXT,"
        " model_write_path TEXT, config_path TEXT, pace TEXT, steps_per_second DOUBLE PRECISION,"
        " eta_seconds DOUBLE PRECISION, PRIMARY KEY (kind, job_id))",
        # Only the registered jobs (a few): on PostgreSQL every update of a job's row adds
        # an entry to each index that holds the row, and a job that is not registered is
        # in none here. (Schema 2 as first released indexed every job; that is dropped.)
        "DROP INDEX IF EXISTS tw_jobs_keys",
        "CREATE INDEX IF NOT EXISTS tw_jobs_registered ON tw_jobs (project_key)"
        " WHERE registered = 1",
        # No index holds a column that every message changes (last_seen, updated_at): on
        # PostgreSQL an update then stays on its page (a HOT update) and writes no index
        # entry. The stale check reads the running jobs; the live page's change query
        # reads the table. (Schema 2 as first released indexed both; they are dropped.)
        "DROP INDEX IF EXISTS tw_jobs_state",
        "DROP INDEX IF EXISTS tw_jobs_updated",
        "CREATE INDEX IF NOT EXISTS tw_jobs_states ON tw_jobs (state)",
        "CREATE INDEX IF NOT EXISTS tw_jobs_created ON tw_jobs (created_at, kind, job_id)",
        "CREATE TABLE IF NOT EXISTS tw_seen ("
        " message_id TEXT PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS tw_messages (id {serial} PRIMARY KEY,"
        " received_at DOUBLE PRECISION NOT NULL, message_id TEXT, published_ts BIGINT,"
        " kind TEXT, job_id TEXT, status TEXT, step BIGINT, percentage DOUBLE PRECISION,"
        " outcome TEXT NOT NULL, rejected INTEGER NOT NULL,"
        " superseded INTEGER NOT NULL DEFAULT 0, detail TEXT, body TEXT)",
        "CREATE INDEX IF NOT EXISTS tw_messages_job ON tw_messages (kind, job_id, id)",
        # Only the rejected messages: an applied one (nearly all) updates no such index.
        # (Schema 2 as first released indexed every message; that index is dropped.)
        "DROP INDEX IF EXISTS tw_messages_rejected",
        "CREATE INDEX IF NOT EXISTS tw_messages_rejects ON tw_messages (id) WHERE rejected = 1",
        f"CREATE TABLE IF NOT EXISTS tw_transitions (id {serial} PRIMARY KEY,"
        " kind TEXT NOT NULL, job_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,"
        " state TEXT NOT NULL, step BIGINT, percentage DOUBLE PRECISION)",
        "CREATE INDEX IF NOT EXISTS tw_transitions_job ON tw_transitions (kind, job_id, id)",
    ]


#: What turns a database of each older version into the next one.
_UPGRADES = {
    "1": [
        "ALTER TABLE tw_jobs ADD COLUMN pace TEXT",
        "ALTER TABLE tw_jobs ADD COLUMN steps_per_second DOUBLE PRECISION",
        "ALTER TABLE tw_jobs ADD COLUMN eta_seconds DOUBLE PRECISION",
    ],
}


def create_schema(tx: Tx, serial: str, url: str) -> None:
    """Create what is missing and upgrade an older database; :class:`StoreError` for a
    database of a newer version."""
    tx.run(_statements(serial)[0])
    row = tx.one("SELECT value FROM tw_meta WHERE key = ?", ("schema",))
    version = None if row is None else str(row[0])
    while version in _UPGRADES:
        for sql in _UPGRADES[version]:
            tx.run(sql)
        version = str(int(version) + 1)
        tx.run("UPDATE tw_meta SET value = ? WHERE key = ?", (version, "schema"))
    for sql in _statements(serial)[1:]:
        tx.run(sql)
    if version is None:
        tx.run("INSERT INTO tw_meta (key, value) VALUES (?, ?)", ("schema", SCHEMA_VERSION))
    elif version != SCHEMA_VERSION:
        raise StoreError(
            f"{url}: the database has trainwire serve schema {version}, this version "
            f"uses {SCHEMA_VERSION}: use another --db, or the trainwire that made it"
        )
