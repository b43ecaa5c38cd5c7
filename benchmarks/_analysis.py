"""The prose of docs/benchmarks.md: how to read the figures, what explains them, what changed.

Two kinds of numbers appear in the Analysis, and the text says which is which:

* **This run**: computed from the figures of the run that writes the file (the same
  numbers as the tables above it), so the two can never disagree.
* **The record**: profiles and before/after figures measured once, while the code was
  optimised, dated and with the machine named. They are not regenerated.

Facts about the code (intervals, bounds) are read from the code itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks._common import Figure, fmt

__all__ = ["INTRO", "RECORDED", "analysis"]

#: When and where the record below was measured (the optimisation work of issue 8).
RECORDED = (
    "2026-11-27, on the machine of that day's runs (AMD EPYC, 2 cores, Python 3.11.7, "
    "pika 1.4.4, RabbitMQ 3.10.8, Linux; shared with other jobs)"
)

INTRO = """
What reporting with trainwire costs a training job, measured side by side with what a
user would otherwise reach for. Every figure is measured against its baseline in the
same process run, in alternating rounds, and reported as medians; the ratio is taken
per round (same moment, same load). The machines are shared and noisy (2 cores, other
engineers' test suites and RabbitMQ nodes running at the same time: see the load
average below), so absolute numbers move from run to run; the ratios, and the two rows
counted in CPU instructions by valgrind (which no load can move), are what count.
"""


def _measured(key: str, f: Figure | None) -> str:
    """One figure of this run as a sentence fragment, or why it is missing."""
    if f is None:
        return f"`{key}`: not measured in this run"
    if not f.available:
        return f"{f.title}: not measured in this run ({f.note})"
    text = f"{f.title}: {fmt(f.trainwire, f.unit)} against {fmt(f.baseline, f.unit)}"
    if f.ratio is not None:
        text += f" ({f.ratio_text})"
    if f.met is not None:
        text += f"; goal {f.goal}: {'met' if f.met else 'not met'}"
    return text


def _this_run(figures: Mapping[str, Figure], *keys: str) -> str:
    return "**This run:** " + "; ".join(_measured(k, figures.get(k)) for k in keys) + "."


def _code_facts() -> dict[str, str]:
    """Bounds and intervals quoted in the prose, from the code that defines them."""
    from benchmarks.serve_live import CLIENTS, LIVE_JOBS, LIVE_RATE, TIMED
    from trainwire._broker._amqp import POLL_INTERVAL
    from trainwire._broker._transport import EVERY_STEP_BACKLOG
    from trainwire._serve._graphs import CACHED_CELLS, MAX_POINTS
    from trainwire._serve._web import MIN_POLL_GAP
    from trainwire._tools._flood import INTERVAL, SHARE

    return {
        "poll_ms": f"{POLL_INTERVAL * 1000:g}",
        "backlog": f"{EVERY_STEP_BACKLOG:,}",
        "flood_share": f"{SHARE:.0%}",
        "flood_interval_ms": f"{INTERVAL * 1000:g}",
        "hub_gap_ms": f"{MIN_POLL_GAP * 1000:g}",
        "max_points": f"{MAX_POINTS:,}",
        "max_buckets": f"{MAX_POINTS // 2:,}",
        "cached_cells": f"{CACHED_CELLS:,}",
        "clients": str(CLIENTS),
        "timed": str(TIMED),
        "live_jobs": str(LIVE_JOBS),
        "live_rate": str(LIVE_RATE),
        "live_total": f"{LIVE_JOBS * LIVE_RATE:,}",
    }


def analysis(figures: Mapping[str, Figure]) -> str:
    """The Analysis section for ``figures`` (by key): this run's numbers, then the record."""
    facts = _code_facts()
    parts = [
        "Each topic starts with **this run**'s figures, taken from the tables above. What "
        "follows is how the code gets there and, marked *Recorded*, the profiles and "
        f"before/after figures measured once while the code was optimised: on {RECORDED}. "
        "The record explains the figures; it is not regenerated, so its numbers can differ "
        "from this run's.",
    ]
    for title, keys, body in _SECTIONS:
        parts += [f"### {title}", _this_run(figures, *keys), body.strip().format(**facts)]
    return "\n\n".join(parts)


