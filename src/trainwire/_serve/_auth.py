"""Access control for ``trainwire serve``: who may read what (see docs/serve.md, "Access
control").

Without a token everything is open (the server then listens on loopback only). With one,
the API, the event stream and ``/metrics`` want ``Authorization: Bearer <token>``, and the
pages want the session cookie set by the login form. The cookie holds an HMAC of the
token, not the token: it stays valid across restarts of ``serve`` and is revoked by
changing the token. Every comparison is ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

__all__ = ["COOKIE", "Access", "Grant"]

#: The session cookie's name.
COOKIE = "trainwire_session"
#: What the cookie's HMAC signs with the token as its key (one purpose, one value).
_SESSION_PURPOSE = b"trainwire serve session v1"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class Grant:
    """The credentials a request carries: a bearer token and a session cookie (or None)."""

    bearer: str | None = None
    cookie: str | None = None

    @classmethod
    def of(cls, authorization: str | None, cookie_header: str | None) -> Grant:
        """From the ``Authorization`` and ``Cookie`` request headers."""
        bearer = None
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                bearer = value.strip()
        cookie = None
        if cookie_header:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(cookie_header)
            except CookieError:
                jar = SimpleCookie()
            if COOKIE in jar:
                cookie = jar[COOKIE].value
        return cls(bearer, cookie)


@dataclass(frozen=True, repr=False)
class Access:
    """The tokens (never shown: ``repr`` hides them); None means open."""

    token: str | None = None
    metrics_token: str | None = None

    @property
    def required(self) -> bool:
        """True when reading needs the token (the pages show a login form)."""
        return self.token is not None

    def session(self) -> str:
        """The session cookie's value: HMAC-SHA256 of a fixed purpose, keyed by the token."""
        assert self.token is not None, "no token: no session"
        key = self.token.encode("utf-8")
        return hmac.new(key, _SESSION_PURPOSE, hashlib.sha256).hexdigest()

    def password_ok(self, password: str) -> bool:
        """True when the login form's password is the token."""
        return self.token is not None and _same(password, self.token)

    def reads(self, grant: Grant) -> bool:
        """True when ``grant`` may read the pages, the API and the stream."""
        if self.token is None:
            return True
        if grant.bearer is not None and _same(grant.bearer, self.token):
            return True
        return grant.cookie is not None and _same(grant.cookie, self.session())

    def scrapes(self, grant: Grant) -> bool:
        """True when ``grant`` may read ``/metrics``: its own token or the main one."""
        tokens = [t for t in (self.metrics_token, self.token) if t is not None]
        if not tokens:
            return True
        bearer = grant.bearer
        return bearer is not None and any(_same(bearer, token) for token in tokens)

    def __repr__(self) -> str:
        shown = {name: "set" if value else None for name, value in vars(self).items()}
        return f"Access({shown})"
