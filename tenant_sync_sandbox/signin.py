"""The sign-in page: `/{tenant}/oauth2/v2.0/authorize` and `/logout`, as Entra answers them.

`GET` (or a form `POST`) of an authorization request is checked as Entra does: an unknown
tenant or client, or a redirect URI that is not registered, gets an error *page* (never a
redirect: the redirect URI is not trusted); later problems (response_type, scope, PKCE,
prompt=none) are sent back to the redirect URI as `error`/`error_description`. A valid request
renders a small HTML form (no JavaScript): `login` (the userPrincipalName) and `passwd` (needed
only when the seed gives the user a password, or Graph set one). A wrong user or password shows
the form again with Entra's message. On success the browser goes back to the redirect URI with
`code`, `state`, `client_info` and `session_state` (302 for response_mode query or fragment, an
auto-submitting form for form_post).

There is no single sign-on session: every authorization request shows the form, so a test can
sign in as one user and then another; `prompt=none` therefore always answers login_required.
Redirect URIs match exactly, except that for `http://` loopback URIs (localhost, 127.0.0.1,
[::1]) the port is ignored, as Entra does for them (RFC 8252 §7.3).
"""

from __future__ import annotations

import hmac
import html
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .auth import client_info
from .entra import aadsts, find_tenant, tenant_not_found_text, unknown_client_text
from .grants import AuthRequest
from .scopes import ScopeError, parse
from .seed_apps import is_loopback_http
from .state import Client, SandboxState, Tenant

RESPONSE_MODES = ("query", "fragment", "form_post")
PAGE_HEADERS = {
    "Cache-Control": "no-store, no-cache",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
STYLE = """
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;margin:0}
main{max-width:380px;margin:10vh auto;background:#fff;padding:44px;box-shadow:0 2px 6px #0003}
h1{font-size:24px;font-weight:600;margin:0 0 12px}p{margin:0 0 16px}
.small{font-size:13px;color:#555}
label{display:block;font-size:14px;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:6px;font-size:15px}
button{margin-top:20px;padding:6px 24px;background:#0067b8;color:#fff;border:0;font-size:15px}
.error{color:#e81123}code{font-size:12px;word-break:break-all}
"""

WRONG_USER = (
    50034,
    "This username may be incorrect. Make sure you typed it correctly. Otherwise, contact your "
    "admin.",
)
WRONG_PASSWORD = (
    50126,
    "Your account or password is incorrect. If you don't remember your password, reset it now.",
)


def redirect_uri_matches(registered: str, asked: str) -> bool:
    if registered == asked:
        return True
    if not (is_loopback_http(registered) and is_loopback_http(asked)):
        return False
    a, b = urlsplit(registered), urlsplit(asked)
    return (a.hostname or "").lower() == (b.hostname or "").lower() and (a.path, a.query) == (
        b.path,
        b.query,
    )


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>",
        status_code=status,
        headers=PAGE_HEADERS,
    )


def error_page(code: int, description: str, status: int = 400) -> HTMLResponse:
    """Entra's "Sorry, but we're having trouble signing you in" page."""
    return _page(
        "Sign in to your account",
        "<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>"
        f'<p id="error" class="error" role="alert">{html.escape(aadsts(code, description))}</p>'
        f'<p class="small">Error code: <code id="error-code">AADSTS{code}</code></p>',
        status,
    )


def _form(
    tenant: Tenant, client: Client, ctx: str, login: str, message: str | None = None
) -> HTMLResponse:
    error = ""
    if message:
        error = f'<p id="error" class="error" role="alert">{html.escape(message)}</p>'
    action = f"/{tenant.tenant_id}/oauth2/v2.0/authorize"
    return _page(
        "Sign in to your account",
        f"<h1>Sign in</h1><p>to continue to {html.escape(client.display_name)}</p>"
        f'<p class="small">{html.escape(tenant.display_name)} ({html.escape(tenant.domain)}) '
        "· tenant-sync sandbox</p>"
        f"{error}"
        f'<form method="post" action="{html.escape(action)}">'
        f'<input type="hidden" name="ctx" value="{html.escape(ctx)}">'
        '<label for="login">User name</label>'
        f'<input type="text" id="login" name="login" value="{html.escape(login)}" '
        'autocomplete="username" placeholder="someone@example.onmicrosoft.com" required'
        f"{'' if login else ' autofocus'}>"
        '<label for="passwd">Password</label>'
        '<input type="password" id="passwd" name="passwd" autocomplete="current-password"'
        f"{' autofocus' if login else ''}>"
        '<button type="submit" id="submit">Sign in</button></form>',
    )


