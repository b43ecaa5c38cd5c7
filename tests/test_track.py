"""trainwire.track: a tqdm-like wrapper reporting each finished iteration as a step."""

from __future__ import annotations

import itertools

import pytest

import trainwire
from _doc_examples import example
from _frameworks import (
    DONE,
    ERROR,
    assert_run,
    messages,
    model_dir_of,
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


RESUMABLE = """
    import sys
    import trainwire

    start = int(sys.argv[1])  # the steps a checkpoint holds
    tracker = trainwire.track(range(start, 10), initial=start, max_rate=None)
    for i in tracker:
        if start == 0 and i == 6:
            raise MemoryError("out of memory in step 7")
        tracker.run.log("loss", i + 1, train=1.0 / (i + 1))
"""


def test_track_resumed_in_a_new_process_goes_on_from_its_step_and_appends_its_graph(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    first = run_python(RESUMABLE, config, args=["0"])
    assert first.returncode == 1, first.stderr[-2000:]
    first_seq = messages(broker, queue)
    assert_run(first_seq, ERROR, complete=False)
    assert [b["step"] for b in progress(first_seq)] == [1, 2, 3, 4, 5, 6]

    second = run_python(RESUMABLE, config, args=["6"])
    assert second.returncode == 0, second.stderr[-2000:]
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # Its first message is where it resumed; percentages are of all 10 steps.
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (s, s * 10.0) for s in range(6, 11)
    ]
    text = (tmp_path / "models" / "save" / "metrics" / "loss.log").read_text()
    assert text.splitlines()[0] == "step, train" and text.count("step") == 1
    assert [int(line.split(", ")[0]) for line in text.splitlines()[1:]] == list(range(1, 11))


def test_track_loops_on_one_run_go_on_from_the_step_the_last_one_reached(
    broker, queue, make_config
):
    run = trainwire.init(make_config(), total_steps=6, max_rate=None)
    for _epoch in range(2):
        for _ in trainwire.track(range(3), run=run):
            pass
    with pytest.raises(ValueError, match="already reached step 6"):
        trainwire.track(range(3), run=run, initial=2)

    run.done()
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (s, round(s * 100 / 6, 4)) for s in range(1, 7)
    ]


def test_track_into_a_run_without_a_total_does_not_take_one_loop_for_the_whole(
    broker, queue, make_config
):
    # Two epochs of 3: the first loop's length is not the training's, so no percentage
    # that would read 100 % after epoch 1 and fall back to 67 % in epoch 2.
    run = trainwire.init(make_config(), max_rate=None)
    for _epoch in range(2):
        for _ in trainwire.track(range(3), run=run):
            pass

    run.done()
    seq = messages(broker, queue)
    assert_run(seq, DONE, complete=False)
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [(s, 0) for s in range(1, 7)]


def test_the_docs_examples_run_as_written(broker, queue, make_config, monkeypatch):
    config = make_config()
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(config))
    trained = []
    names = {"loader": list(range(10)), "train_step": lambda b: trained.append(b) or 0.5}
    exec(example("## A plain loop: `trainwire.track`"), names)
    assert trained == list(range(10))
    assert_run(messages(broker, queue), DONE)

    trained.clear()
    exec(example("## A plain loop: `trainwire.track`", 1), {**names, "epochs": 3})
    assert trained == list(range(10)) * 3
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert progress(seq)[-1]["step"] == 30
    assert all(b["percentage"] == round(b["step"] * 100 / 30, 4) for b in progress(seq))

    # The first process logged steps 1..6 and died; the example resumes it.
    first = trainwire.init(config)
    for step in range(1, 7):
        first.log("loss", step, train=1.0)
    first.fail("killed")
    messages(broker, queue)
    trained.clear()
    exec(
        example("## A plain loop: `trainwire.track`", 2),
        {**names, "itertools": itertools, "checkpoint": {"step": 6}},
    )
    assert trained == [6, 7, 8, 9]
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert all(6 <= b["step"] <= 10 and b["percentage"] == b["step"] * 10 for b in progress(seq))
    text = (model_dir_of(config) / "save" / "metrics" / "loss.log").read_text()
    assert text.splitlines() == ["step, train"] + [
        f"{s}, {1.0 if s <= 6 else 0.5}" for s in range(1, 11)
    ]