_HOT_PATH = """
*Recorded.* Counted with callgrind, `run.progress(step)` took 2,123 instructions per
loop iteration against 1,987 for `tqdm.update(1)`: 7 % over the goal. Timed, the
per-round ratio wandered between 0.8x and 1.2x with the machine's load, so the count
decided it. Profile (callgrind, one loop per variant of the method on a stand-in class):

| variant of the method body | instructions per iteration |
|---|---|
| the body as it was: checks, `step * scale`, clamp to 0..100, `push((step, pct))` | 2,130 |
| same checks, then `push(step)` (a bare int) | 1,340 |
| nothing but `self._push(step)` | 981 |
| for reference: empty loop / `deque.append(i)` / `tqdm.update(1)` | 194 / 377 / 1,987 |

About 800 instructions are the Python method call itself (what any `tqdm.update` pays
too); about 790 went to building the float and the `(step, percentage)` tuple and
clamping. The tuple had a second cost: it is a GC-tracked allocation, so a garbage
collection could start inside `progress()`. During the broker-restart runs the training
thread ran dozens of generation-0 collections (median 0.14 ms, up to 2.8 ms) and
generation-1 collections of about 4 ms, and one `progress()` call lost 1.4 ms that the
run queue did not explain (a collection fits; it was not proven).

**Change** (`src/trainwire/_sdk/_run.py`, `src/trainwire/_broker/_transport.py`): when no
percentage is given, `progress()` appends the bare `int` step to the outbox; the I/O
thread computes `step / total_steps * 100`, clamped to 0..100, when it builds the
message. An explicit percentage still goes as a `(step, percentage)` tuple, and so does
`trainwire.track()`. Same messages, same checks in the training thread, and
`progress(step)` allocates nothing, so no garbage collection can start inside it.
*Recorded* after the change: 1,340 instructions against about 1,950 for `tqdm.update(1)`
(0.67-0.70x; tqdm's own count moves a little between runs).
"""

_TRACK = """
`track` wraps the loop in a generator that appends `(step, percentage)` to the run's
outbox per item (no argument checks); it is measured with an offline run and an online
run, not a disabled one, because a run that does not report makes `track` a bare loop.
It could push bare ints too when its total is the run's `total_steps` (a proposal for
its owner).
"""

_LOG = """
Both end in one `write(2)` per row (MetricsWriter writes each row with `os.write`, so a
crash loses no row). What trainwire adds on top is its checks (names, series, finite
numbers, an x axis that never goes backwards) and its number formatting; the ratio is
their cost against `csv`'s own formatting.

*Recorded:* in the run of that day that last generated these docs, 6,136 ns against
5,620 ns (1.05x): the system call dominated both.
"""

_IMPORT = """
The goal includes that `import trainwire` loads no framework (nor pika, PyYAML, click or
tqdm): the details above list what this run found. The wall-time figure is the noisiest of all
(two fresh interpreters per pair on a loaded machine); the instruction count beside it
is not.

*Recorded.* The bare interpreter of that machine was itself heavy: its `site-packages`
held a `.pth` file that imports `certifi` at every start. Across the full runs made that
day after the changes, the median extra wall time ranged from 50 to 72 ms and the
fastest pair's from 34 to 73 ms, with the machine's load.

*Recorded.* Before the changes, `import trainwire` added 167.8 M instructions to the
140.8 M of a bare interpreter (1.19x a bare start). `python -X importtime` showed `ssl`
(loaded by the AMQP transport only for TLS options and error classification), `socket`,
and `uuid` (which pulls in `platform`) among the largest pieces; `uuid` served one call
per message. **Changes:** `new_message_id()` draws 16 bytes from `os.urandom` (32 hex
digits, like `uuid4().hex`), so `uuid` is no longer imported
(`src/trainwire/_spec/_protocol.py`); `ssl` and `socket` are imported inside the functions
that use them, which run in the I/O thread after pika has loaded both anyway
(`src/trainwire/_broker/_amqp.py`, `src/trainwire/_sdk/_distributed.py`). After them:
112.6 M instructions added (-33 %, 0.8x a bare start). What remains is mostly standard
library trainwire needs at import (`logging`, `json`, `dataclasses` and the `inspect`
it pulls in) and its own module bodies.

Proposed, not done: loading the graph writer (`_metrics`) only on first use would save
about 10 % more (*recorded*), but `tests/test_sdk_api.py` requires every name in
`trainwire.__all__` (including `MetricsError`) to be in the module's namespace at
import; importing `dis` lazily in `_lifecycle` would save 2-3 %, but it runs at
interpreter exit, where an import is a risk not worth 2 ms.
"""

_MEMORY = """
At the default `max_rate=10` the outbox keeps only the newest step (`deque(maxlen=1)`):
nothing grows however long the broker is away. In every-step mode it keeps at most
{backlog} entries (`EVERY_STEP_BACKLOG`), bare ints for `progress(step)`. The baseline
compares like with like: the same loop, in the same kind of child process, appending the
same bare ints to a bare `deque` of the same bound, so the difference is what the run
adds around its outbox. The I/O thread retries with backoff meanwhile; each child
imports pika and lets the first connect fail before the first reading, so the figure is
what the calls add.
"""

