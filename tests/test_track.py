"""trainwire.track: a tqdm-like wrapper reporting each finished iteration as a step."""

from __future__ import annotations

import pytest

import trainwire
from _frameworks import (
    DONE,
    ERROR,
    assert_run,
    messages,
    progress,
    run_python,
    terminals,
)


def test_track_reports_every_finished_iteration_and_done_when_the_loop_is_exhausted(
    broker, queue, make_config
):
    config = make_config()
    seen = [item for item in trainwire.track("abcdefghij", config=config, max_rate=None)]

    assert seen == list("abcdefghij")
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (s, s * 10.0) for s in range(1, 11)
    ]


def test_track_into_a_given_run_uses_its_total_and_initial_and_leaves_the_end_to_it(
    broker, queue, make_config
):
    run = trainwire.init(make_config(), total_steps=10, max_rate=None)
    tracker = trainwire.track(range(5), run=run, initial=5)
    assert len(tracker) == 5 and tracker.run is run
    for _ in tracker:
        pass

    assert run.status == "running" and tracker.n == 10
    run.done()
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (6, 60.0), (7, 70.0), (8, 80.0), (9, 90.0), (10, 100.0)
    ]  # fmt: skip


def test_track_of_an_unsized_iterable_counts_steps_at_zero_percent(broker, queue, make_config):
    for _ in trainwire.track((i for i in range(3)), config=make_config(), max_rate=None):
        pass

    seq = messages(broker, queue)
    assert_run(seq, DONE, complete=False)
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [(1, 0), (2, 0), (3, 0)]


def test_track_total_beyond_len_keeps_the_percentage_within_100(broker, queue, make_config):
    for _ in trainwire.track(range(4), total=2, config=make_config(), max_rate=None):
        pass

    seq = messages(broker, queue)
    assert [b["percentage"] for b in progress(seq)] == [50, 100, 100, 100]


def test_track_loop_that_raises_ends_with_one_training_error(broker, queue, make_config):
    config = make_config()
    result = run_python(
        """
        import trainwire
        for step in trainwire.track(range(10), max_rate=None, language="en"):
            if step == 4:
                raise KeyError("image_0004.png")
        """,
        config,
    )
    assert result.returncode == 1
    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert [b["step"] for b in progress(seq)] == [1, 2, 3, 4]
    assert "KeyError" in terminals(seq)[0]["message"]


def test_track_rejects_config_and_run_together(make_config):
    config = make_config()
    run = trainwire.init(config)
    with pytest.raises(TypeError, match="not both"):
        trainwire.track(range(3), run=run, config=config)
    run.done()
