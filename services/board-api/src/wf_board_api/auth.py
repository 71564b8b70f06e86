"""Who may drive the board API: the per-install token, the browser session, CSRF and the Host allowlist.

A pure ASGI middleware (the event stream must not be buffered), checking in this order:

1. **Host**: the `Host` header must name this board: 127.0.0.1, localhost, [::1], the configured
   `board.host` (unless it is a wildcard) or one of `board.allowed_hosts`. Anything else is 421.
   A page on another site that makes its own name resolve to 127.0.0.1 (DNS rebinding) sends its
   own name as Host, so it never reaches the API.
2. **Token exchange**: ``GET /?token=…`` or ``GET /ui/…?token=…`` with the right token sets the
   session cookie `wf_session` (HttpOnly, SameSite=Strict) and the readable `wf_csrf` cookie, then
   redirects to the same URL without the token (so it leaves the address bar and the history).
3. **Authentication** of `/api/*`, `/ui/*` (except `/ui/static/*`) and `/mcp`: either
   ``Authorization: Bearer <token>`` (the CLI and scripts), or the `wf_session` cookie (the web
   board). Exempt: `GET /health` and `POST /api/hooks/<name>` (signed per hook: wf_board_api.hooks).
   Without either: 401.
4. **CSRF**, for cookie-authenticated POST/PUT/PATCH/DELETE only: the `X-CSRF-Token` header must
   equal the `wf_csrf` cookie (which is bound to the token by an HMAC), and `Origin` (or, without
   it, `Referer`) must be the board's own origin. A cross-site form can set neither. Otherwise 403.

Tokens are compared in constant time. The cookies never hold the token itself: the session value
is an HMAC of it, so a leaked cookie is not a leaked API token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIE = "wf_session"
CSRF_COOKIE = "wf_csrf"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_PARAM = "token"  # noqa: S105 - the name of a query parameter
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # noqa: S104 - names to leave out, not to bind
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

GETTING_IN = (
    "send `Authorization: Bearer <token>` (the token is in <data dir>/secrets/api-token, or "
    "board.token in config.yaml), or open the board through the URL that `wf url` prints"
)

_SLASHES = re.compile(r"/{2,}")


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuthPolicy:
    token: bytes
    allowed_hosts: frozenset[str]
    # Other origins allowed to write with the session cookie (the CORS origins of a dev UI).
    trusted_origins: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, token: str, board_host: str, extra_hosts: Iterable[str], trusted_origins: Iterable[str] = ()
    ) -> AuthPolicy:
        hosts = {*LOOPBACK_HOSTS, *(h.lower().strip("[]") for h in extra_hosts)}
        if board_host.strip("[]") not in WILDCARD_HOSTS:
            hosts.add(board_host.lower().strip("[]"))
        origins = frozenset(o.rstrip("/").lower() for o in trusted_origins)
        return cls(token=token.encode(), allowed_hosts=frozenset(hosts), trusted_origins=origins)

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(self.token, candidate.encode())

    @property
    def session_value(self) -> str:
        return _mac(self.token, "wf-session")

    def session_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(self.session_value.encode(), candidate.encode())

    def new_csrf(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{_mac(self.token, 'wf-csrf:' + nonce)}"

    def csrf_valid(self, value: str) -> bool:
        nonce, _, mac = value.partition(".")
        return bool(nonce) and hmac.compare_digest(
            _mac(self.token, "wf-csrf:" + nonce).encode(), mac.encode()
        )


def host_of(header: str) -> str | None:
    """The host name of a Host header (port and IPv6 brackets removed, lowercased), None if malformed."""
    value = header.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not re.fullmatch(r":\d{1,5}", value[end + 1 :])):
            return None
        return value[1:end]
    name, colon, port = value.partition(":")
    if colon and not re.fullmatch(r"\d{1,5}", port):
        return None
    return name or None


def _protected(method: str, path: str) -> bool:
    p = _SLASHES.sub("/", path)
    if p == "/health":
        return False
    if p.startswith("/api/hooks/") and method == "POST":
        return False  # a hook delivery: signed with the hook's secret instead (wf_board_api.hooks)
    if p.startswith("/ui/static/"):
        return False
    return any(p == prefix or p.startswith(prefix + "/") for prefix in ("/api", "/ui", "/mcp"))


def _exchange_path(path: str) -> bool:
    """Paths where `?token=` opens a browser session: the root and the web board's pages."""
    p = _SLASHES.sub("/", path)
    return p == "/" or ((p == "/ui" or p.startswith("/ui/")) and not p.startswith("/ui/static/"))


