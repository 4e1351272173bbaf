"""Sign-in state between requests: pending sign-ins, authorization codes, refresh tokens.

All in memory and cleared when the sandbox loads a seed (or resets): a code or refresh token of
an earlier directory is simply unknown. Codes are single use and short-lived (Entra's last about
ten minutes); a redeemed code is remembered until it would have expired, so a second
redemption is told "already redeemed" rather than "unknown". Refresh tokens do not expire and
stay valid when a new one is issued, as Entra's do within their lifetime.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_CODE_LIFETIME_S = 600
SIGNIN_LIFETIME_S = 1800  # how long a sign-in page may stay open before it is submitted


@dataclass(frozen=True)
class AuthRequest:
    """A validated `/authorize` request, waiting for the user to sign in."""

    tenant_id: str
    client_id: str
    redirect_uri: str
    response_mode: str  # query | fragment | form_post
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    client_info: bool
    login_hint: str


@dataclass
class AuthCode:
    request: AuthRequest
    user_id: str
    auth_time: int
    session_id: str
    expires: float
    redeemed: bool = False


@dataclass(frozen=True)
class RefreshGrant:
    tenant_id: str
    client_id: str
    user_id: str
    scope: str
    auth_time: int
    session_id: str


@dataclass
class GrantStore:
    code_lifetime_s: int = DEFAULT_CODE_LIFETIME_S
    _signins: dict[str, tuple[AuthRequest, float]] = field(default_factory=dict)
    _codes: dict[str, AuthCode] = field(default_factory=dict)
    _refresh: dict[str, RefreshGrant] = field(default_factory=dict)

    def clear(self) -> None:
        self._signins.clear()
        self._codes.clear()
        self._refresh.clear()

    def _prune(self, now: float) -> None:
        for key in [k for k, (_, exp) in self._signins.items() if exp <= now]:
            del self._signins[key]
        for key in [k for k, c in self._codes.items() if c.expires <= now]:
            del self._codes[key]

    def start_signin(self, request: AuthRequest) -> str:
        """An opaque id for the sign-in page's form (it doubles as its CSRF token)."""
        now = time.time()
        self._prune(now)
        ctx = secrets.token_urlsafe(32)
        self._signins[ctx] = (request, now + SIGNIN_LIFETIME_S)
        return ctx

    def signin(self, ctx: str) -> AuthRequest | None:
        found = self._signins.get(ctx)
        if found is None or found[1] <= time.time():
            return None
        return found[0]

    def finish_signin(self, ctx: str) -> None:
        self._signins.pop(ctx, None)

    def issue_code(self, request: AuthRequest, user_id: str, session_id: str) -> str:
        now = time.time()
        self._prune(now)
        code = "0." + secrets.token_urlsafe(48)
        self._codes[code] = AuthCode(
            request, user_id, int(now), session_id, now + self.code_lifetime_s
        )
        return code

    def redeem_code(self, code: str) -> AuthCode | Literal["redeemed", "expired", "unknown"]:
        """The code's grant, once; then "redeemed"; "expired" past its lifetime."""
        found = self._codes.get(code)
        if found is None:
            return "unknown"
        if found.expires <= time.time():
            return "expired"
        if found.redeemed:
            return "redeemed"
        found.redeemed = True
        return found

    def issue_refresh(self, grant: RefreshGrant) -> str:
        token = "1." + secrets.token_urlsafe(64)
        self._refresh[token] = grant
        return token

    def refresh(self, token: str) -> RefreshGrant | None:
        return self._refresh.get(token)