_THROUGHPUT = """
The baseline publishes pre-encoded bytes with pre-built properties; trainwire, for
every message, takes the step from the outbox (in batches up to the room in the confirm
window, one lock a batch), formats the body from the run's template (the percentage
formatted once, `%.4f` without its trailing zeros: the bytes of `round` then `repr`),
takes a message id from ids drawn 256 at a time, wraps it in an `Envelope` kept in the
in-flight map (to resend on a nack or a lost connection, and to spool the terminal
message), and builds the message's three AMQP frames from templates
(`_broker/_frames.py`: the method frame once per channel and queue, the header frame
from the properties' bytes either side of the message id, once a second; pika's own
bytes, compared by tests/test_wire_bytes.py), handed to pika's connection as one chunk;
the baseline's `basic_publish` builds and encodes three frame objects per message. After
each fill, what pika buffered leaves in one `send()` (`_broker/_pikaio.coalesce_writes`);
the baseline sends as pika does, one `send()` per frame, three a message. Each side
stamps the end in its own confirm handler: no thread polls the count. On a 2-core
machine shared by the broker and other jobs, the client's CPU is taken from the broker's,
so that work shows in messages per second; the client CPU per message (under Details) is
the steadier figure.

*Recorded.* Before the changes (py-spy, 400 Hz, I/O thread): trainwire's own work was
about 36 % of the busy samples, `uuid.uuid4()` alone 10 % and `json.dumps` (which builds
a new `JSONEncoder` per call when given options) 14 %; trainwire reached 53-66 % of raw
pika in the runs of that hour. **Changes** (`src/trainwire/_spec/_protocol.py`): the message
id from `os.urandom` (7x cheaper than `uuid4().hex` there), and one module-level
`JSONEncoder` (byte-identical output, about 30 % cheaper per body). After them,
trainwire's own share was about 26 % (taking the next step and building its message
11 %, encoding 11 %, properties and bookkeeping 4 %); the rest was pika's frame
marshalling (23 %) and socket writes (38 %), which the baseline pays as well. Under
heavy load (load average 12) the two changes alone took the ratio from 0.53 to 0.75; in
a later side-by-side run at moderate load (about 2) the code before and after both
reached about 80 % (0.81 and 0.80: the noise was larger than the difference), while
client CPU per message went from 74 to 66 µs, against 35 µs for raw pika. Across the
full runs made that day after the changes the ratio ranged from 71 % to 106 %: one run
cannot settle this goal either way.

*Recorded*, measured one by one: trainwire's own work per message was about 15 µs:
taking the step and building the message 6 µs (body dict 1.6, `Envelope` 0.5, message
id 0.9), JSON encoding 5.5 µs, building the AMQP properties 3.5 µs; pika's own publish
of the same message (marshalling, properties encoding, socket write) cost the rest of
the 35-45 µs both sides paid.

**Done since** (`src/trainwire/_spec/_protocol.py`, `ProgressTemplate`; the bytes are
checked equal to `encode()` by tests/test_wire_bytes.py): progress bodies are formatted from
a per-run byte template (the identity part encoded once; only the step and the percentage
per message); one `BasicProperties` is built per second and copied with each message's id
(src/trainwire/_broker/_params.py); a confirm of several messages settles the oldest tags
and stops (src/trainwire/_broker/_confirms.py) instead of scanning and sorting everything
in flight. *Recorded* (2026-12-02, load average 4-8, old and new code side by side, 7 reps
of 10,000 messages): whole-process CPU per message 85-100 µs before, 83-86 µs after, raw
pika about 43 µs; trainwire's own per-message work without the broker 27-30 µs before,
19-22 µs after. The ratio of the three side-by-side runs swung from 75 % to 107 % for the
same code at that load: the goal is judged by this run's figure above.

**Then** (same day, load average 6-11; whole-process CPU per message, median of 4 reps of
10,000 messages, the code before and after each change side by side; the per-rep ratios
swung by 30 % at that load and decide nothing): the benchmark first. Its trainwire side
polled the confirm count every 5 ms from the main thread, which took the GIL from the I/O
thread 200 times a second, a cost the raw side (which stamps the end in its `on_confirm`)
never paid; it now stamps in the I/O thread's confirm handler (same code: 86 against 85
µs in that series; in a pair before it, the I/O thread alone used 76-83 µs under a 5 ms
poll and 63-72 µs under a 50 ms one). Then the code (src/trainwire/_broker/,
src/trainwire/_spec/_protocol.py): message ids drawn 256 at a time, cleared in a forked
child, 89 → 88 µs; steps taken in batches under one lock, one `BasicProperties`
re-stamped per message, the send time kept in the in-flight slot and a multiple ack
settled in one pass, 76 → 65 µs; the percentage formatted once, 69 → 69 µs; one `send()`
per fill instead of one per frame, 64 → 42 µs, raw pika 42-50 µs in the same series.
Two full runs of this benchmark afterwards (7 reps each, load average 1.8-2.8): 94.4 %
and 91.4 % of raw pika, client CPU 41.3 and 42.7 µs a message against 38.9 and 38.0 µs;
single reps ranged from 59 % to 133 %.
**Then** (2026-12-03, src/trainwire/_broker/_frames.py): pika's `basic_publish` cost
about 6.5 µs a message in frame objects and field-by-field encoding (measured one by one:
header frame 3.4 µs, of which the properties 2.3, method frame 2.4, body frame 0.8), and
its connection took the three frames as three chunks. Built from templates and handed
over as one chunk, *recorded* in two runs of this benchmark (7 reps each, load about 1):
113.2 % and 106.6 % of raw pika, client CPU per message 7.7 and 7.3 µs against 18.2 and
17.5 µs (the run before: 85.1 %, 22.7 against 21.1 µs). A body longer than one frame of
the smallest size AMQP allows (4,088 bytes), an id longer than 255 bytes, a closed channel
or a pika without that connection method go through `basic_publish` as before.
Every-step mode is opt-in: at the default `max_rate=10`, trainwire sends at most 10
messages a second and throughput never matters.
"""

