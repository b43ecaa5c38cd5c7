"""One HTTP POST of an alert: accepted (2xx) or the reason why not; never raises."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

__all__ = ["TIMEOUT", "post"]

#: Seconds one attempt may take (less than the outbox's lease).
TIMEOUT = 10.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would become a GET without the body: report it instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict[str, str]) -> str | None:
    """POST ``body``; None when the receiver accepted it, else what went wrong."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json; charset=utf-8")
    request.add_header("User-Agent", "trainwire-serve")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as resp:
            resp.read(65536)
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        return f"cannot connect: {reason.strerror if isinstance(reason, OSError) else reason}"
    except (socket.timeout, TimeoutError):
        return f"no answer within {TIMEOUT:g} s"
    except (OSError, ValueError) as exc:  # reset connection, bad status line, ...
        return f"{type(exc).__name__}: {exc}"
