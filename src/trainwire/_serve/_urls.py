"""URLs as trainwire shows them: every password form hidden, as the reader of the URL sees it.

A password can hide in a PostgreSQL URL in ways ``urlsplit`` does not see (a ``#`` in it,
``?password=``, percent-escapes): libpq reads those, so a PostgreSQL URL is shown as libpq
reads it. Other URLs are shown as their parser (pika's) reads them.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["HIDDEN", "POSTGRES_SCHEMES", "describe_url", "postgres_params", "scrubbed"]

#: Query parameters whose value is never shown (libpq's password, sslpassword, ...).
_SECRET_WORDS = ("pass", "secret", "token", "key")
POSTGRES_SCHEMES = ("postgresql", "postgres")
HIDDEN = "***"
_HIDDEN = HIDDEN


def _secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _netloc(user: str | None, password: bool, host: str, port: str) -> str:
    shown_host = f"[{host}]" if ":" in host else host
    auth = ""
    if user or password:
        auth = urllib.parse.quote(user or "", safe="") + (f":{_HIDDEN}" if password else "") + "@"
    return auth + shown_host + (f":{port}" if port else "")


def postgres_params(url: str) -> dict[str, str] | None:
    """The connection parameters libpq reads from ``url``; None if it cannot be read."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        return {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except Exception:  # no psycopg, or libpq cannot parse it
        return None


def _unreadable(scheme: str) -> str:
    return f"{scheme}://{_HIDDEN} (not shown: its password could not be told apart)"


def _describe_postgres(scheme: str, url: str) -> str:
    """What libpq will read, rebuilt from its own parse: the password never shows."""
    params = postgres_params(url)
    if params is None:
        return _unreadable(scheme)
    host, port = params.pop("host", ""), params.pop("port", "")
    shown = {k: v for k, v in params.items() if not _secret(k)}
    # A password holding '@' or '/' that libpq cut short: its rest reads as host or port.
    if "@" in host + "".join(shown.values()) or not re.fullmatch(r"[0-9,]*", port):
        return _unreadable(scheme)
    if host.startswith("/") or "," in host + port:
        params.update({k: v for k, v in (("host", host), ("port", port)) if v})
        host, port = "", ""
    user, password = params.pop("user", None), params.pop("password", None) is not None
    path = "/" + urllib.parse.quote(params.pop("dbname", ""), safe="")
    query = "&".join(
        f"{k}={_HIDDEN if _secret(k) else urllib.parse.quote(v, safe='/')}"
        for k, v in params.items()
    )
    netloc = _netloc(user, password, host, port)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _describe_generic(scheme: str, url: str) -> str:
    """The parts the URL parser (as pika uses it) finds, the password replaced."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = str(parts.port or "")
    except ValueError:
        return _unreadable(scheme)
    if url.count("@") != parts.netloc.count("@"):  # '#', '/' or '?' cut the user info short
        return _unreadable(scheme)
    netloc = _netloc(parts.username, parts.password is not None, parts.hostname or "", port)
    query = "&".join(
        f"{k}={_HIDDEN if _secret(k) else v}"
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def describe_url(url: str) -> str:
    """``url`` as trainwire shows it: every password form replaced by ``***``.

    A PostgreSQL URL is shown as libpq reads it (``#``, ``?password=`` and percent-escapes
    included); other URLs as their parser reads them. A plain file path is shown as is.
    """
    if "://" not in url:
        return url
    scheme = url.split("://", 1)[0].lower()
    if scheme in POSTGRES_SCHEMES:
        return _describe_postgres(scheme, url)
    return _describe_generic(scheme, url)


def _password_pieces(url: str) -> set[str]:
    """Every text a parser might take for the password of ``url`` (or a part of it)."""
    rest = url.split("://", 1)[-1]
    raw = rest[rest.find(":") + 1 : rest.rfind("@")] if "@" in rest else ""
    pieces = {raw, urllib.parse.unquote(raw), *re.split(r"[#/?@:]", raw)}
    for cut in re.finditer(r"[#/?@:]", raw):  # what comes before and after each delimiter
        pieces.update((raw[: cut.start()], raw[cut.end() :]))
    pieces.add(urllib.parse.urlsplit(url).password or "")
    pieces.add((postgres_params(url) or {}).get("password", ""))
    return {p for p in pieces if len(p) >= 3}


def scrubbed(text: str, url: str) -> str:
    """``text`` (a message about ``url``) with the URL shown safely and no password in it."""
    safe = describe_url(url)
    if url != safe:
        text = text.replace(url, safe)
    for piece in sorted(_password_pieces(url), key=len, reverse=True):
        text = text.replace(piece, _HIDDEN)
    return text
