"""Console sessions and sign-ins in progress, kept server-side in Redis.

The browser holds only a random id in an HttpOnly cookie. Redis holds, under the id's SHA-256
(so a copy of Redis gives nobody a cookie to replay), who signed in (name, kind, roles), the
session's CSRF token and a one-shot message for the next page; it expires `api.session_ttl`
after sign-in, and sign-out deletes it. A sign-in in progress (the MSAL authorization-code flow
with its PKCE verifier, state and nonce, or the CSRF token of the paste-a-token form) is kept
the same way under a second cookie, for ten minutes, and used once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from worker.adapters.state.redis_lib import redis
from worker.api.auth import Principal

PREFIX = "tenant-sync:console"
SIGNIN_TTL = timedelta(minutes=10)
FLASH_TTL = timedelta(minutes=5)
ID_BYTES = 32  # 256 random bits: the session id and every CSRF token


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    """A CSRF token check in constant time; a missing one never matches."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


@dataclass(frozen=True)
class Flash:
    kind: Literal["ok", "error"]
    text: str


@dataclass(frozen=True)
class ConsoleSession:
    """One signed-in browser: who, its CSRF token, how and when it signed in."""

    key: str  # the SHA-256 of the cookie's id: Redis's key, never the id itself
    principal: Principal
    csrf: str
    via: Literal["entra", "token"]
    signed_in_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in started but not finished: its form's CSRF token, where to go afterwards, and
    for Entra ID the MSAL flow (state, nonce, PKCE verifier, redirect URI)."""

    key: str
    csrf: str
    next_path: str
    flow: dict[str, Any] | None


class SessionStore:
    def __init__(self, client: redis.Redis, ttl: timedelta) -> None:
        self.client = client
        self.ttl = ttl

    # sessions -----------------------------------------------------------------------------------
    def create(self, principal: Principal, via: Literal["entra", "token"]) -> tuple[str, str]:
        """A new session for `principal`; returns (cookie id, CSRF token). A fresh id at every
        sign-in, so an id planted before sign-in is worth nothing afterwards."""
        session_id = secrets.token_urlsafe(ID_BYTES)
        csrf = secrets.token_urlsafe(ID_BYTES)
        now = datetime.now(UTC)
        record = {
            "name": principal.name,
            "kind": principal.kind,
            "roles": sorted(principal.roles),
            "csrf": csrf,
            "via": via,
            "signed_in_at": now.isoformat(),
            "expires_at": (now + self.ttl).isoformat(),
        }
        self.client.set(
            self._session_key(digest(session_id)), json.dumps(record), ex=self._seconds(self.ttl)
        )
        return session_id, csrf

    def get(self, session_id: str | None) -> ConsoleSession | None:
        if not session_id or len(session_id) > 200:
            return None
        key = digest(session_id)
        raw = self.client.get(self._session_key(key))
        if raw is None:
            return None
        record: dict[str, Any] = json.loads(cast(bytes, raw))
        return ConsoleSession(
            key=key,
            principal=Principal(
                name=str(record["name"]),
                kind=record["kind"],
                roles=frozenset(record["roles"]),
                via="console",  # the audit trail's "through which door"
            ),
            csrf=str(record["csrf"]),
            via=record["via"],
            signed_in_at=datetime.fromisoformat(record["signed_in_at"]),
            expires_at=datetime.fromisoformat(record["expires_at"]),
        )

    def delete(self, session: ConsoleSession) -> None:
        self.client.delete(self._session_key(session.key), self._flash_key(session.key))

    # one-shot messages --------------------------------------------------------------------------
    def flash(self, session: ConsoleSession, kind: Literal["ok", "error"], text: str) -> None:
        payload = json.dumps({"kind": kind, "text": text})
        self.client.set(self._flash_key(session.key), payload, ex=self._seconds(FLASH_TTL))

    def pop_flash(self, session: ConsoleSession) -> Flash | None:
        raw = self.client.getdel(self._flash_key(session.key))
        if raw is None:
            return None
        data = json.loads(cast(bytes, raw))
        return Flash(kind=data["kind"], text=str(data["text"]))

    # sign-ins in progress -----------------------------------------------------------------------
    def begin_signin(self, next_path: str, flow: dict[str, Any] | None = None) -> tuple[str, str]:
        """Remember a sign-in form or an MSAL flow; returns (cookie id, the form's CSRF token)."""
        pending_id = secrets.token_urlsafe(ID_BYTES)
        csrf = secrets.token_urlsafe(ID_BYTES)
        record = {"csrf": csrf, "next": next_path, "flow": flow}
        self.client.set(
            self._signin_key(digest(pending_id)), json.dumps(record), ex=self._seconds(SIGNIN_TTL)
        )
        return pending_id, csrf

    def pending(self, pending_id: str | None) -> PendingSignIn | None:
        if not pending_id or len(pending_id) > 200:
            return None
        key = digest(pending_id)
        raw = self.client.get(self._signin_key(key))
        if raw is None:
            return None
        record = json.loads(cast(bytes, raw))
        return PendingSignIn(
            key=key, csrf=str(record["csrf"]), next_path=str(record["next"]), flow=record["flow"]
        )

    def take_signin(self, pending_id: str | None) -> PendingSignIn | None:
        """The sign-in in progress, forgotten at once: a code or a form is good for one try."""
        found = self.pending(pending_id)
        if found is not None:
            self.client.delete(self._signin_key(found.key))
        return found

    # keys ---------------------------------------------------------------------------------------
    @staticmethod
    def _session_key(key: str) -> str:
        return f"{PREFIX}:session:{key}"

    @staticmethod
    def _flash_key(key: str) -> str:
        return f"{PREFIX}:flash:{key}"

    @staticmethod
    def _signin_key(key: str) -> str:
        return f"{PREFIX}:signin:{key}"

    @staticmethod
    def _seconds(ttl: timedelta) -> int:
        return max(1, int(ttl.total_seconds()))