_LATENCY = """
`progress()` never wakes the I/O thread (a wake-up through pika's
`add_callback_threadsafe` would cost the caller on every call); the I/O thread looks at
the outbox every {poll_ms} ms (`POLL_INTERVAL`) and right after each confirm. A step
therefore waits 0-{poll_ms} ms before it is published, then takes the same network and
broker path as the baseline, which publishes synchronously from the calling thread and
blocks it for every message. Both go out in the same ticks of the same loop, so when
other jobs load the machine both tails grow together.

*Recorded:* on a quiet machine p50 was about 10-12 ms and p99 about 20-25 ms; p99 in the
hundreds of milliseconds was seen on both sides at load averages around 5.

For a status display fed at most 10 times a second by default this is the intended
trade: the training loop pays nanoseconds, the platform sees a step up to {poll_ms} ms
later (plus the broker's own path). If lower latency were ever wanted in every-step
mode, a shorter poll interval is the knob (more idle wake-ups of the I/O thread).
"""

_STALL = """
Nothing in `progress()` waits on a lock, the network or the disk; the only ways one call
can take long are the operating system not running the thread, the GIL held by another
thread of the process, or a garbage collection started inside it (not possible for
`progress(step)`, see the hot path). On a shared machine the raw wall-time maximum is
set mostly by the first: the kernel's per-thread run-queue accounting
(`/proc/self/task/<tid>/schedstat`, read around every call) shows how long the slowest
calls were runnable but not running. The second row takes the run-queue wait out of
every call: what remains is what our own process cost the call.

*Recorded:* one call of 54 ms had 54.15 ms of run-queue wait, and the worst
`tqdm.update(1)`, timed the same way in the same loop, reached 71 ms in the same series
of runs. Without the run-queue wait, the worst `progress()` call stayed between 0.09 and
0.56 ms in every run made that day after the hot-path change. Two early runs, before
that change and before the run-queue accounting existed, had one `progress()` call of
99 ms and one of 338 ms while the worst `tqdm.update` of the same runs took 1.6 and
4.2 ms; they cannot be attributed after the fact.
"""

_SUPERVISOR = """
`trainwire run` copies each read of the command's output (up to 1 MiB: it asks the kernel
for 1 MiB pipes) to its own output before it looks at it. The progress reader of each
stream has a budget of {flood_share} of the wall time (src/trainwire/_tools/_flood.py): a
read whose predicted cost the budget cannot pay is a flood, and of a flood only the newest
lines of one read every {flood_interval_ms} ms are read for progress, plus the bar's last
state when the output ends. A training that prints a bar frame every 100 ms is read whole.
The child's own wall time, with either reader behind its pipe, is in the details above.
"""