def _with_params(uri: str, params: dict[str, str], separator: str) -> str:
    if separator == "?" and "?" in uri:
        separator = "&"
    return f"{uri}{separator}{urlencode(params)}"


def respond(request: AuthRequest, params: dict[str, str]) -> Response:
    """Send the answer of an authorization request back to its redirect URI."""
    if request.state is not None:
        params = {**params, "state": request.state}
    if request.response_mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        # Entra posts this form with script; the button is there for browsers without it.
        return _page(
            "Working...",
            f'<form method="post" action="{html.escape(request.redirect_uri)}">{fields}'
            "<p>Signed in. Continue to the application.</p>"
            '<button type="submit" id="continue">Continue</button></form>'
            "<script>document.forms[0].submit()</script>",
        )
    separator = "#" if request.response_mode == "fragment" else "?"
    return RedirectResponse(
        _with_params(request.redirect_uri, params, separator),
        status_code=302,
        headers={"Cache-Control": "no-store"},
    )


def _error_params(error: str, code: int, description: str) -> dict[str, str]:
    return {
        "error": error,
        "error_description": aadsts(code, description),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


async def _params(request: Request) -> dict[str, str]:
    if request.method == "POST":
        raw = (await request.body()).decode("utf-8", errors="replace")
        return dict(parse_qsl(raw, keep_blank_values=True))
    return dict(request.query_params)


async def authorize(state: SandboxState, request: Request) -> Response:
    key = request.path_params["tenant"]
    tenant = find_tenant(state, key)
    if tenant is None:
        return error_page(90002, tenant_not_found_text(key))
    params = await _params(request)
    if request.method == "POST" and "ctx" in params:
        return sign_in(state, tenant, params)
    return _start(state, tenant, params)


def _start(state: SandboxState, tenant: Tenant, params: dict[str, str]) -> Response:
    client_id = params.get("client_id", "").strip()
    if not client_id:
        return error_page(
            900144, "The request body must contain the following parameter: 'client_id'."
        )
    client = tenant.clients.get(client_id)
    if client is None:
        return error_page(700016, unknown_client_text(client_id, tenant))
    if not client.redirect_uris:
        return error_page(
            500113,
            f"No reply address is registered for the application '{client_id}' (give its seed "
            "client 'redirect_uris').",
        )
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        if len(client.redirect_uris) > 1:
            return error_page(
                900144, "The request body must contain the following parameter: 'redirect_uri'."
            )
        redirect_uri = client.redirect_uris[0]
    if not any(redirect_uri_matches(r, redirect_uri) for r in client.redirect_uris):
        return error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the "
            f"redirect URIs configured for the application '{client_id}'. Make sure the "
            "redirect URI sent in the request matches one added to your application in the "
            "Azure portal.",
        )
    mode = params.get("response_mode") or "query"
    asked = AuthRequest(
        tenant_id=tenant.tenant_id,
        client_id=client_id,
        redirect_uri=redirect_uri,
        response_mode=mode if mode in RESPONSE_MODES else "query",
        scope=params.get("scope", ""),
        state=params.get("state"),
        nonce=params.get("nonce"),
        code_challenge=params.get("code_challenge") or None,
        code_challenge_method=params.get("code_challenge_method") or None,
        client_info=params.get("client_info") == "1",
        login_hint=params.get("login_hint", ""),
    )
    problem = _check(tenant, client, asked, params)
    if problem is not None:
        return respond(asked, _error_params(*problem))
    ctx = state.grants.start_signin(asked)
    return _form(tenant, client, ctx, asked.login_hint)


