"""``trainwire run`` says once, on stderr, when it recognises no progress, and gives the
command a pseudo-terminal when its own output is a terminal. Real ``trainwire run``
processes, real children, the real broker; real pseudo-terminals from the ``pty`` module."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
import threading
from pathlib import Path

from _cli_helpers import DONE, PROGRESS, TRAINWIRE, bodies, env, settle, start, terminals
from trainwire._tools._hint import HINT

PY = sys.executable
#: Thresholds for the tests: never the clock, only the line count.
LINES_ONLY = ("--hint-after", "600", "200")


def _python(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def _run(config: Path, code: str, *options: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*TRAINWIRE, "run", "--config", str(config), *options, "--", *_python(code)],
        capture_output=True, env=env(), timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


NOISE = """
    import sys
    for i in range(300):
        print(f"loading shard {i} of the corpus", flush=True)
    print("own stderr line", file=sys.stderr, flush=True)
    sys.exit(5)
"""


def test_300_unrecognised_lines_give_exactly_one_hint_and_the_output_unchanged(
    broker, queue, make_config
):
    result = _run(make_config(), NOISE, *LINES_ONLY)
    assert result.returncode == 5
    expected = "".join(f"loading shard {i} of the corpus\n" for i in range(300))
    assert result.stdout == expected.encode()
    stderr = result.stderr.decode()
    assert stderr.count(HINT) == 1, stderr
    for option in ("--total-steps", "trainwire step=N total=T", "SDK"):
        assert option in HINT
    assert stderr.replace(HINT + "\n", "", 1) == "own stderr line\n"
    (end,) = terminals(settle(broker, queue))
    assert end["message"].endswith("own stderr line")


def test_a_command_printing_progress_gets_no_hint(broker, queue, make_config):
    result = _run(make_config(), """
        print("trainwire step=1 total=400", flush=True)
        for i in range(300):
            print(f"batch {i}: loss 0.5", flush=True)
        print("trainwire step=400 total=400", flush=True)
    """, *LINES_ONLY)  # fmt: skip
    assert result.returncode == 0
    assert HINT not in result.stderr.decode()
    msgs = settle(broker, queue)
    assert [b["step"] for b in bodies(msgs) if b["status"] == PROGRESS][-1] == 400
    assert terminals(msgs)[0]["status"] == DONE


def test_no_hint_with_no_progress_or_for_a_command_using_the_sdk(broker, queue, make_config):
    assert HINT not in _run(make_config(), NOISE, "--no-progress", *LINES_ONLY).stderr.decode()
    settle(broker, queue)
    sdk = "import trainwire\ntrainwire.init(total_steps=10)\n" + textwrap.dedent(NOISE)
    result = _run(make_config(), sdk, *LINES_ONLY)
    assert result.returncode == 5 and HINT not in result.stderr.decode()


def test_the_hint_also_comes_after_its_time_with_hardly_any_output(
    broker, queue, make_config, tmp_path
):
    go = tmp_path / "go"
    proc = start("run", "--config", make_config(), "--hint-after", "0.2", "100000", "--",
                 *_python(f"""
        import os, time
        print("starting", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
    """))  # fmt: skip
    assert proc.stdout.readline() == "starting\n"
    assert proc.stderr.readline() == HINT + "\n"  # before the command ends
    go.touch()
    out, err = proc.communicate(timeout=60)
    assert (out, err, proc.returncode) == ("", "", 0)
    assert terminals(settle(broker, queue))[0]["status"] == DONE


# -- a pseudo-terminal when ours is a terminal -----------------------------------------------

PROBE = r"""
    import json, os, sys
    size = os.get_terminal_size(1) if os.isatty(1) else None
    print(json.dumps([os.isatty(1), os.isatty(2), size and list(size)]), flush=True)
    sys.stdout.buffer.write(b"a\nb\r\nc\x00\xff no newline"); sys.stdout.flush()
    sys.stderr.write("to stderr\n")
"""


def _terminal(columns: int, rows: int) -> tuple[int, int]:
    """A pseudo-terminal for the supervisor: bytes as written (no \\r added), this size."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, slave


def _drain(fd: int, into: bytearray) -> threading.Thread:
    def read() -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every writer is gone
                return
            if not data:
                return
            into.extend(data)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _under_terminals(config: Path, *options: str) -> tuple[int, bytes, bytes]:
    """``trainwire run`` with its stdout and stderr each on a terminal of its own."""
    out_master, out_slave = _terminal(97, 33)
    err_master, err_slave = _terminal(97, 33)
    out, err = bytearray(), bytearray()
    readers = [_drain(out_master, out), _drain(err_master, err)]
    proc = subprocess.Popen(
        [*TRAINWIRE, "run", "--config", str(config), *options, "--", *_python(PROBE)],
        stdout=out_slave, stderr=err_slave, stdin=subprocess.DEVNULL, env=env(),
    )  # fmt: skip
    os.close(out_slave)
    os.close(err_slave)
    returncode = proc.wait(timeout=60)
    for reader in readers:
        reader.join(timeout=30)
    for master in (out_master, err_master):
        os.close(master)
    return returncode, bytes(out), bytes(err)


def _probe(out: bytes) -> tuple[list, bytes]:
    first, rest = out.split(b"\n", 1)
    return json.loads(first), rest


def test_on_a_terminal_the_command_gets_terminals_and_its_bytes_pass_unchanged(
    broker, queue, make_config
):
    returncode, out, err = _under_terminals(make_config())
    assert returncode == 0, err
    seen, rest = _probe(out)
    assert seen == [True, True, [97, 33]]
    assert rest == b"a\nb\r\nc\x00\xff no newline"  # no \r added, stderr not merged in
    assert err == b"to stderr\n"
    assert terminals(settle(broker, queue))[0]["status"] == DONE


def test_no_tty_or_a_pipe_keeps_pipes(broker, queue, make_config):
    returncode, out, _err = _under_terminals(make_config(), "--no-tty")
    assert returncode == 0
    assert _probe(out) == ([False, False, None], b"a\nb\r\nc\x00\xff no newline")
    settle(broker, queue)
    piped = _run(make_config(), PROBE)
    assert _probe(piped.stdout) == ([False, False, None], b"a\nb\r\nc\x00\xff no newline")


def test_tty_gives_terminals_even_when_ours_are_pipes(broker, queue, make_config):
    result = _run(make_config(), PROBE, "--tty")
    assert result.returncode == 0
    assert _probe(result.stdout) == ([True, True, [80, 24]], b"a\nb\r\nc\x00\xff no newline")
    assert result.stderr == b"to stderr\n"
