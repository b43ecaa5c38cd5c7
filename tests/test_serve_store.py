"""The storage interface of ``trainwire serve`` on both of its databases (a SQLite file and
a private PostgreSQL server), in-process: the spec's rules, duplicates, key rules, stale
jobs, and concurrent writers that must neither deadlock nor double-apply."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from _postgres import Postgres
from trainwire._serve._store import Delivery, open_store, settle
from trainwire._spec._protocol import (
    Identity,
    Job,
    JobState,
    Kind,
    Status,
    StatusMessage,
    done_message,
    encode,
    error_message,
    progress_message,
)

T0 = 1_700_000_000


def _id(job: str = "m1", key: str = "pk") -> Identity:
    return Identity(Kind.TRAINING, key, job)


def _progress(step: int, job: str = "m1", key: str = "pk", ts: int | None = T0, mid=None):
    body = encode(progress_message(_id(job, key), step, float(step)))
    return Delivery(body, mid or uuid.uuid4().hex, ts)


def _done(job: str = "m1", ts: int | None = T0, mid=None):
    return Delivery(encode(done_message(_id(job))), mid or uuid.uuid4().hex, ts)


def _error(text: str, job: str = "m1", ts: int | None = T0):
    return Delivery(encode(error_message(_id(job), text)), uuid.uuid4().hex, ts)


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/store.sqlite3")
    else:
        pg = request.getfixturevalue("postgres")
        s = open_store(pg.create_database(f"st_{uuid.uuid4().hex[:10]}"))
    yield s
    s.close()


# -- the rules, without a database ---------------------------------------------------------


def _msg(status: Status, step: int | None = None) -> StatusMessage:
    pct = None if step is None else float(step)
    return StatusMessage(Kind.TRAINING, "pk", "m", status, step, pct)


def test_settle_moves_forward_and_marks_older_progress_superseded():
    job = Job(Kind.TRAINING, "m")
    assert settle(job, None, _msg(Status.PROGRESS, 5), T0, 1.0) is True
    assert settle(job, T0, _msg(Status.PROGRESS, 4), T0, 2.0) is False  # same second, lower
    assert settle(job, T0, _msg(Status.PROGRESS, 9), T0 - 1, 2.0) is False  # older second
    assert (job.state, job.step, job.applied) == (JobState.RUNNING, 5, 3)
    assert settle(job, T0, _msg(Status.PROGRESS, 1), T0 + 1, 3.0) is True  # newer second
    assert job.step == 1
    assert settle(job, None, _msg(Status.PROGRESS, 0), None, 4.0) is False  # no time: by step


def test_settle_keeps_terminal_states_terminal():
    from trainwire._spec._protocol import InvalidMessage

    job = Job(Kind.TRAINING, "m")
    settle(job, None, _msg(Status.DONE), T0, 1.0)
    assert settle(job, T0, _msg(Status.PROGRESS, 3), T0, 2.0) is False  # sent before the end
    with pytest.raises(InvalidMessage) as after:
        settle(job, T0, _msg(Status.PROGRESS, 3), T0 + 1, 2.0)
    assert after.value.reason.value == "after_done"
    with pytest.raises(InvalidMessage):
        settle(job, T0, _msg(Status.ERROR), T0 + 1, 2.0)
    assert job.state is JobState.DONE


# -- the stores ----------------------------------------------------------------------------


def test_a_batch_settles_in_delivery_order_per_job(store):
    outcomes = store.receive_many(
        [_progress(1, "b"), _progress(1, "a"), _progress(2, "b"), _done("a"), _progress(3, "b")],
        time.time(),
    )
    assert [o.outcome for o in outcomes] == ["applied"] * 5
    jobs = {j.job_id: j for j in store.jobs()}
    assert (jobs["a"].state, jobs["a"].percentage) == ("done", 100.0)
    assert (jobs["b"].state, jobs["b"].step, jobs["b"].applied) == ("running", 3, 3)
    # The log keeps delivery order.
    assert [(m.job_id, m.status) for m in reversed(store.messages())] == [
        ("b", "training_ing"),
        ("a", "training_ing"),
        ("b", "training_ing"),
        ("a", "training_done"),
        ("b", "training_ing"),
    ]


def test_duplicates_within_and_across_batches_are_applied_once(store):
    first = _progress(1, mid="same")
    outcomes = store.receive_many([first, _progress(1, mid="same")], time.time())
    assert [o.outcome for o in outcomes] == ["applied", "duplicate"]
    assert store.receive(first, time.time()).outcome == "duplicate"
    assert store.job("training", "m1").applied == 1
    assert store.counts() == {"duplicate": 2}


def test_nothing_is_applied_after_an_error(store):
    store.receive(_progress(3), time.time())
    store.receive(_error("디스크가 가득 찼습니다."), time.time())
    late = store.receive_many([_progress(4, ts=T0 + 1), _done(ts=None)], time.time())
    assert [o.outcome for o in late] == ["after_error", "after_error"]
    job = store.job("training", "m1")
    assert (job.state, job.message, job.step) == ("error", "디스크가 가득 찼습니다.", 3)


def test_rejected_messages_keep_their_body_and_create_no_job(store):
    outcome = store.receive(Delivery(b'{"cmd": "training_status"}', "x", None), time.time())
    assert (outcome.outcome, outcome.rejected) == ("missing_field", True)
    assert store.jobs() == []
    [record] = store.messages(rejected_only=True)
    assert record.body == '{"cmd": "training_status"}' and record.outcome == "missing_field"


def test_project_keys_from_the_command_line_and_registered_configs(store, tmp_path):
    now = time.time()
    # No keys anywhere: every key is accepted.
    assert store.receive(_progress(1, "free", key="k-any"), now).outcome == "applied"
    # Command-line keys.
    assert store.receive(_progress(1, "x", key="k-cli"), now, frozenset({"k-cli"})).outcome == (
        "applied"
    )
    assert store.receive(_progress(1, "y", key="k-no"), now, frozenset({"k-cli"})).outcome == (
        "unknown_project_key"
    )
    # A registered job needs exactly its own key; its key is accepted for other jobs too.
    store.register(Kind.TRAINING, "reg", "k-reg", str(tmp_path), "cfg.json")
    assert store.receive(_progress(1, "reg", key="k-cli"), now).outcome == "unknown_project_key"
    assert store.receive(_progress(2, "reg", key="k-reg"), now).outcome == "applied"
    assert store.receive(_progress(1, "other", key="k-reg"), now).outcome == "applied"
    assert store.receive(_progress(2, "free", key="k-any"), now).outcome == "unknown_project_key"


def test_register_keeps_state_unless_reset(store, tmp_path):
    store.receive(_progress(5, "r"), time.time())
    job = store.register(Kind.TRAINING, "r", "pk", str(tmp_path), "c.json")
    assert (job.state, job.step, job.registered) == ("running", 5, True)
    assert job.metrics_dir == tmp_path / "save" / "metrics"
    again = store.register(Kind.TRAINING, "r", "pk", str(tmp_path), "c.json", reset=True)
    assert (again.state, again.step, again.applied) == ("waiting", None, 0)


def test_mark_stale_turns_only_silent_running_jobs_abnormal(store):
    store.receive(_progress(1, "quiet"), 1000.0)
    store.receive(_progress(1, "busy"), 1900.0)
    store.receive_many([_progress(1, "fin"), _done("fin")], 1000.0)
    assert store.mark_stale(2000.0, 600) == [("training", "quiet")]
    assert store.mark_stale(2000.0, 600) == []
    states = {j.job_id: j.state for j in store.jobs()}
    assert states == {"quiet": "abnormal", "busy": "running", "fin": "done"}
    store.receive(_progress(2, "quiet", ts=T0 + 5), 2001.0)  # it was slow, not dead
    assert store.job("training", "quiet").state == "running"


def test_concurrent_writers_never_deadlock_nor_double_apply(store, tmp_path, request):
    # Two connections (as two serve processes would have) settle batches that touch the
    # same jobs in opposite orders, and each sees every message once (a redelivery to the
    # other consumer included).
    if store.url.startswith("sqlite"):
        other = open_store(f"sqlite:///{tmp_path}/store.sqlite3")
    else:
        other = open_store(store._raw_url)
    jobs = [f"job-{i}" for i in range(6)]
    deliveries = [_progress(step, job, ts=T0 + step // 10) for step in range(1, 61) for job in jobs]
    rng = random.Random(7)
    batches = [deliveries[i : i + 24] for i in range(0, len(deliveries), 24)]
    errors: list[BaseException] = []

    def consume(target, order):
        try:
            for batch in order:
                target.receive_many(batch, time.time())
        except BaseException as exc:
            errors.append(exc)

    forward = [sorted(b, key=lambda d: d.message_id) for b in batches]
    backward = [list(reversed(b)) for b in batches]
    rng.shuffle(backward)
    threads = [
        threading.Thread(target=consume, args=(store, forward)),
        threading.Thread(target=consume, args=(other, backward)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    other.close()
    assert errors == []
    records = store.messages(limit=1000)
    applied = [m for m in records if m.outcome == "applied"]
    assert len(applied) == len(deliveries)
    assert len({m.message_id for m in applied}) == len(deliveries)
    assert sum(1 for m in records if m.outcome == "duplicate") == len(deliveries)
    for job in store.jobs():
        assert (job.state, job.step, job.applied) == ("running", 60, 60)
    if not store.url.startswith("sqlite"):  # a deadlock would be retried: count them
        pg = request.getfixturevalue("postgres")
        name = store.url.rsplit("/", 1)[1]
        sql = f"SELECT deadlocks FROM pg_stat_database WHERE datname = '{name}'"
        assert pg.psql(sql) == "0"


def test_only_rejected_messages_are_indexed_as_rejected_and_an_old_index_is_dropped(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    open_store(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)  # as the first release of schema 2 left it
    conn.execute("DROP INDEX tw_messages_rejects")
    conn.execute("CREATE INDEX tw_messages_rejected ON tw_messages (rejected, id)")
    conn.commit()
    conn.close()

    store = open_store(f"sqlite:///{path}")
    try:
        store.receive_many([_progress(1), Delivery(b"{not json", "bad-1", T0)], T0 + 1.0)
        with store.pool.read() as tx:
            indexes = {r[1] for r in tx.all("PRAGMA index_list(tw_messages)")}
            plan = tx.all(
                "EXPLAIN QUERY PLAN SELECT id FROM tw_messages WHERE rejected = 1"
                " ORDER BY id DESC LIMIT 10"
            )
            in_index = tx.all("SELECT id FROM tw_messages INDEXED BY tw_messages_rejects"
                              " WHERE rejected = 1")  # fmt: skip
        assert "tw_messages_rejected" not in indexes and "tw_messages_rejects" in indexes
        assert "tw_messages_rejects" in str(plan)
        assert len(in_index) == 1  # the malformed one; the applied one is not in it
        assert [m.outcome for m in store.messages(rejected_only=True)] == ["malformed_json"]
    finally:
        store.close()


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_only_registered_jobs_are_indexed_by_key_and_an_old_index_is_dropped(db, tmp_path, request):
    # On PostgreSQL every update of a job's row adds an entry to each index holding it:
    # the key index holds only the few registered jobs, so a progress message adds none.
    if db == "sqlite":
        url = f"sqlite:///{tmp_path}/store.sqlite3"
        names_sql = "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'tw_jobs'"
        explain = "EXPLAIN QUERY PLAN"
    else:
        url = request.getfixturevalue("postgres").create_database(f"st_{uuid.uuid4().hex[:10]}")
        names_sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tw_jobs'"
        explain = "EXPLAIN"
    store = open_store(url)
    with store.pool.write() as tx:  # as the first release of schema 2 left it
        tx.run("DROP INDEX tw_jobs_registered")
        tx.run("CREATE INDEX tw_jobs_keys ON tw_jobs (registered, project_key)")
    store.close()
    store = open_store(url)
    try:
        store.register(Kind.TRAINING, "reg", "k-reg", str(tmp_path), "c.json")
        outcomes = store.receive_many(
            [_progress(1, "reg", key="k-reg"), _progress(1, "free", key="k-other")], T0
        )
        assert [o.outcome for o in outcomes] == ["applied", "unknown_project_key"]
        with store.pool.read() as tx:
            names = {r[0]: r[1] for r in tx.all(names_sql)}
            if db == "postgresql":
                tx.run("SET enable_seqscan = off")  # a table this small is read whole
            plan = str(tx.all(f"{explain} SELECT DISTINCT project_key FROM tw_jobs"
                              " WHERE registered = 1"))  # fmt: skip
            held = tx.all("SELECT job_id FROM tw_jobs WHERE registered = 1")
        assert "tw_jobs_keys" not in names
        assert "WHERE registered = 1" in names["tw_jobs_registered"].replace("(", "").replace(
            ")", ""
        )
        assert "tw_jobs_registered" in plan, plan
        assert [r[0] for r in held] == ["reg"]
    finally:
        store.close()


def test_no_index_holds_what_every_message_changes_so_postgres_updates_stay_on_their_page(
    postgres,
):
    # A job's row is rewritten by every message. With no index on last_seen or updated_at
    # and half of each page free, PostgreSQL keeps the new version on the row's page and
    # writes no index entry (a HOT update); an index on either column makes none HOT.
    import psycopg

    url = postgres.create_database(f"st_{uuid.uuid4().hex[:10]}")
    store = open_store(url)
    for step in range(1, 11):
        for start in range(0, 200, 100):
            batch = [_progress(step, f"job-{j:03d}") for j in range(start, start + 100)]
            store.receive_many(batch, T0 + step)
    store.close()  # its sessions end: their counts reach the statistics
    with psycopg.connect(url, autocommit=True) as conn:
        indexed = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'tw_jobs'::regclass"
        ).fetchall()
        assert not {"last_seen", "updated_at"} & {r[0] for r in indexed}, indexed
        deadline = time.monotonic() + 20
        while True:
            upd, hot = conn.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'tw_jobs'"
            ).fetchone()
            if upd >= 2_000 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert upd >= 2_000 and hot >= upd * 0.6, (upd, hot)


def test_a_job_removed_after_the_server_saw_it_is_created_again_by_its_next_message(store):
    # The server skips the insert of jobs it found before; a row removed since (pruned,
    # or by another server) is inserted again, in the same batch as a job it never saw.
    store.receive_many([_progress(1, "gone"), _progress(1, "kept")], T0)
    with store.pool.write() as tx:
        tx.run("DELETE FROM tw_jobs WHERE job_id = ?", ("gone",))
    outcomes = store.receive_many(
        [_progress(2, "gone"), _progress(2, "kept"), _progress(1, "new")], T0 + 1
    )
    assert [o.outcome for o in outcomes] == ["applied"] * 3
    jobs = {j: store.job(Kind.TRAINING, j) for j in ("gone", "kept", "new")}
    assert {j: (r.state, r.step) for j, r in jobs.items() if r} == {
        "gone": (JobState.RUNNING, 2),
        "kept": (JobState.RUNNING, 2),
        "new": (JobState.RUNNING, 1),
    }


def test_postgres_inserts_a_jobs_row_once_not_once_a_batch(postgres):
    # An insert that finds the row costs a lookup a message: a job seen once is not
    # inserted again. A trigger counts the rows each insert offers.
    url = postgres.create_database(f"st_{uuid.uuid4().hex[:10]}")
    store = open_store(url)
    try:
        with store.pool.write() as tx:
            tx.run("CREATE TABLE offered (n INT)")
            tx.run(
                "CREATE FUNCTION count_offered() RETURNS trigger LANGUAGE plpgsql AS"
                " 'BEGIN INSERT INTO offered VALUES (1); RETURN NEW; END'"
            )
            tx.run(
                "CREATE TRIGGER offered BEFORE INSERT ON tw_jobs"
                " FOR EACH ROW EXECUTE FUNCTION count_offered()"
            )
        for step in range(1, 6):
            store.receive_many([_progress(step, f"job-{j}") for j in range(40)], T0 + step)
        with store.pool.read() as tx:
            offered = tx.one("SELECT count(*) FROM offered")
            steps = tx.all("SELECT DISTINCT step FROM tw_jobs")
    finally:
        store.close()
    assert offered is not None and offered[0] == 40
    assert [r[0] for r in steps] == [5]


def test_a_batch_of_hostile_text_is_stored_whole_with_nothing_unstorable(store):
    # A batch's rows skip the store's last check for NUL and lone surrogates (each string
    # is made storable where it is made): nothing is quarantined, nothing unstorable kept.
    hostile = "a\x00b\ud800c\udcff"
    raw = b'{"cmd": "training_status", \x00 "x": "\\ud800"}'
    deliveries = [
        _progress(1, job="h1", mid="id\x00nul"),
        _error(f"failed {hostile}", job="h1"),
        Delivery(raw, "raw-nul", T0),  # rejected: its body is logged
        Delivery(
            encode({**progress_message(_id("ok"), 1, 1.0), "model_id": hostile}), "bad-id", T0
        ),
        Delivery(b"\xff\xfe\x00not utf-8", "\ud800id", T0),
        _progress(2, job="h1", ts=T0 + 5),  # after the error: rejected with its detail
    ]
    outcomes = store.receive_many(deliveries, time.time())
    assert [o.outcome for o in outcomes] == [
        "applied", "applied", "malformed_json", "bad_field", "malformed_json", "after_error",
    ]  # fmt: skip
    [job] = store.jobs()
    assert job.message == "failed ab\ufffdc\\xff"  # U+DCFF: an undecodable byte 0xFF
    texts = [
        value
        for record in store.messages(limit=100)
        for value in (record.message_id, record.kind, record.job_id, record.status,
                      record.detail, record.body)
        if value is not None
    ]  # fmt: skip
    assert any("\ufffd" in t for t in texts)  # the hostile text was stored, replaced
    for text in texts:
        assert "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text), text


def test_a_big_batch_keeps_delivery_order_and_every_value_exactly(store):
    # PostgreSQL writes a batch's rows as one array per column: the log's order must still
    # be the delivery order, and an integer among float percentages must not fail the dump.
    rng = random.Random(7)
    deliveries, expected = [], {}
    for i in range(300):
        job = f"j{rng.randrange(40):02d}"
        step = expected.get(job, (0, 0.0))[0] + rng.randrange(1, 2**40)
        pct = rng.choice([50, 0, 100, 5e-324, 33.333333333333336, 1e-7, 99.99999999999999])
        body = {**progress_message(_id(job), 1, 1.0), "step": step, "percentage": pct}
        deliveries.append(Delivery(encode(body), f"m{i:03d}", T0 + i))
        expected[job] = (step, pct)
    outcomes = store.receive_many(deliveries, time.time())
    assert {o.outcome for o in outcomes} == {"applied"}
    for job, (step, pct) in expected.items():
        record = store.job("training", job)
        assert (record.step, record.percentage) == (step, pct)
        assert isinstance(record.percentage, float)
    assert [m.message_id for m in reversed(store.messages(limit=1000))] == [
        d.message_id for d in deliveries
    ]


def test_postgres_statistics_of_the_jobs_table_are_refreshed_as_created_jobs_double(postgres):
    # Without statistics PostgreSQL plans the batch's lock query as a read of every job of
    # a kind; the store analyzes the table after 200 created jobs, then at 400, 800, ...
    import psycopg

    url = postgres.create_database(f"st_{uuid.uuid4().hex[:10]}")
    store = open_store(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE tw_jobs SET (autovacuum_enabled = false)")

            def analyzed() -> int:
                row = conn.execute(
                    "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'tw_jobs'"
                ).fetchone()
                return int(row[0])

            def create(first: int, count: int) -> None:
                for start in range(first, first + count, 25):
                    jobs = range(start, min(start + 25, first + count))
                    store.receive_many([_progress(1, f"job-{j}") for j in jobs], time.time())
                    store.receive_many([_progress(2, f"job-{j}") for j in jobs], time.time())

            create(0, 199)
            assert analyzed() == 0
            create(199, 1)
            assert analyzed() == 1
            create(200, 199)
            assert analyzed() == 1
            create(399, 1)
            assert analyzed() == 2
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    "EXPLAIN SELECT job_id FROM tw_jobs WHERE kind = 'training'"
                    " AND job_id = ANY(ARRAY['job-1', 'job-2'])"
                )
            )
            # Both columns of the key find the rows (without statistics: only the kind).
            assert "Index Cond: ((kind = 'training'::text) AND (job_id = ANY" in plan, plan
    finally:
        store.close()


def test_postgres_finds_a_batchs_jobs_by_their_key_in_a_table_of_a_thousand(postgres):
    # A fleet of a thousand jobs fits in ~60 pages: with the planner's default cost of a
    # page read out of order, the lock query and the update read all of them for the 25
    # jobs of a batch. The store's sessions find them by the key's index.
    url = postgres.create_database(f"st_{uuid.uuid4().hex[:10]}")
    store = open_store(url)
    try:
        for step in range(1, 9):
            for start in range(0, 1_000, 25):
                batch = [_progress(step, f"job-{j:04d}") for j in range(start, start + 25)]
                store.receive_many(batch, T0 + step)
        ids = ", ".join(f"'job-{j:04d}'" for j in range(0, 1_000, 40))
        steps = ", ".join(["9"] * 25)
        with store.pool.write() as tx:
            tx.run("ANALYZE tw_jobs")
            lock = tx.all(
                "EXPLAIN SELECT job_id, pace FROM tw_jobs WHERE kind = 'training'"
                f' AND job_id = ANY(ARRAY[{ids}]) ORDER BY job_id COLLATE "C" FOR UPDATE'
            )
            update = tx.all(
                f"EXPLAIN UPDATE tw_jobs AS j SET step = v.step FROM unnest(ARRAY[{ids}],"
                f" ARRAY[{steps}]::bigint[]) AS v(job_id, step) WHERE j.kind = 'training'"
                " AND j.job_id = v.job_id"
            )
        for plan in ("\n".join(r[0] for r in lock), "\n".join(r[0] for r in update)):
            assert "Index Scan using tw_jobs_pkey" in plan and "Seq Scan" not in plan, plan
    finally:
        store.close()


def test_a_log_written_at_once_takes_ints_among_floats_and_strings_to_clean(store):
    # psycopg dumps a list with one Python type: PostgreSQL's column arrays are made of
    # floats whatever the caller passed (an int `now`, an int percentage), and the strings
    # of rows not marked checked are made storable first, as executemany's are.
    from trainwire._serve._store._log import LogRow, insert_log

    rows = [
        LogRow(T0, "a\x00", 1, "training", "j", "training_ing", 2**63 - 1, 50, "applied", False,
               False, None, None),
        LogRow(T0 + 0.5, "b", None, None, None, None, None, 0.25, "bad_field", True, False,
               "\ud800", "x"),
    ]  # fmt: skip
    with store.pool.write() as tx:
        insert_log(tx, store.dialect, rows)
    first, second = reversed(store.messages(limit=10))
    assert (first.message_id, first.received_at, first.step, first.percentage) == (
        "a\ufffd",
        float(T0),
        2**63 - 1,
        50.0,
    )
    assert (second.received_at, second.detail, second.percentage) == (T0 + 0.5, "\ufffd", 0.25)


def test_postgres_arrays_packed_at_once_read_back_as_every_value_went_in(postgres):
    # serve packs a batch's columns itself (psycopg's list dump is Python per value): the
    # server must read back exactly what went in, NULLs, extremes and any text included.
    import math

    from trainwire._serve._store._bulk import Column
    from trainwire._serve._store._pgarray import pack

    rng = random.Random(17)
    texts = ["", "a", "학습 완료", "\U0001f600", "x" * 5000, "'\"\\,{}", None]
    ints = [0, 1, -1, 2**63 - 1, -(2**63), 2**31, None]
    floats = [0.0, -0.0, 5e-324, 1e308, math.inf, -math.inf, math.nan, 1 / 3, 7, None]
    columns = [
        (Column.TEXT, [rng.choice(texts) for _ in range(300)]),
        (Column.TEXT, texts[:-1]),  # no NULL
        (Column.BIGINT, [rng.choice(ints) for _ in range(300)]),
        (Column.FLOAT, [rng.choice(floats) for _ in range(300)]),
        (Column.BIGINT, ints[:-1]),
        (Column.FLOAT, floats[:-1]),
    ]
    store = open_store(postgres.create_database(f"st_{uuid.uuid4().hex[:10]}"))
    try:
        with store.pool.read() as tx:
            for column, values in columns:
                sql = f"SELECT ?::{column.value}[], array_length(?::{column.value}[], 1)"
                back, length = tx.one(sql, (pack(column, values), pack(column, values)))
                assert length == len(values)
                for went, came in zip(values, back):
                    if column is Column.FLOAT and went is not None:
                        assert isinstance(came, float)
                        assert came == went or (math.isnan(went) and math.isnan(came))
                        assert math.copysign(1, came) == math.copysign(1, went)
                    else:
                        assert came == went, (column, went, came)
    finally:
        store.close()


def test_postgres_statistics_refresh_never_waits_long_behind_a_lock(postgres):
    # Another session holds the lock ANALYZE needs (as a VACUUM would): the batch that
    # crosses the threshold is stored and returns; the refresh is skipped, not waited for.
    import psycopg

    url = postgres.create_database(f"st_{uuid.uuid4().hex[:10]}")
    store = open_store(url)
    holder = psycopg.connect(url)
    try:
        for start in range(0, 175, 25):
            store.receive_many([_progress(1, f"job-{j}") for j in range(start, start + 25)], 1.0)
        holder.execute("LOCK TABLE tw_jobs IN SHARE UPDATE EXCLUSIVE MODE")
        outcomes: list = []
        batch = [_progress(1, f"job-{j}") for j in range(175, 200)]
        worker = threading.Thread(target=lambda: outcomes.extend(store.receive_many(batch, 2.0)))
        worker.start()
        worker.join(timeout=30)
        finished = not worker.is_alive()
        holder.rollback()  # lets a waiting ANALYZE go on, so that a failure cannot hang
        worker.join()
        assert finished, "the batch waited for the lock"
        assert [o.outcome for o in outcomes] == ["applied"] * 25
        assert store.job("training", "job-199").step == 1
    finally:
        holder.close()
        store.close()