_CLUSTER = """
The three nodes are private RabbitMQ nodes on this machine's loopback, started and joined
by tests/_cluster.py; the queue is a quorum queue replicated on all three, so a publisher
confirm means a majority of the nodes has the message. The failover figure is the time
from `kill -9` of the node a training is connected to until an independent consumer sees
the next step, which has gone through another node (src/trainwire/_broker/_nodes.py: the
next node at once, no backoff until a whole round failed); its baseline is a config naming
only the killed node, which must wait for that node to come back. `--quick` runs do not
start a cluster.
"""

_SERVE_INGEST = """
A queue is filled beforehand with the messages of 1,000 trainings (each: progress steps,
then `training_done`; jobs interleaved as a fleet sends them), then drained by a real
`trainwire serve` process, its rate read from `/api/health`'s `received` counter; the
baseline is a raw pika consumer in its own process with the same prefetch that acks each
batch and does nothing else. serve settles one batch per transaction
(src/trainwire/_serve/_store/_batch.py): all of a batch's jobs are locked with one
statement per kind (src/trainwire/_serve/_store/_locks.py), changed rows are written with
one `executemany`, project keys are checked with at most three queries.

*Recorded* (2026-12-02, load average about 13): in-process on SQLite, 1,000 jobs x 10
messages in batches of 50, CPU per message went from 245-257 µs to 170-182 µs with the
batch locking and writing; a profile then showed each job's pace samples (for
`steps_per_second` and the ETA) at about 43 % of ingest CPU, which became tuples with a
plain median (src/trainwire/_serve/_store/_pace.py). The same machine, real `serve`
processes, old and new alternating: SQLite 1,201-1,351 msg/s before, 1,556-2,108 after;
PostgreSQL 265-346 before, 550-882 after; the raw consumer 3,100-9,200 msg/s.

**Done since:** SQLite's journal is checkpointed by a thread of the store's own
(src/trainwire/_serve/_store/_checkpoint.py; the automatic checkpoint ran inside the
`COMMIT` of whichever batch filled the journal, with the batch unacknowledged); the hub
reads nothing while no page listens (it re-read every job changed in the last 10 s four
times a second, competing with the receiver for the GIL); a job's pace text is joined from
each sample's text and a text written lately is not parsed again; a batch's state changes
go in one `executemany`; the strings of a batch are checked for NUL and lone surrogates
joined, not one call each; the rejected-message index holds only rejected messages.
*Recorded* (2026-12-02, load average 6-10, old and new `serve` processes alternating on
the same filled queue, CPU per message of the serve process): SQLite 399-404 µs before,
247-270 µs after; PostgreSQL 680-688 µs before, 341-428 µs after. Tried and left out: a
multi-row `INSERT` instead of psycopg's pipelined `executemany` on PostgreSQL (slower:
1,717-1,727 msg/s against 2,019-2,153 in-process).

**Then** (src/trainwire/_serve/_receiver.py, src/trainwire/_serve/_store/): py-spy of a
draining `serve` showed its receiver thread waiting in `poll` for about 23 % of its
samples: a batch of the whole prefetch count left the broker nothing to send while it was
stored. A batch now holds at most half the prefetch count, so the other half arrives
meanwhile. The store's Python per message was cut where a profile pointed: the rate
summed column by column (`Pace.speed` 13 µs -> 7 µs), a sample taken in with one tuple
each (`Pace.add` 6.0 -> 3.5 µs), a sample's JSON written directly, NULLs bound without
sqlite3's failing adapter lookup (two `AttributeError`s made and dropped per NULL),
statuses, kinds and job states by dictionary instead of the enum's call or `.value`,
identifiers that passed the check remembered, the messages, outcomes, deliveries and job
records as tuples, a batch's rows not looked at again for NUL and lone surrogates (each
string is made storable where it is made; tests/test_serve_store.py feeds a batch of
hostile text to both databases), and on SQLite the job rows read first, only the missing
ones inserted. *Recorded* (2026-12-02, valgrind's callgrind, so the load cannot move it;
the store alone in-process, 1,000 jobs x 6 messages in batches of 50): 366,400
instructions per message before, 258,300 after. Real `serve` processes on the same
filled queue (1,000 jobs x 20 messages), the code before and after alternating, four
rounds at load about 1: before 8,305, 8,616, 12,452, 8,828 msg/s; after 10,421, 13,734,
11,387, 11,716 msg/s (with only the batch size and the first third of these cuts).
Tried and left out: storing in a thread of its own while the connection thread goes on
consuming (acks handed back with `add_callback_threadsafe`): the two threads handing the
GIL to each other cost more than they overlapped; `serve`'s CPU per message went from
80-94 µs to 121-151 µs and its rate fell from 9,000-10,300 to 6,400-7,800 msg/s.

**Then, on PostgreSQL** (src/trainwire/_serve/_store/_postgres.py, _bulk.py, _tx.py,
_sql.py): pg_stat_statements over an in-process drain (1,000 jobs x 10 messages, batches
of 25) showed the batch's lock query at 1.76 ms a batch (704 ms for 400 batches): on a
table without statistics the planner took `kind = ...` as selective and read all 1,000
jobs of the kind for each batch; after `ANALYZE` 0.2 ms. Autovacuum analyzes about once a
minute, so `serve` now analyzes `tw_jobs` itself each time the jobs it created double (200,
400, ...; 1 s lock timeout). A batch's statements go in psycopg's pipeline mode (three
round trips for a batch of one kind, the writes with the `COMMIT`; whether any job is
registered is asked with the message ids' insert), and its many-row statements (the job
rows, the log, the message ids, the lock query's ids) as one statement of column arrays
with one text whatever the batch size, so that they are planned once and prepared.
*Recorded* (2026-12-02, load below 1, in-process, 1,000 jobs x 20 messages in batches of
25, statistics present): 4,720-5,530 msg/s before, 5,950-6,530 with the pipeline,
6,700-7,540 with the arrays, 7,470-9,170 with the registered question moved; PostgreSQL's
CPU per message 81-99 µs before, 55-75 µs after. Real `serve` processes on a filled queue
(1,000 jobs x 20 messages, prefetch 50): 4,199-5,162 msg/s after (the last stop's final
run: 3,395), with CPU per message `serve` 104-136 µs, PostgreSQL 84-104 µs and RabbitMQ
26-40 µs. Tried and left out: the rows as JSON (`json_to_recordset`) instead of arrays:
no gain in rate.

**Then** (src/trainwire/_serve/_store/, src/trainwire/_serve/_defaults.py): the
PostgreSQL CPU of the last paragraph was mostly plans and index entries.
pg_stat_statements (in-process, 1,000 jobs x 10 messages, batches of 25) showed the lock
query at 21-28 µs a message: with statistics, the planner's default cost of a page read out
of order (`random_page_cost` 4) made a sequential read of all 1,000 rows (0.6 ms) look
cheaper than 25 lookups by the key (0.15 ms), and the update's join the same; serve's
sessions now plan with 1.1, the usual value for data in memory: 2.8 µs a message. Each
update of a job's row added an entry to every index of the table, because it changed
indexed columns (`last_seen`, `updated_at`): the index of project keys now holds only
registered jobs (the update 17.5-22.0 -> 12.4-15.3 µs a message, five in-process runs
each), and no index holds a column every message changes, with half of each page of
`tw_jobs` left free, so that 81 % of the updates stay on their page (HOT; 30 % without
the free space) and write no index entry (8-9 µs a message, measured in a slower hour).
The price: the live page's change query reads the whole jobs table, 0.87 ms on SQLite and
1.63 ms on PostgreSQL for 10,000 jobs (median of 20; 0.01 and 0.25 ms with the index),
at most every 0.5 s while a page is open. A batch's column arrays are packed by serve in
PostgreSQL's binary form (psycopg's list dump ran Python per value: 148 -> 74 µs for the
13 columns of 25 job rows). And the default prefetch is 200 (batches of up to 100), for
both sides of this benchmark: a transaction's fixed cost is shared by more messages
(in-process on PostgreSQL, about 0.86 ms of serve's CPU a batch against 0.07 ms on
SQLite). *Recorded* (2026-12-03, real `serve` processes, 1,000 jobs x 20 messages):
PostgreSQL at prefetch 50 went from 4,131-4,810 msg/s to 5,944-7,591 with the planner
setting; with prefetch 200 as well, 8,960-10,200 msg/s (SQLite 12,008-15,910, the raw
consumer 27,560-28,596). `serve`'s CPU per message for the same Python swings by half
between hours of this machine (on PostgreSQL 52-62 µs at 02:45 UTC, 82-98 µs from 03:00),
and these rates with it. Tried and left out: storing in a thread of its own again (the result
recorded above: 5,777-6,741 msg/s against 6,428-6,957); packing the arrays through C
iterators only (18.8 against 20.9 µs for 100 texts: the per-value `struct` call is the
cost).

**Then** (2026-12-03, src/trainwire/_serve/_store/_locks.py, _pace.py, _defaults.py,
and this benchmark): the batch's insert of its jobs' rows (`ON CONFLICT DO NOTHING`) cost
PostgreSQL a lookup per job even when every row existed (4.0 µs a message in
pg_stat_statements, 200 inserts for 1,000 new rows); jobs this server found in the table
are now left out of it (`KnownJobs`, hashes, at most 100,000), and a known job whose row
is gone is inserted after the lock. Paces read back were parsed again for any fleet over
256 jobs (the texts kept were 256; 2,048 now, up to about 32 MB). The default prefetch is
400 (batches of up to 200). *Recorded* (real `serve` processes, 1,000 jobs x 20
messages, old and new code alternating): PostgreSQL 8,487-8,717 msg/s before,
9,209-10,286 after the first two changes; prefetch 200 against 400 in four more pairs:
8,734/8,974, 7,300/8,606, 7,585/10,302, 7,957/8,575. The benchmark itself: the fill is
published without confirms and the broker goes on writing it for a while, and the raw
consumer was ready about a second before serve, so it shared the machine with that work
(RabbitMQ's CPU per drained message 26-42 µs against 16-20 µs after a pause). Each side
now starts once the queue holds every message and the broker used less than 10 % of a
core over a quarter second; the raw consumer went from 26,945-35,950 to 28,305-42,067
msg/s in three pairs, so the SQLite share is judged against a faster baseline than before.
Tried and left out: storing in a thread while the receiver thread reads the next batch
from the socket (`process_data_events` every 1 ms): the ack's frame reading left the
receiver thread, but the store's wall time per message grew from 72 to 86-95 µs (the
GIL), and the rate did not rise (8,490 and 9,549 against 9,699 and 9,596 msg/s).

What the benchmark does not show: a drained backlog keeps few pace samples per job (they
are kept at least 1 s apart), while a training reporting live for more than 30 s has 31,
and the rate over 31 samples (`Pace.speed`, once per job per batch) costs more. The
intervals between samples are therefore kept beside them (a message changes only the
newest), with the same results as working them out afresh (tests/test_serve_pace.py).
*Recorded* (2026-12-02, quiet: `sum(range(100))` 1.06 µs in the same process): the rate
of 31 samples 23 µs from the kept intervals, 101 µs afresh.
"""

