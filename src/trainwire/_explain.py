"""Plain sentences for the user from exceptions, exit statuses and signals (Korean or English).

The platform shows ``training_error``'s ``message`` to a person, so it must never be a
stack trace. ``TrainingError`` text is the author's own and goes out verbatim; anything
else becomes one sentence that names what happened.
"""

from __future__ import annotations

import signal
from typing import Callable, Optional

from ._errors import TrainingError

__all__ = ["LANGUAGES", "explain_exception", "explain_exit_status", "explain_signal", "text"]

LANGUAGES = ("ko", "en")
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
    "nonzero_rank": {
        "ko": "분산 학습의 {rank}번 프로세스에서 오류가 발생했습니다: {detail}",
        "en": "Process rank {rank} of the distributed training failed: {detail}",
    },
}


def text(key: str, language: str, **values: object) -> str:
    """The sentence ``key`` in ``language`` with ``values`` filled in."""
    return _TEXT[key][language].format(**values)


def _short(value: object) -> str:
    line = " ".join(str(value).split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


def _describe(exc: BaseException) -> str:
    message = _short(exc)
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _file_detail(exc: BaseException) -> str:
    filename = getattr(exc, "filename", None)
    if filename:
        return _short(filename)
    return _short(getattr(exc, "strerror", None) or exc)


_Explainer = Callable[[BaseException, str], Optional[str]]


def _gpu_oom(exc: BaseException, language: str) -> str | None:
    name = type(exc).__name__
    if name == "OutOfMemoryError" or (
        "out of memory" in str(exc).lower() and "cuda" in str(exc).lower()
    ):
        return text("oom_gpu", language)
    return None


def explain_exception(exc: BaseException, language: str = "ko") -> str:
    """One plain sentence for ``exc``; ``TrainingError`` text is returned verbatim."""
    if isinstance(exc, TrainingError):
        return exc.message
    oom = _gpu_oom(exc, language)
    if oom:
        return oom
    if isinstance(exc, MemoryError):
        return text("oom", language)
    if isinstance(exc, KeyboardInterrupt):
        return text("interrupted", language)
    if isinstance(exc, ModuleNotFoundError):
        return text("module", language, detail=exc.name or _short(exc))
    if isinstance(exc, FileNotFoundError):
        return text("not_found", language, detail=_file_detail(exc))
    if isinstance(exc, PermissionError):
        return text("permission", language, detail=_file_detail(exc))
    if isinstance(exc, OSError) and exc.errno == 28:
        return text("disk_full", language, detail=_file_detail(exc))
    if isinstance(exc, SystemExit):
        return explain_exit_status(exc.code, language)
    return text("generic", language, detail=_describe(exc))


def explain_exit_status(code: object, language: str = "ko") -> str:
    """A sentence for a non-zero exit status (``sys.exit(code)``)."""
    if code is None:
        code = 0
    return text("exit_status", language, detail=_short(code))


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def explain_signal(signum: int, language: str = "ko") -> str:
    """A sentence for a run ended by a signal."""
    if signum == signal.SIGINT:
        return text("interrupted", language)
    return text("signal", language, detail=signal_name(signum))
