"""Plain sentences for the user from exceptions, exit statuses and signals (Korean or English).

The platform shows ``training_error``'s ``message`` to a person, so it must never be a
stack trace. ``TrainingError`` text is the author's own and goes out verbatim; anything
else becomes one sentence that names what happened.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence

from .._errors import TrainingError

__all__ = [
    "LANGUAGES",
    "explain_exception",
    "explain_exception_line",
    "explain_exit_status",
    "explain_signal",
    "final_error_line",
    "short_detail",
    "text",
]

LANGUAGES = ("ko", "en")
#: The language of every sentence a user sees unless told otherwise: Korean.
DEFAULT_LANGUAGE = "ko"
MAX_DETAIL = 300

_TEXT: dict[str, dict[str, str]] = {
    "oom_gpu": {
        "ko": "GPU 메모리가 부족하여 학습이 중단되었습니다. 배치 크기나 모델 크기를 줄여 보세요.",
        "en": "Training stopped: the GPU ran out of memory. Try a smaller batch or model.",
    },
    "oom": {
        "ko": "메모리가 부족하여 학습이 중단되었습니다. 배치 크기나 데이터 크기를 줄여 보세요.",
        "en": "Training stopped: the machine ran out of memory. Try a smaller batch or data set.",
    },
    "not_found": {
        "ko": "필요한 파일을 찾을 수 없어 학습이 중단되었습니다: {detail}",
        "en": "Training stopped: a file it needs was not found: {detail}",
    },
    "permission": {
        "ko": "파일에 접근할 권한이 없어 학습이 중단되었습니다: {detail}",
        "en": "Training stopped: permission denied for a file: {detail}",
    },
    "disk_full": {
        "ko": "디스크 공간이 부족하여 학습이 중단되었습니다: {detail}",
        "en": "Training stopped: the disk is full: {detail}",
    },
    "module": {
        "ko": "필요한 패키지 '{detail}'가 설치되어 있지 않아 학습을 시작할 수 없습니다.",
        "en": "Training could not run: the package '{detail}' is not installed.",
    },
    "interrupted": {
        "ko": "사용자가 학습을 중단했습니다 (Ctrl+C / SIGINT).",
        "en": "Training was interrupted by the user (Ctrl+C / SIGINT).",
    },
    "signal": {
        "ko": "종료 신호 {detail}을(를) 받아 학습이 중단되었습니다.",
        "en": "Training stopped: the process received the signal {detail}.",
    },
    "exit_status": {
        "ko": "학습 프로그램이 종료 코드 {detail}(으)로 끝났습니다.",
        "en": "The training program exited with status {detail}.",
    },
    "exit_unknown": {
        "ko": "학습 프로그램이 완료(training_done)를 알리지 않고 sys.exit()로 종료되었습니다.",
        "en": "The training program ended through sys.exit() without reporting training_done.",
    },
    "generic": {
        "ko": "학습 중 오류가 발생했습니다: {detail}",
        "en": "Training failed with an error: {detail}",
    },
    "exit_status_output": {
        "ko": "학습 프로그램이 종료 코드 {code}(으)로 끝났습니다. 마지막 출력: {detail}",
        "en": "The training program exited with status {code}. Its last output: {detail}",
    },
    "signal_kill": {
        "ko": "종료 신호 SIGKILL을(를) 받아 학습이 강제 종료되었습니다. "
        "메모리가 부족하여 시스템이 프로세스를 종료했을 수 있습니다.",
        "en": "Training was killed by the signal SIGKILL; the machine may have run out of memory.",
    },
    "command_failed": {
        "ko": "학습 명령을 실행할 수 없습니다: {detail}",
        "en": "The training command could not be started: {detail}",
    },
    # {detail} is that rank's own sentence: this one only says where it happened.
    "nonzero_rank": {
        "ko": "분산 학습의 {rank}번 프로세스가 먼저 중단되었습니다. {detail}",
        "en": "Process rank {rank} of the distributed training stopped first. {detail}",
    },
}


def text(key: str, language: str, **values: object) -> str:
    """The sentence ``key`` in ``language`` with ``values`` filled in."""
    return _TEXT[key][language].format(**values)


def short_detail(value: object) -> str:
    """``value`` as one line of at most :data:`MAX_DETAIL` characters (cut with "…")."""
    line = " ".join(str(value).split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


#: ``Traceback (most recent call last):`` and torch's ``Original Traceback (...)``.
_TRACEBACK_START = re.compile(r"(?:^|\s)Traceback \(most recent call last\):$")
#: A line that looks like the last line of a Python traceback.
_EXCEPTION_LINE = re.compile(
    r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure|Fault)"
    r"|KeyboardInterrupt|StopIteration|GeneratorExit)(?::\s*(?P<message>.*))?$"
)
#: The quoted file name at the end of an ``OSError`` line (``...: '/data/x.jpg'``).
_QUOTED_PATH = re.compile(r""": (['"])(?P<path>.+)\1$""")


def final_error_line(lines: Sequence[str]) -> str | None:
    """The exception line that ends the last Python traceback in ``lines`` (``ValueError:
    bad shape``), else the last line that looks like one, else None.

    A traceback quoted inside an exception's message counts too: a DataLoader worker's
    error arrives as "Caught FileNotFoundError in DataLoader worker process 0." followed
    by "Original Traceback (most recent call last):" and the worker's own traceback, whose
    last line names the real cause.
    """
    last_tb = None
    for index, line in enumerate(lines):
        if _TRACEBACK_START.search(line.strip()):
            last_tb = index
    if last_tb is not None:
        for line in lines[last_tb + 1 :]:
            if line.strip() and not line[0].isspace():
                return line.strip()
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return None


def explain_exception_line(line: str, language: str = DEFAULT_LANGUAGE) -> str:
    """One plain sentence for an exception line as Python prints it (``Name: message``)."""
    match = _EXCEPTION_LINE.match(line.strip())
    if match is None:
        return text("generic", language, detail=short_detail(line))
    name = match.group("name").rsplit(".", 1)[-1]
    message = (match.group("message") or "").strip()
    lowered = line.lower()
    if name == "TrainingError" and message:
        return message  # the author's own sentence, as the SDK sends it
    if name == "OutOfMemoryError" or ("out of memory" in lowered and "cuda" in lowered):
        return text("oom_gpu", language)
    if name == "MemoryError":
        return text("oom", language)
    if name == "KeyboardInterrupt":
        return text("interrupted", language)
    if name == "ModuleNotFoundError":
        found = re.search(r"No module named '([^']+)'", message)
        return text("module", language, detail=found.group(1) if found else short_detail(message))
    path = _QUOTED_PATH.search(message)
    detail = short_detail(path.group("path") if path else message or name)
    if name == "FileNotFoundError":
        return text("not_found", language, detail=detail)
    if name in ("PermissionError", "IsADirectoryError"):
        return text("permission", language, detail=detail)
    if message.startswith("[Errno 28]"):
        return text("disk_full", language, detail=detail)
    return text("generic", language, detail=short_detail(line))


def _describe(exc: BaseException) -> str:
    message = short_detail(exc)
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _file_detail(exc: BaseException) -> str:
    filename = getattr(exc, "filename", None)
    if filename:
        return short_detail(filename)
    return short_detail(getattr(exc, "strerror", None) or exc)


def _quoted_traceback(exc: BaseException) -> str | None:
    """The exception line of a traceback quoted in ``exc``'s message, if there is one.

    torch re-raises a DataLoader worker's exception with the worker's whole traceback as
    its message (so do Ray and some process pools): the user needs its last line, never
    the frames.
    """
    try:
        lines = str(exc).splitlines()
    except Exception:  # a broken __str__ must not cost the terminal message
        return None
    start = next((i for i, line in enumerate(lines) if _TRACEBACK_START.search(line.strip())),
                 None)  # fmt: skip
    if start is None:
        return None
    found = final_error_line(lines[start:])
    if found is not None:
        return found
    head = " ".join(line.strip() for line in lines[:start]).strip()
    return f"{type(exc).__name__}: {head}" if head else type(exc).__name__


def _gpu_oom(exc: BaseException, language: str) -> str | None:
    name = type(exc).__name__
    if name == "OutOfMemoryError" or (
        "out of memory" in str(exc).lower() and "cuda" in str(exc).lower()
    ):
        return text("oom_gpu", language)
    return None


def explain_exception(exc: BaseException, language: str = DEFAULT_LANGUAGE) -> str:
    """One plain sentence for ``exc``; ``TrainingError`` text is returned verbatim.

    When the message quotes a traceback (a DataLoader worker's error), the sentence is
    about that traceback's last line, the original exception.
    """
    if isinstance(exc, TrainingError):
        return exc.message
    quoted = _quoted_traceback(exc)
    if quoted is not None:
        return explain_exception_line(quoted, language)
    oom = _gpu_oom(exc, language)
    if oom:
        return oom
    if isinstance(exc, MemoryError):
        return text("oom", language)
    if isinstance(exc, KeyboardInterrupt):
        return text("interrupted", language)
    if isinstance(exc, ModuleNotFoundError):
        return text("module", language, detail=exc.name or short_detail(exc))
    if isinstance(exc, FileNotFoundError):
        return text("not_found", language, detail=_file_detail(exc))
    if isinstance(exc, PermissionError):
        return text("permission", language, detail=_file_detail(exc))
    if isinstance(exc, OSError) and exc.errno == 28:
        return text("disk_full", language, detail=_file_detail(exc))
    if isinstance(exc, SystemExit):
        return explain_exit_status(exc.code, language)
    return text("generic", language, detail=_describe(exc))


def explain_exit_status(code: object, language: str = DEFAULT_LANGUAGE) -> str:
    """A sentence for a non-zero exit status (``sys.exit(code)``)."""
    if code is None:
        code = 0
    return text("exit_status", language, detail=short_detail(code))


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def explain_signal(signum: int, language: str = DEFAULT_LANGUAGE) -> str:
    """A sentence for a run ended by a signal."""
    if signum == signal.SIGINT:
        return text("interrupted", language)
    return text("signal", language, detail=signal_name(signum))
