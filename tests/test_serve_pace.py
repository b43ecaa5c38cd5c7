"""Progress in time: a running job's ``steps_per_second`` and ``eta_seconds``, and the
timeline of its state changes.

The rate rule on its own (pauses, a resumed run, a restarted count, a backlog), the store
on both databases (an older database upgraded in place), and real ``serve`` processes fed
by real training runs at a known pace: within 10 % once warmed up.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

import pytest

import trainwire
from _postgres import Postgres
from _serve import publish_raw, serve_factory_fixture  # noqa: F401
from trainwire._serve._store import Delivery, open_store
from trainwire._serve._store._pace import Pace, Sample
from trainwire._spec._protocol import Identity, Kind, encode, progress_message

T0 = 1_700_000_000


def _feed(pace: Pace, start: float, steps: range, per_step: float, total: int) -> Pace:
    for i, step in enumerate(steps):
        at = start + i * per_step
        pace = pace.add(Sample(at, int(T0 + at), step, step / total * 100))
    return pace


# -- the rule ------------------------------------------------------------------------------


def test_no_rate_until_there_is_enough_signal_then_the_pace_and_the_time_left():
    pace = _feed(Pace(), 0.0, range(1, 13), 0.25, 1000)  # 2.75 s of samples
    assert pace.speed() is None
    pace = _feed(pace, 3.0, range(13, 40), 0.25, 1000)
    speed = pace.speed()
    assert speed is not None
    assert speed.steps_per_second == pytest.approx(4.0, rel=0.01)
    assert speed.eta_seconds == pytest.approx((1000 - 39) / 4.0, rel=0.01)


def test_a_resumed_run_counts_differences_not_its_first_step():
    pace = _feed(Pace(), 0.0, range(5000, 5100), 0.1, 10_000)
    speed = pace.speed()
    assert speed is not None and speed.steps_per_second == pytest.approx(10.0, rel=0.02)
    assert speed.eta_seconds == pytest.approx((10_000 - 5099) / 10.0, rel=0.02)


def test_a_pause_is_left_out_of_the_rate():
    pace = _feed(Pace(), 0.0, range(1, 80), 0.1, 1000)
    pace = _feed(pace, 7.9 + 30.0, range(80, 120), 0.1, 1000)  # 30 s of evaluation, then on
    speed = pace.speed()
    assert speed is not None and speed.steps_per_second == pytest.approx(10.0, rel=0.03)


def test_a_restarted_count_starts_the_samples_over():
    pace = _feed(Pace(), 0.0, range(100, 200), 0.1, 1000)
    pace = pace.add(Sample(10.0, T0 + 10, 1, 0.1))
    assert pace.samples == (Sample(10.0, T0 + 10, 1, 0.1),) and pace.speed() is None


def test_a_backlog_delivered_at_once_keeps_the_publishers_pace():
    # 60 steps made one per second, delivered within 0.6 s after serve came back.
    pace = Pace()
    for i, step in enumerate(range(1, 61)):
        pace = pace.add(Sample(100.0 + i * 0.01, T0 + i, step, step / 10))
    speed = pace.speed()
    assert speed is not None and speed.steps_per_second <= 1.1


def test_the_stored_text_round_trips_and_bad_text_is_no_pace():
    pace = _feed(Pace(), 0.0, range(1, 20), 0.5, 100)
    assert Pace.loads(pace.dumps()) == pace
    assert Pace.loads("not json") == Pace() and Pace.loads(None) == Pace()


# -- the store -----------------------------------------------------------------------------


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
        s = open_store(pg.create_database(f"pace_{uuid.uuid4().hex[:10]}"))
    yield s
    s.close()


def _progress(step: int, total: int, ts: int, job: str = "m1") -> Delivery:
    body = encode(progress_message(Identity(Kind.TRAINING, "pk", job), step, step / total * 100))
    return Delivery(body, uuid.uuid4().hex, ts)


def test_the_store_keeps_the_rate_and_the_timeline_of_a_job(store, tmp_path):
    store.register(Kind.TRAINING, "m1", "pk", str(tmp_path), "c.json", now=900.0)
    for i in range(40):  # 5 steps/s, in batches of four as a prefetching consumer takes them
        if i % 4 == 0:
            now = 1000.0 + i * 0.2
            batch = [_progress(2000 + 5 * (i + k), 4000, T0 + int((i + k) * 0.2)) for k in range(4)]
            store.receive_many(batch, now)
    job = store.job("training", "m1")
    assert job.steps_per_second == pytest.approx(25.0, rel=0.1)
    assert job.eta_seconds == pytest.approx((4000 - job.step) / 25.0, rel=0.1)
    assert store.mark_stale(2000.0, 600) == [("training", "m1")]
    store.receive(_progress(2300, 4000, T0 + 1000), 2001.0)
    timeline = [(t.state.value, t.at) for t in store.timeline("training", "m1")]
    assert timeline == [
        ("waiting", 900.0),
        ("running", 1000.0),
        ("abnormal", 2000.0),
        ("running", 2001.0),
    ]


def test_a_database_of_schema_1_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the tables as trainwire 0.1's first serve made them
        db.executescript(
            "CREATE TABLE tw_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO tw_meta VALUES ('schema', '1');"
            "CREATE TABLE tw_jobs (kind TEXT NOT NULL, job_id TEXT NOT NULL, state TEXT NOT NULL,"
            " step BIGINT, percentage DOUBLE PRECISION, message TEXT, last_seen DOUBLE PRECISION,"
            " ts BIGINT, applied BIGINT NOT NULL DEFAULT 0, created_at DOUBLE PRECISION NOT NULL,"
            " updated_at DOUBLE PRECISION NOT NULL, registered INTEGER NOT NULL DEFAULT 0,"
            " project_key TEXT, model_write_path TEXT, config_path TEXT,"
            " PRIMARY KEY (kind, job_id));"
            "INSERT INTO tw_jobs (kind, job_id, state, step, percentage, last_seen, applied,"
            " created_at, updated_at) VALUES ('training', 'old', 'running', 7, 7.0, 5, 1, 5, 5);"
        )
    store = open_store(f"sqlite:///{path}")
    try:
        job = store.job("training", "old")
        assert (job.state, job.step, job.steps_per_second) == ("running", 7, None)
        store.receive(_progress(8, 100, T0), 10.0)
        assert store.job("training", "m1").state == "running"
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM tw_meta").fetchall() == [("2",)]


# -- real serve processes, real trainings ------------------------------------------------


class Training(threading.Thread):
    """A training at a steady pace: ``progress(step)`` then a fixed sleep, in a thread;
    records when each step was reported, so the test knows the true pace."""

    def __init__(self, config, first: int, total: int, per_step: float) -> None:
        super().__init__(daemon=True)
        self.run_ = trainwire.init(config, total_steps=total)
        self.first, self.total, self.per_step = first, total, per_step
        self.reported: list[tuple[float, int]] = []
        self.pause_at: int | None = None
        self.pause_for = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        step = self.first
        while not self.stop.is_set() and step < self.total:
            self.run_.progress(step)
            self.reported.append((time.monotonic(), step))
            if step == self.pause_at:
                self.stop.wait(self.pause_for)
            step += 1
            time.sleep(self.per_step)  # the training's own pace, not a synchronisation

    def pace(self, since: float) -> float:
        """Steps per second while training (pauses left out) after ``since``."""
        recent = [(t, s) for t, s in self.reported if t >= since]
        gaps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(recent, recent[1:])]
        moving = [(dt, ds) for dt, ds in gaps if dt < 1.0]
        return sum(ds for _, ds in moving) / sum(dt for dt, _ in moving)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)
        self.run_.done()


def _warmed_rate(server, job_id: str, training: Training, after: float) -> dict:
    """The job once its rate is known, at least ``after`` s after the training started."""
    started = training.reported[0][0] if training.reported else time.monotonic()

    def check():
        job = server.job(job_id)
        if job and job["steps_per_second"] is not None and time.monotonic() - started > after:
            return job
        return None

    return server.wait_until(f"a rate for {job_id}", check, timeout=60)


@pytest.mark.parametrize(("first", "total"), [(1, 2000), (5000, 10_000)], ids=["new", "resumed"])
def test_rate_and_time_left_of_a_real_training_within_10_percent(
    serve_factory, broker, queue, make_config, first, total
):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    for step in (first, first + 1):  # two messages are not enough to tell a pace
        body = progress_message(Identity(Kind.TRAINING, "pk-test", "two"), step, 1.0)
        publish_raw(broker, queue, encode(body), message_id=uuid.uuid4().hex, timestamp=T0)
    two = server.wait_job("two", state="running", step=first + 1)
    assert (two["steps_per_second"], two["eta_seconds"], two["eta_at"]) == (None, None, None)
    config = make_config(model_id=f"pace-{first}")
    training = Training(config, first, total, per_step=0.04)
    training.start()
    try:
        job = _warmed_rate(server, f"pace-{first}", training, after=6.0)
        true_pace = training.pace(since=time.monotonic() - 20)
        assert job["steps_per_second"] == pytest.approx(true_pace, rel=0.1)
        left = (total - job["step"]) / true_pace
        assert job["eta_seconds"] == pytest.approx(left, rel=0.1)
        assert job["eta_at"] is not None
    finally:
        training.finish()
    done = server.wait_job(f"pace-{first}", state="done")
    assert (done["steps_per_second"], done["eta_seconds"]) == (None, None)
    timeline = server.get(f"/api/jobs/training/pace-{first}")["timeline"]
    assert [t["state"] for t in timeline] == ["running", "done"]


def test_a_pause_does_not_drag_the_rate_down(serve_factory, broker, queue, make_config):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    training = Training(make_config(model_id="pausing"), 1, 5000, per_step=0.04)
    training.pause_at, training.pause_for = 100, 6.0
    training.start()
    try:
        server.wait_until("the pause", lambda: len(training.reported) > 102)
        resumed = training.reported[101][0]
        # Three samples after the pause: without leaving it out, the rate would be ~30 % low.
        server.wait_until("time after the pause", lambda: time.monotonic() - resumed > 4)
        job = server.job("pausing")
        assert job["steps_per_second"] == pytest.approx(training.pace(since=0), rel=0.1)
    finally:
        training.finish()


def test_the_text_written_is_the_samples_json_through_replacements_restarts_and_the_cap():
    pace = Pace()
    at = 0.0
    for i, step in enumerate([*range(1, 40), *range(1, 10), *range(10, 200)]):
        at += 0.3 if i % 4 else 1.7  # some samples replace the newest, some are kept
        pace = pace.add(Sample(at, None if i % 7 == 0 else int(T0 + at), step, step / 2))
        # dumps() joins each sample's text, kept beside it: never out of step with them
        assert json.loads(pace.dumps()) == json.loads(Pace(pace.samples).dumps())
        assert json.loads(pace.dumps()) == [list(s) for s in pace.samples]
    assert len(pace.samples) == 31
    assert Pace.loads(pace.dumps()) == pace


def test_a_pace_read_back_from_any_json_text_writes_the_same_samples():
    from trainwire._serve._store import _pace

    written = _feed(Pace(), 0.0, range(1, 60), 1.5, 100).dumps()
    spaced = json.dumps(json.loads(written))  # the same samples, not as trainwire spaces them
    for text in (written, spaced, f" {written} ", "[[1.0, null, 3, 4.0]]"):
        _pace._RECENT._paces.clear()  # read from the text itself, not the paces written lately
        pace = Pace.loads(text)
        later = pace.add(Sample(1e6, None, 10**6, 99.0))
        assert json.loads(later.dumps()) == [*json.loads(text)[-30:], [1e6, None, 10**6, 99.0]]


def test_the_rate_kept_message_by_message_equals_the_rate_worked_out_afresh():
    import random

    rng = random.Random(7)
    pace, at, step = Pace(), 0.0, 0
    rates = 0
    for _ in range(3000):
        at += rng.choice([0.05, 0.3, 0.9, 1.2, 3.0, 15.0])  # replaced, kept, pauses
        step = step + rng.randrange(0, 50) if rng.random() > 0.01 else rng.randrange(0, 10)
        published = None if rng.random() < 0.1 else int(T0 + at)
        pace = pace.add(Sample(at, published, step, min(100.0, step / 100)))
        afresh = Pace(pace.samples)  # no intervals kept: every one worked out again
        assert pace.speed() == afresh.speed()
        rates += pace.speed() is not None
    assert rates > 1000  # the comparison covered real rates, not only "not enough signal"


def test_a_sample_text_is_what_the_json_encoder_writes():
    import random

    from trainwire._serve._store._pace import _text

    rng = random.Random(11)
    floats = [0.0, -0.0, 1e-310, 5e-324, 1e16, 1.7976931348623157e308, 0.1, 100.0, 1e22]
    cases = [
        Sample(rng.choice([*floats, rng.uniform(0, 2e9)]), rng.choice([None, T0, 0, -5, 2**63]),
               rng.choice([0, 1, 2**63 - 1, rng.randrange(10**9)]),
               rng.choice([*floats, rng.uniform(0, 100)]))
        for _ in range(2000)
    ]  # fmt: skip
    # Whatever a stored text held: the encoder's own spelling (Infinity, NaN, true).
    cases += [Sample(float("inf"), None, 1, 2.0), Sample(1.0, None, 1, float("nan"))]
    cases += [Sample(1.0, True, 1, 2.0), Sample(1, None, True, 2), Sample(1.0, "x", 1, 2.0)]
    for sample in cases:
        assert _text(sample) == json.dumps(list(sample), separators=(",", ":")), sample


def test_the_rate_is_the_rule_worked_out_interval_by_interval():
    import random

    from trainwire._serve._store._pace import MIN_INTERVALS, MIN_SPAN, PAUSE_FACTOR, PAUSE_MIN

    def by_hand(pace: Pace) -> tuple[float, float | None] | None:
        spans = list(zip(pace.samples, pace.samples[1:]))
        if len(spans) < MIN_INTERVALS:
            return None

        def seconds(a: Sample, b: Sample) -> float:
            if a.published is None or b.published is None:
                return b.at - a.at
            return max(b.at - a.at, b.published - a.published - 1.0)

        ordered = sorted(seconds(a, b) for a, b in spans)
        middle = len(ordered) // 2
        median = (
            ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        )
        limit = max(PAUSE_MIN, PAUSE_FACTOR * median)
        kept = [(a, b) for a, b in spans if seconds(a, b) <= limit]
        received = sum(b.at - a.at for a, b in kept)
        if all(a.published is not None and b.published is not None for a, b in kept):
            span = max(received, sum(b.published - a.published for a, b in kept) - 1.0)
        else:
            span = max(received, sum(seconds(a, b) for a, b in kept))
        if len(kept) < MIN_INTERVALS or span < MIN_SPAN:
            return None
        percent = sum(b.percentage - a.percentage for a, b in kept)
        left = 100.0 - pace.samples[-1].percentage
        return sum(b.step - a.step for a, b in kept) / span, (
            left / (percent / span) if percent > 0 else None
        )

    rng = random.Random(3)
    pace, at, step, rates, paused = Pace(), 0.0, 0, 0, 0
    for _ in range(3000):
        gap = rng.choice([0.05, 0.3, 0.9, 1.2, 3.0, 15.0])
        at += gap
        step = step + rng.randrange(0, 50) if rng.random() > 0.01 else rng.randrange(0, 10)
        published = None if rng.random() < 0.1 else int(T0 + at)
        pace = pace.add(Sample(at, published, step, min(100.0, step / 100)))
        speed, expected = pace.speed(), by_hand(pace)
        if expected is None:
            assert speed is None
            continue
        rates += 1
        paused += gap == 15.0
        assert speed is not None
        assert speed.steps_per_second == pytest.approx(expected[0], rel=1e-9)
        assert speed.eta_seconds == (
            None if expected[1] is None else pytest.approx(expected[1], rel=1e-9)
        )
    assert rates > 1000 and paused > 50


def test_the_paces_a_fleet_of_a_thousand_jobs_wrote_in_turn_are_read_back_unparsed():
    # Each batch reads back the pace text the batch before it wrote for the same job: for
    # 1,000 jobs sending in turn, a job's newest text was written 1,000 texts ago.
    now = time.time()
    written = []
    for job in range(1_000):
        pace = Pace().add(Sample(now, None, 1, 1.0)).add(Sample(now + 2.0, None, 2 + job, 2.0))
        written.append((pace.dumps(), pace))
    for text, pace in written:
        assert Pace.loads(text) is pace