_SERVE_PAGES = """
The store is filled through SQL (src/trainwire/_serve/_store/) with 10,000 jobs and
1,000,000 messages (200 and 10,000 with `--quick`), then a real `trainwire serve` is
asked for pages of `/api/jobs?limit=50`, following the cursor (read by key: no `OFFSET`),
and for the job list page as a browser loads it (the page and the requests its script
makes), each p99 beside the p99 of `GET /api/health` on the same server (what any
request costs there). Memory is the serve process's resident size after two counts of
messages ingested through the broker: it must not grow with the messages (no per-message
state is kept).
"""

_SERVE_LIVE = """
**Ingest while the list is watched.** {clients} streams stay open on `/api/events?list=0`
(what the job list page opens) in one child process; {timed} of them parse every event
and note when a (job, step) first shows, the others read and drop (parsing all of them
would load the 2-core machine `serve` runs on). *Rate:* a queue filled beforehand with a
fleet's messages is drained by a fresh `serve` with the streams open or with none, the
two alternating; both sides timed over the same messages, the second half (every
stream has its snapshot before it: a window that started when the streams
were ready left the watched side fewer and later messages, more so as `serve` got faster).
*Latency:*
{live_jobs} trainings at {live_rate} messages a second each ({live_total} msg/s, evenly
spread) are published from this process, which notes when each (job, step) went out
(`time.monotonic`, one clock for the processes of a machine). The fleet is meant to stay
below what `serve` applies (the first row's rates), so that the figure is the path's
delay; the details say how much of it `serve` applied: when that is short of the offered
rate (a machine busy with other work), a growing backlog is part of the latency, for one
stream as for {clients}. The hub reads the store at most every
{hub_gap_ms} ms and sends each stream the newest state of each job that changed, so a
stream sees only some steps (the share is in the details); the latency is over those.
Goals: p99 under 1 s (the page is read by people; the hub's pause and the receiver's
batch are a few hundred ms of it), and at least 90 % of the unwatched rate (open pages
must not slow what they show). The baseline of the latency is one stream, the same fleet.

*Recorded* (2026-12-02, load average about 10; the code of commit 0ba51eb against this
change, alternating, two rounds each; `serve`'s CPU per message applied while it drains a
300-job backlog of 12,300 messages, from `/proc/<pid>/stat`): every stream encoded each
job event itself (`json.dumps` per stream and event), was woken by each event and wrote
each with its own system call. With {clients} streams open `serve` spent 2,180-2,190 µs
per message (about 18 s user and 6.4 s system time) and applied about 345 msg/s; with
none, 287-293 µs. **Changes** (src/trainwire/_serve/_web.py): the hub encodes each event
once (`frame`) and hands a poll's changes to each stream at once
(`Subscriber.offer_all`: one lock, one wake-up); a stream writes all it was given with one
`write`. After them: 283-313 µs per message with {clients} streams open, 255-259 µs with
none (1,378-1,961 msg/s). tests/test_serve_fanout.py checks that every stream is given the
same encoded bytes, and a poll's changes in one go.

*Recorded* later the same day (load average about 1, `--only serve_live`, one run each):
with the ingest faster (see `serve` ingest), {clients} open streams took it to 82.9 % of
the rate with none while the hub polled every 250 ms: each poll sends every open page the
jobs that changed, so the fan-out cost is per poll, not per message. The hub now polls at
most every {hub_gap_ms} ms: 98.8 %, with the publish -> page p99 going from 270 ms to
385 ms (the goal is under 1 s).

**A long graph on the job page.** The page asks for its graphs on its event stream
(`/api/events?kind=..&id=..`, src/trainwire/_serve/static/job.js): the first `graph`
event carries the whole file, thinned on the server. *Recorded* (same day and machine,
the benchmark above with 100,000 rows x 3 columns, 20 opens, old and new code one after
the other): 12,527 rows (356 KB) per event, and every page opened (and every call of
`/api/jobs/KIND/ID/metrics`) parsed the whole file again: 1,129 ms p50, 1,866 ms p99, the
first open 1,217 ms. **Changes** (src/trainwire/_serve/_graphs.py): at most {max_points} rows per
graph ({max_buckets} buckets of two rows, a minimum and a maximum: a bucket per pixel of
a chart up to 2,000 pixels wide); and the whole-file read is kept (`_Wholes`: the thinned
rows and where the read ended, for at most {cached_cells} cells), so the next page reads
only the rows added since; a file replaced, truncated or changed at its start is read
again. After them: 3,133 rows (89 KB), 12.6 ms p50 and 17.2 ms p99; the first page opened
after `serve` starts still reads the file whole, 166 ms (in the details above). The
benchmark checks that the spike row is in the rows sent; tests/test_serve_graph_reads.py
checks the bound, the spike, and (from the server's own `/proc/<pid>/io`) that a second
page does not read the file again.
"""

