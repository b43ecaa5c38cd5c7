"""Pseudo-terminals for the supervised command's output when ours is a terminal.

A program run from a terminal draws its progress bars for a terminal (tqdm and rich
redraw frames in place, colours); behind a pipe it behaves as in a log file (rich draws
only its last frame). ``trainwire run`` lets the command see what it would see without
``trainwire run``: each of its output streams is a pseudo-terminal exactly when ours is a
terminal. Output processing is turned off on the pseudo-terminal (no ``\\n`` -> ``\\r\\n``),
so the bytes still pass through unchanged, and stdout and stderr keep a terminal each (never
merged). The window size is ours, and follows ours (:func:`copy_size` on ``SIGWINCH``).
``trainwire run --tty`` gives them even when ours are pipes: bars then draw every frame
into the log (rich otherwise prints only its last one), at the cost of a log full of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import termios

__all__ = ["DEFAULT_SIZE", "copy_size", "open_like"]

#: Rows and columns of a pseudo-terminal standing in for a pipe (``trainwire run --tty``).
DEFAULT_SIZE = (24, 80)


def copy_size(source_fd: int, target_fd: int) -> None:
    """Give the terminal ``target_fd`` the window size of the terminal ``source_fd``."""
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target_fd, termios.TIOCSWINSZ, size)


def open_like(fd: int, *, always: bool = False) -> tuple[int, int] | None:
    """``(master, slave)`` of a new pseudo-terminal whose output passes unchanged, the size
    of ``fd``'s terminal; None when ``fd`` is not a terminal, unless ``always`` (then
    :data:`DEFAULT_SIZE`)."""
    if not (always or os.isatty(fd)):
        return None
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST  # output flags: bytes as written, no \r added
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
    except termios.error:
        os.close(master)
        os.close(slave)
        return None
    with contextlib.suppress(OSError):
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *DEFAULT_SIZE, 0, 0))
    copy_size(fd, master)
    return master, slave
