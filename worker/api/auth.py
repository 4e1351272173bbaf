"""Who is calling: Entra ID access tokens and static bearer tokens, mapped to roles.

Two ways in (docs/operator-service.md, "Who may call"):
- an Entra ID access token of `api.auth.tenant`: RS256, checked against the authority's JWKS
  (signature, issuer, audience `api.auth.audience` or `api.auth.app_id`, expiry); roles from
  its `roles` claim;
- a static token of `api.auth.tokens`: the config holds only its SHA-256.
`TenantSync.Operate` includes everything `TenantSync.Read` allows.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt

from worker.config import ROLE_OPERATE, ROLE_READ, ApiAuthConfig, TenantConfig

from .errors import ApiError, forbidden, unauthorized

ROLES = (ROLE_READ, ROLE_OPERATE)
DISCOVERY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Principal:
    """A caller: a person (UPN), an application (its app id) or a static token (its name)."""

    name: str
    kind: Literal["user", "app", "token"]
    roles: frozenset[str]
    via: Literal["api", "console"] = "api"  # through which door, for the audit trail

    @property
    def can_read(self) -> bool:
        return bool(self.roles & {ROLE_READ, ROLE_OPERATE})

    @property
    def can_operate(self) -> bool:
        return ROLE_OPERATE in self.roles

    def require(self, role: str) -> None:
        allowed = self.can_operate if role == ROLE_OPERATE else self.can_read
        if not allowed:
            raise forbidden(
                f"{self.name} does not have the {role} role"
                + ("" if self.roles else " (the token carries no tenant-sync role)")
            )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class _EntraKeys:
    """The tenant's signing keys and issuer, discovered once and refreshed by PyJWT's cache."""

    def __init__(self, tenant: TenantConfig) -> None:
        self._tenant = tenant
        self._lock = threading.Lock()
        self._client: jwt.PyJWKClient | None = None
        self.issuers: tuple[str, ...] = ()

    @property
    def authority(self) -> str:
        return f"{self._tenant.authority_host}/{self._tenant.tenant_id}"

    def _ssl(self) -> ssl.SSLContext:
        if self._tenant.ca_bundle is not None:
            return ssl.create_default_context(cafile=str(self._tenant.ca_bundle))
        return ssl.create_default_context()

    def client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                url = f"{self.authority}/v2.0/.well-known/openid-configuration"
                try:
                    response = httpx.get(url, verify=self._ssl(), timeout=DISCOVERY_TIMEOUT_S)
                    response.raise_for_status()
                    document: dict[str, Any] = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise ApiError(
                        503,
                        "ServiceUnavailable",
                        f"cannot reach the sign-in authority {self._tenant.authority_host} "
                        f"to check the token: {exc.__class__.__name__}",
                    ) from None
                # v2.0 tokens name the discovery issuer; v1.0 ones (an API registration without
                # accessTokenAcceptedVersion 2) name sts.windows.net: both are this tenant's.
                self.issuers = (
                    str(document.get("issuer", "")).replace("{tenantid}", self._tenant.tenant_id),
                    f"https://sts.windows.net/{self._tenant.tenant_id}/",
                )
                self._client = jwt.PyJWKClient(
                    str(document["jwks_uri"]),
                    cache_keys=True,
                    ssl_context=self._ssl(),
                    timeout=DISCOVERY_TIMEOUT_S,
                )
            return self._client


class Authenticator:
    """Turns a bearer token into a Principal, or refuses it with a 401."""

    def __init__(self, auth: ApiAuthConfig, tenant: TenantConfig | None) -> None:
        self._auth = auth
        self._keys = _EntraKeys(tenant) if auth.entra and tenant is not None else None

    @property
    def entra(self) -> bool:
        return self._keys is not None

    def from_header(self, header: str | None) -> Principal:
        if not header:
            raise unauthorized("Access token is empty: send Authorization: Bearer <token>.")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("The Authorization header must be 'Bearer <token>'.")
        return self.from_token(token.strip())

    def from_token(self, token: str) -> Principal:
        principal = self._static(token)
        if principal is not None:
            return principal
        if token.count(".") == 2 and self._keys is not None:
            return self._entra(token)
        raise unauthorized("Access token validation failure: the token matches no known token.")

    def _static(self, token: str) -> Principal | None:
        digest = token_digest(token)
        found = None
        for entry in self._auth.tokens:
            # Compare every entry in constant time, so timing does not tell which digest is near.
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        if found is None:
            return None
        return Principal(name=found.name, kind="token", roles=frozenset({found.role}))

    def _entra(self, token: str) -> Principal:
        assert self._keys is not None
        keys = self._keys.client()
        try:
            key = keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self._auth.audiences,
                leeway=self._auth.clock_skew,
                options={"require": ["exp", "iss", "aud"], "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("Access token has expired or is not yet valid.") from None
        except jwt.InvalidAudienceError:
            raise unauthorized(
                "Access token validation failure: invalid audience (expected "
                f"{' or '.join(self._auth.audiences)})."
            ) from None
        except jwt.PyJWKClientConnectionError:
            raise ApiError(
                503, "ServiceUnavailable", "cannot fetch the sign-in authority's signing keys"
            ) from None
        except jwt.PyJWTError as exc:
            raise unauthorized(f"Access token validation failure: {exc}.") from None
        if claims.get("iss") not in self._keys.issuers:
            raise unauthorized("Access token validation failure: invalid issuer.")
        roles = frozenset(r for r in claims.get("roles") or () if r in ROLES)
        user = claims.get("preferred_username") or claims.get("upn") or claims.get("unique_name")
        if user:
            return Principal(name=str(user), kind="user", roles=roles)
        app = claims.get("azp") or claims.get("appid") or claims.get("oid") or "unknown"
        return Principal(name=f"app:{app}", kind="app", roles=roles)