#: (heading, the figure keys of its "This run" line, the text after it)
_SECTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "Hot path: `run.progress(step)` (goal: no slower than `tqdm.update(1)`)",
        ("instructions", "hot_path.disabled", "hot_path.online"),
        _HOT_PATH,
    ),
    (
        "`trainwire.track()` (goal: no slower than iterating with tqdm)",
        ("track.offline", "track.online"),
        _TRACK,
    ),
    ("`run.log()` (goal: within 2x of `csv.writer.writerow` + `flush`)", ("log_rows",), _LOG),
    (
        'Import time (goal: under 50 ms more than `python -c "pass"`, no framework)',
        ("import_time", "instructions.import"),
        _IMPORT,
    ),
    (
        "Memory with the broker down (goal: under 5 MB)",
        ("memory.default", "memory.every_step"),
        _MEMORY,
    ),
    (
        "Throughput in every-step mode (goal: at least 90 % of raw pika)",
        ("throughput",),
        _THROUGHPUT,
    ),
    ("Latency at 200 msg/s (no goal)", ("latency.p50", "latency.p99"), _LATENCY),
    (
        "Worst `progress()` call during a broker restart (goal: under 1 ms)",
        ("stall", "stall.own"),
        _STALL,
    ),
    (
        "`trainwire run` passing a flood of output (goal: at least 20 MB/s)",
        ("supervisor",),
        _SUPERVISOR,
    ),
    (
        "A 3-node cluster with a quorum queue (no goal)",
        ("cluster.throughput", "cluster.terminal", "cluster.failover"),
        _CLUSTER,
    ),
    (
        "`serve` ingest (goal: half the raw consumer's rate, and 1,000 trainings at 10 msg/s)",
        ("serve.ingest.sqlite", "serve.ingest.postgres"),
        _SERVE_INGEST,
    ),
    (
        "The job list at fleet scale (goal: p99 under 100 ms for a page of the list)",
        ("serve.jobs_api", "serve.jobs_page", "serve.memory"),
        _SERVE_PAGES,
    ),
    (
        "`serve` while pages are open (goals: p99 publish -> page under 1 s, 90 % of the "
        "ingest rate; a 100,000-row graph under 200 ms and 500 KB)",
        ("serve.live.ingest", "serve.live.latency", "serve.graph.latency", "serve.graph.bytes"),
        _SERVE_LIVE,
    ),
)
