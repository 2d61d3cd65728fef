"""Who may use the dashboard, and what every response says to the browser about itself.

Two modes, as Jupyter has them. Bound to 127.0.0.1 (the default), pages need no token, but the Host
header must name that address (a DNS-rebinding page cannot read them) and every state-changing
request still needs the session token, which the server hands out as a SameSite=Strict, HttpOnly
cookie with its pages, and a CSRF token, which only its pages carry: another site's form can send
neither. Bound elsewhere (`--host`), every request needs the printed token: as `?token=` once (it
becomes the cookie, and the URL is redirected without it), the cookie, or `Authorization: token T`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# same-origin, not no-referrer: with no referrer at all Chromium sends `Origin: null` on the pages' own
# form posts, and the Origin check below could not tell them from another site's
# scripts, styles, pictures and connections from this server only: a name or log line that slipped
# past the escaping could still run nothing (no inline script, no other origin)
POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
          "frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", POLICY.encode()), (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin"),
           (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-resource-policy", b"same-origin")]
SAFE_METHODS = ("GET", "HEAD")


@dataclass
class Access:
    """The session's secrets and what a request must show. `hosts`: the Host header values a page
    may be asked for under (None: any, when a token guards everything)."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_required: bool = False
    hosts: frozenset[str] | None = None
    cookie: str = "launch_ui"

    @property
    def csrf(self) -> str:
        """What the pages' forms carry: derived from the token, so it needs no storage of its own."""
        return hmac.new(self.token.encode(), b"launch-ui-csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.csrf.encode())

    def token_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.token.encode())


class Guard:
    """ASGI middleware in front of the whole app: the token and Host checks, the CSP and other
    headers on every response (static files and event streams too)."""

    def __init__(self, app: App, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        method = scope["method"]
        from_cookie = _cookie(headers.get("cookie", ""), self.access.cookie)
        # any one will do: a cookie left by an earlier server on this port must not hide the new URL's token
        presented = (from_cookie, _authorization(headers.get("authorization", "")), query.get("token"))
        refusal = self._refusal(method, headers, any(self.access.token_ok(p) for p in presented))
        if refusal:
            await _plain(send, 403, refusal)
            return
        if "token" in query and method in SAFE_METHODS:  # the printed URL: keep the token in a cookie, not the URL
            rest = urlencode([(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                           keep_blank_values=True) if k != "token"])
            await _redirect(send, quote(scope["path"]) + (f"?{rest}" if rest else ""), self._set_cookie())
            return
        give_cookie = not self.access.token_ok(from_cookie) and method in SAFE_METHODS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if not scope["path"].startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                if give_cookie:
                    extra.append((b"set-cookie", self._set_cookie()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, method: str, headers: dict[str, str], authorized: bool) -> str | None:
        """Why this request is refused (403), or None. `authorized`: it showed the session token."""
        access = self.access
        if access.hosts is not None and headers.get("host", "") not in access.hosts:
            return "unexpected Host header: open the dashboard at the address `launch ui` printed"
        if access.token_required and not authorized:
            return "this dashboard needs its token: open the URL `launch ui` printed (it ends in ?token=...)"
        if method not in SAFE_METHODS:
            if not authorized:
                return "a change needs the dashboard's session token: reload the page and try again"
            if headers.get("sec-fetch-site") == "cross-site":
                return "a change must come from the dashboard's own pages"
            origin = headers.get("origin")
            if origin and origin.split("://", 1)[-1] != headers.get("host"):
                return "a change must come from the dashboard's own pages (Origin differs)"
        return None

    def _set_cookie(self) -> bytes:
        return (f"{self.access.cookie}={self.access.token}; Path=/; HttpOnly; SameSite=Strict").encode()


def _cookie(header: str, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header carries no token
        return None
    found = jar.get(name)
    return found.value if found else None


def _authorization(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "token" and value.strip() else None


async def _plain(send: Send, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *HEADERS]})
    await send({"type": "http.response.body", "body": text.encode()})


async def _redirect(send: Send, location: str, cookie: bytes) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie), *HEADERS]})
    await send({"type": "http.response.body", "body": b""})