def _cookies(headers: Headers) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for raw in headers.getlist("cookie"):
        try:
            jar.load(raw)
        except CookieError:
            continue
    return {k: m.value for k, m in jar.items()}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, policy: AuthPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        response = self.check(scope)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def check(self, scope: Scope) -> Response | None:
        """The response that refuses this request, or None to let it through."""
        headers = Headers(scope=scope)
        host_header = headers.get("host", "")
        host = host_of(host_header)
        if host is None or host not in self.policy.allowed_hosts:
            return _error(
                421,
                "misdirected",
                f"this board does not answer to the host name {host_header[:100]!r}; if that name is "
                "really this machine, add it to board.allowed_hosts in config.yaml",
            )
        method = scope.get("method", "GET")
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        if method == "GET" and _exchange_path(path) and TOKEN_PARAM in dict(parse_qsl(query)):
            return self._exchange(scope, path, query)
        if not _protected(method, path):
            return None
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and self.policy.token_matches(credentials.strip()):
                return None
            return _error(
                401,
                "unauthorized",
                f"the API token is wrong; {GETTING_IN}",
                {"WWW-Authenticate": 'Bearer realm="workflow-hub", error="invalid_token"'},
            )
        cookies = _cookies(headers)
        session = cookies.get(SESSION_COOKIE)
        if session is None or not self.policy.session_matches(session):
            return _error(
                401,
                "unauthorized",
                f"this request needs the Workflow Hub API token: {GETTING_IN}",
                {"WWW-Authenticate": 'Bearer realm="workflow-hub"'},
            )
        if method in UNSAFE_METHODS:
            return self._csrf(scope, headers, cookies, host_header)
        return None

    def _csrf(
        self, scope: Scope, headers: Headers, cookies: dict[str, str], host_header: str
    ) -> Response | None:
        sent = headers.get(CSRF_HEADER, "")
        cookie = cookies.get(CSRF_COOKIE, "")
        if (
            not sent
            or not hmac.compare_digest(sent.encode(), cookie.encode())
            or not self.policy.csrf_valid(cookie)
        ):
            return _error(
                403,
                "forbidden",
                f"a write with the session cookie needs the {CSRF_HEADER} header equal to the "
                f"{CSRF_COOKIE} cookie (the board's pages send it); scripts use Authorization: Bearer",
            )
        own = f"{scope.get('scheme', 'http')}://{host_header.strip().lower()}"
        origin = headers.get("origin")
        if origin is None and (referer := headers.get("referer")):
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        origin = (origin or "").rstrip("/").lower()
        if origin != own and origin not in self.policy.trusted_origins:
            return _error(
                403,
                "forbidden",
                f"cross-site request refused: its Origin {origin[:100] or '(none)'!r} is not this "
                f"board's own ({own})",
            )
        return None

    def _exchange(self, scope: Scope, path: str, query: str) -> Response:
        params = parse_qsl(query, keep_blank_values=True)
        offered = next((v for k, v in params if k == TOKEN_PARAM), "")
        if not self.policy.token_matches(offered):
            return _error(401, "unauthorized", f"the token in this link is wrong; {GETTING_IN}")
        rest = urlencode([(k, v) for k, v in params if k != TOKEN_PARAM])
        response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
        response.headers["Cache-Control"] = "no-store"
        secure = scope.get("scheme") == "https"
        response.set_cookie(
            SESSION_COOKIE,
            self.policy.session_value,
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        response.set_cookie(
            CSRF_COOKIE, self.policy.new_csrf(), path="/", httponly=False, samesite="strict", secure=secure
        )
        return response
