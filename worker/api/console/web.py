"""The console's plumbing: its per-process state, cookies, who is signed in, CSRF, rendering.

Pages are plain FastAPI routes of `ConsoleRoute`, which turns refusals into HTML pages (the API's
routes keep Graph's JSON errors) and a missing session into a redirect to the sign-in page.
Every form carries the session's CSRF token in a hidden field; `form_session` checks it on
every POST before anything else happens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from worker.adapters.state.redis_lib import redis
from worker.api.app import Services, services
from worker.api.auth import Principal
from worker.api.errors import ApiError
from worker.config import ROLE_OPERATE
from worker.domain.errors import SyncError

from .sessions import ConsoleSession, SessionStore, same_token
from .signin import EntraSignIn

HERE = Path(__file__).parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Browsers keep Secure cookies from these over plain http (checked in Chromium; see
# docs/console.md), so a console on loopback gets the same cookies as one behind TLS.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
SESSION_COOKIE = "tenant-sync-session"
SIGNIN_COOKIE = "tenant-sync-signin"
# No inline script or style anywhere: the console's own files only, and nobody may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No (live) session: the browser is sent to the sign-in page, and back afterwards."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """A refusal shown as a page: its status, a title and a sentence for the reader."""

    def __init__(self, status: int, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title or {
            400: "Bad request",
            403: "Not allowed",
            404: "Not found",
            409: "Refused",
        }.get(status, "Error")


def safe_next(path: str | None) -> str:
    """Where to go after sign-in: a path of this site only (never `//host` or a full URL)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return "/"
    return path


def path_segment(value: Any) -> str:
    return quote(str(value), safe="")


class Console:
    """What the console keeps per process: its sessions, the Entra sign-in, its templates."""

    def __init__(self, svc: Services) -> None:
        self.services = svc
        config = svc.config
        self.sessions = SessionStore(svc.runtime.redis, config.api.session_ttl)
        auth = config.api.auth
        tenant = config.tenants.get(auth.tenant or "")
        self.entra: EntraSignIn | None = (
            EntraSignIn(auth, tenant) if auth.client_id and tenant is not None else None
        )
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["seg"] = path_segment
        from . import formatting

        formatting.install(self.templates.env)

    # where we are -------------------------------------------------------------------------------
    def base_url(self, request: Request) -> str:
        public = self.services.config.api.public_url
        return public or str(request.base_url).rstrip("/")

    def secure(self, request: Request) -> bool:
        """Cookies are Secure when people reach the console over https, and on loopback."""
        base = self.base_url(request)
        return base.startswith("https://") or urlsplit(base).hostname in LOOPBACK_HOSTS

    def cookie_name(self, request: Request, name: str) -> str:
        # `__Host-`: the browser refuses it unless Secure, Path=/ and without Domain, so no
        # other host and no plain-http page of ours can set or shadow it.
        return f"__Host-{name}" if self.secure(request) else name

    def set_cookie(
        self, request: Request, response: Response, name: str, value: str, max_age: int
    ) -> None:
        response.set_cookie(
            self.cookie_name(request, name),
            value,
            max_age=max_age,
            path="/",
            secure=self.secure(request),
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, request: Request, response: Response, name: str) -> None:
        response.delete_cookie(
            self.cookie_name(request, name),
            path="/",
            secure=self.secure(request),
            httponly=True,
            samesite="lax",
        )

    # who is there -------------------------------------------------------------------------------
    def session(self, request: Request) -> ConsoleSession | None:
        if not hasattr(request.state, "console_session"):
            cookie = request.cookies.get(self.cookie_name(request, SESSION_COOKIE))
            request.state.console_session = self.sessions.get(cookie)
        found: ConsoleSession | None = request.state.console_session
        return found

    def principal(self, request: Request) -> Principal | None:
        """The hook `app.principal` asks when a request has no Authorization header: the
        session's principal for reads; for a write, only with the session's CSRF token in an
        `X-CSRF-Token` header (a cookie alone never changes anything)."""
        session = self.session(request)
        if session is None:
            return None
        if request.method in SAFE_METHODS or same_token(
            session.csrf, request.headers.get("x-csrf-token")
        ):
            return session.principal
        return None

    # pages --------------------------------------------------------------------------------------
    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        session: ConsoleSession | None = None,
        anonymous: bool = False,
    ) -> HTMLResponse:
        """`template` with what every page shows (who is signed in, their CSRF token, the
        one-shot message); `anonymous` for a page that must not touch Redis."""
        if not anonymous:
            session = session or self.session(request)
        config = self.services.config
        page: dict[str, Any] = {
            "me": session.principal if session else None,
            "session": session,
            "csrf": session.csrf if session else "",
            "can_operate": bool(session and session.principal.can_operate),
            "flash": self.sessions.pop_flash(session) if session and not anonymous else None,
            "job_names": sorted(config.jobs),
            "plain_http": not self.secure(request),
            "nav": "",
        }
        page.update(context or {})
        response = self.templates.TemplateResponse(
            request, template, page, status_code=status, headers=SECURITY_HEADERS
        )
        return response


_lock = threading.Lock()


def console(request: Request) -> Console:
    state = request.app.state
    with _lock:
        if getattr(state, "console", None) is None:
            state.console = Console(services(request))
    found: Console = state.console
    return found


def signed_in(request: Request) -> ConsoleSession:
    """The dependency of every page: the session, or off to the sign-in page."""
    session = console(request).session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target if request.method == "GET" else "/")
    return session


async def form_session(request: Request) -> ConsoleSession:
    """The dependency of every form: a session, and the form's CSRF token must be its own.
    A missing or wrong token is a 403 and nothing is done."""
    session = signed_in(request)
    form = await request.form()
    given = form.get("csrf")
    if not isinstance(given, str) or not same_token(session.csrf, given):
        raise PageError(
            403,
            "This form was not sent from a page of this console (its CSRF token is missing or "
            "wrong), so nothing was done. Reload the page and try again.",
            "Request refused",
        )
    return session


async def operator_form(request: Request) -> ConsoleSession:
    session = await form_session(request)
    if not session.principal.can_operate:
        raise PageError(
            403,
            f"{session.principal.name} may look but not operate: this needs the "
            f"{ROLE_OPERATE} role. Nothing was done.",
        )
    return session


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return console(request).render(
        request, "error.html", {"title": title, "message": message}, status=status
    )


class ConsoleRoute(APIRoute):
    """A console route: refusals become HTML pages, no session a redirect to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                return RedirectResponse(
                    "/signin?next=" + quote(safe_next(exc.next_path), safe=""), status_code=303
                )
            except PageError as exc:
                return error_page(request, exc.status, exc.title, exc.message)
            except ApiError as exc:
                return error_page(request, exc.status, PageError(exc.status, "").title, exc.message)
            except redis.RedisError as exc:
                # Sessions live in Redis: without it nobody can be told apart, so no page.
                return console(request).render(
                    request,
                    "error.html",
                    {
                        "title": "Unavailable",
                        "message": "The console cannot reach its Redis server "
                        f"({exc.__class__.__name__}); try again in a moment.",
                    },
                    status=503,
                    anonymous=True,
                )
            except SyncError as exc:
                # SQL or Redis failing under a page: say so (the error names no secret).
                return error_page(request, 503, "Unavailable", f"{exc}")
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in exc.errors()
                )
                return error_page(request, 400, "Bad request", f"Invalid request: {problems}")

        return route