def _check(
    tenant: Tenant, client: Client, asked: AuthRequest, params: dict[str, str]
) -> tuple[str, int, str] | None:
    """What is wrong with an authorization request whose redirect URI is trusted, if anything."""
    response_type = params.get("response_type", "")
    if not response_type:
        return (
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'response_type'.",
        )
    if response_type != "code":
        return (
            "unsupported_response_type",
            700054,
            f"response_type '{response_type}' is not enabled for the application. The sandbox "
            "supports the authorization code flow (response_type=code) only.",
        )
    if (params.get("response_mode") or "query") not in RESPONSE_MODES:
        return (
            "invalid_request",
            9002313,
            "Invalid request. Request is malformed or invalid. response_mode must be query, "
            "fragment or form_post.",
        )
    if not asked.scope.strip():
        return (
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    try:
        parse(tenant, asked.scope, app_only=False)
    except ScopeError as exc:
        return exc.error, exc.code, exc.description
    if asked.code_challenge is not None and asked.code_challenge_method not in (
        None,
        "S256",
        "plain",
    ):
        return (
            "invalid_request",
            9002313,
            "Invalid request. Request is malformed or invalid. code_challenge_method must be "
            "S256 or plain.",
        )
    if client.public and asked.code_challenge is None:
        return (
            "invalid_request",
            9002325,
            "Proof Key for Code Exchange is required for cross-origin authorization code "
            "redemption. A public client must send code_challenge.",
        )
    if params.get("prompt") == "none":
        return (
            "login_required",
            50058,
            "A silent sign-in request was sent but no user is signed in. (The sandbox keeps no "
            "sign-in session.)",
        )
    return None


def sign_in(state: SandboxState, tenant: Tenant, params: dict[str, str]) -> Response:
    ctx = params.get("ctx", "")
    asked = state.grants.signin(ctx)
    if asked is None or asked.tenant_id != tenant.tenant_id:
        return error_page(
            50089,
            "Flow token expired: this sign-in page is too old or unknown (was the sandbox "
            "restarted or reset?). Go back to the application and sign in again.",
        )
    client = tenant.clients.get(asked.client_id)
    if client is None:
        return error_page(700016, unknown_client_text(asked.client_id, tenant))
    login = params.get("login", "").strip()
    password = params.get("passwd", "")
    if not login:
        return _form(tenant, client, ctx, login, "Enter your user name (userPrincipalName).")
    user = tenant.active_user(login)
    if user is None or "@" not in login:
        return _form(tenant, client, ctx, login, WRONG_USER[1])
    expected = tenant.password_of(user["id"])
    if expected is not None:
        if not password:
            return _form(tenant, client, ctx, login, "Please enter your password.")
        if not hmac.compare_digest(password.encode(), expected.encode()):
            return _form(tenant, client, ctx, login, WRONG_PASSWORD[1])
    if user.get("accountEnabled") is False:
        return _form(
            tenant,
            client,
            ctx,
            login,
            "Your account has been locked. Contact your support person to unlock it, then try "
            "again.",
        )
    state.grants.finish_signin(ctx)
    session_id = str(uuid.uuid4())
    answer = {"code": state.grants.issue_code(asked, user["id"], session_id)}
    if asked.client_info:
        answer["client_info"] = client_info(user["id"], tenant.tenant_id)
    answer["session_state"] = session_id
    return respond(asked, answer)


async def logout(state: SandboxState, request: Request) -> Response:
    """Entra's end-session endpoint: back to a registered post_logout_redirect_uri, else a page."""
    key = request.path_params["tenant"]
    tenant = find_tenant(state, key)
    if tenant is None:
        return error_page(90002, tenant_not_found_text(key))
    params = await _params(request)
    target = params.get("post_logout_redirect_uri", "")
    registered = [
        uri
        for client in tenant.clients.values()
        if not params.get("client_id") or client.client_id == params["client_id"]
        for uri in client.redirect_uris
    ]
    if target and any(redirect_uri_matches(r, target) for r in registered):
        extra = {"state": params["state"]} if params.get("state") else {}
        location = _with_params(target, extra, "?") if extra else target
        return RedirectResponse(location, status_code=302)
    return _page(
        "Sign out",
        "<h1>You signed out of your account</h1><p>It's a good idea to close all browser "
        "windows.</p>",
    )
