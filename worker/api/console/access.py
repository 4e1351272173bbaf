"""Signing in and out of the console.

With `api.auth.client_id`, people sign in with Entra ID (authorization code + PKCE through
MSAL, see signin.py); with static tokens only, they paste a token. Either way the token is
checked by the API's Authenticator, never stored: the session keeps who it named and their
roles. Tokens, codes and cookies are never logged nor put in a page.
"""

from __future__ import annotations

from typing import Literal

import structlog
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.api.app import services
from worker.api.auth import Principal
from worker.api.errors import ApiError
from worker.config import ROLE_OPERATE, ROLE_READ

from .sessions import SIGNIN_TTL, ConsoleSession, same_token
from .signin import SignInFailed
from .web import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Console,
    ConsoleRoute,
    PageError,
    console,
    form_session,
    safe_next,
)

log = structlog.get_logger("tenant_sync.console")
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
SIGNIN_TTL_S = int(SIGNIN_TTL.total_seconds())


def _signin_page(
    request: Request,
    next_path: str,
    *,
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> HTMLResponse:
    """The sign-in page; the paste-a-token form gets a fresh CSRF token each time it is shown."""
    c = console(request)
    context: dict[str, object] = {
        "next": next_path,
        "entra": c.entra is not None,
        "entra_tokens": services(request).authenticator.entra,
        "error": error,
        "notice": notice,
        "form_csrf": "",
    }
    pending_id = None
    if c.entra is None:
        pending_id, context["form_csrf"] = c.sessions.begin_signin(next_path)
    response = c.render(request, "signin.html", context, status=status)
    if pending_id is not None:
        c.set_cookie(request, response, SIGNIN_COOKIE, pending_id, SIGNIN_TTL_S)
    return response


def _signed_in(
    c: Console,
    request: Request,
    who: Principal,
    via: Literal["entra", "token"],
    next_path: str,
) -> Response:
    if not who.can_read:
        log.warning("console sign-in refused", user=who.name, via=via, reason="no role")
        raise PageError(
            403,
            f"You are signed in as {who.name}, who has no tenant-sync role: ask an administrator "
            f"to assign {ROLE_READ} (to look) or {ROLE_OPERATE} (to operate).",
            "No access",
        )
    session_id, _ = c.sessions.create(who, via)
    log.info(
        "console sign-in", user=who.name, via=via, role="operate" if who.can_operate else "read"
    )
    response = RedirectResponse(safe_next(next_path), status_code=303)
    c.set_cookie(
        request,
        response,
        SESSION_COOKIE,
        session_id,
        int(c.sessions.ttl.total_seconds()),
    )
    c.clear_cookie(request, response, SIGNIN_COOKIE)
    return response


@router.get("/signin")
def signin_page(request: Request, next: str = "/", signed_out: bool = False) -> Response:
    c = console(request)
    if c.session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _signin_page(
        request, safe_next(next), notice="You are signed out." if signed_out else ""
    )


@router.post("/signin")
def signin_with_token(
    request: Request,
    token: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """The paste-a-token form (static tokens, or an access token when the console has no app
    registration of its own)."""
    c = console(request)
    pending = c.sessions.take_signin(request.cookies.get(c.cookie_name(request, SIGNIN_COOKIE)))
    if pending is None or not same_token(pending.csrf, csrf):
        raise PageError(
            403,
            "This sign-in form has expired or was not sent from this console's sign-in page "
            "(its CSRF token is missing or wrong): open the sign-in page again.",
            "Request refused",
        )
    if not token.strip():
        return _signin_page(request, pending.next_path, error="Paste a token.", status=400)
    try:
        who = services(request).authenticator.from_token(token.strip())
    except ApiError as exc:
        log.warning("console sign-in refused", via="token", reason=exc.code)
        return _signin_page(
            request,
            pending.next_path,
            error=f"That token was not accepted: {exc.message}",
            status=exc.status,
        )
    return _signed_in(c, request, who, "token", pending.next_path)


@router.get("/auth/start")
def start_entra_signin(request: Request, next: str = "/") -> Response:
    """Off to Entra ID's authorize page, with state, nonce and a PKCE challenge."""
    c = console(request)
    if c.entra is None:
        return RedirectResponse("/signin", status_code=303)
    try:
        flow = c.entra.begin(f"{c.base_url(request)}/auth/callback")
    except SignInFailed as exc:
        raise PageError(503, f"Cannot start the sign-in: {exc}.", "Sign-in unavailable") from None
    pending_id, _ = c.sessions.begin_signin(safe_next(next), flow)
    response = RedirectResponse(str(flow["auth_uri"]), status_code=303)
    c.set_cookie(request, response, SIGNIN_COOKIE, pending_id, SIGNIN_TTL_S)
    return response


@router.get("/auth/callback")
def finish_entra_signin(request: Request) -> Response:
    """Entra ID sends the browser back here with a code (or an error) and the state."""
    c = console(request)
    pending = c.sessions.take_signin(request.cookies.get(c.cookie_name(request, SIGNIN_COOKIE)))
    if c.entra is None or pending is None or pending.flow is None:
        return _signin_page(
            request,
            "/",
            error="This sign-in has expired or was started in another browser: sign in again.",
            status=400,
        )
    try:
        token = c.entra.complete(pending.flow, dict(request.query_params))
        who = services(request).authenticator.from_token(token)
    except SignInFailed as exc:
        log.warning("console sign-in refused", via="entra", reason=str(exc).split(":")[0])
        return _signin_page(
            request, pending.next_path, error=f"The sign-in failed: {exc}.", status=401
        )
    except ApiError as exc:
        log.warning("console sign-in refused", via="entra", reason=exc.code)
        return _signin_page(
            request,
            pending.next_path,
            error=f"The access token was not accepted: {exc.message}",
            status=exc.status,
        )
    return _signed_in(c, request, who, "entra", pending.next_path)


@router.post("/signout")
def signout(request: Request, session: ConsoleSession = Depends(form_session)) -> Response:
    c = console(request)
    c.sessions.delete(session)
    log.info("console sign-out", user=session.principal.name)
    response = RedirectResponse("/signin?signed_out=true", status_code=303)
    c.clear_cookie(request, response, SESSION_COOKIE)
    return response
