"""App registrations in a seed: clients (credentials, redirect URIs) and API apps (`apis`).

A client is an app that asks for tokens. It authenticates with a `client_secret` or a
`certificate` (PEM); one with neither but with `redirect_uris` is a *public* client (a native
or single-page app) that signs users in with PKCE. `roles` are the Graph application permissions
its app-only Graph tokens carry. `redirect_uris` follow Entra's rules: `https://` anywhere,
`http://` only on a loopback host (localhost, 127.0.0.1, [::1]), no fragment, no wildcard.

An API app is a registration that exposes an API: tokens for it carry `aud` = its
`identifier_uri` (default `api://{app_id}`), `roles` from `assignments` (of users, groups and
clients of the same tenant to its `app_roles`) and, for users, `scp` from its delegated `scopes`.
Assignment principals may be given by user id, userPrincipalName, group id or client id; the
normalised seed holds object ids (user, group) or client ids.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from .seed_errors import SeedError, guid, warn

GRAPH_RESOURCES = frozenset({"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# The application permissions a client's Graph tokens carry unless its seed lists `roles`.
DEFAULT_ROLES = (
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "User.Invite.All",
    "Directory.ReadWrite.All",
    "Policy.Read.All",
    "Policy.ReadWrite.CrossTenantAccess",  # `check --fix` writes the partner settings
)

_CLIENT_KEYS = {
    "client_id",
    "client_secret",
    "certificate",
    "roles",
    "display_name",
    "redirect_uris",
}
_API_KEYS = {"app_id", "identifier_uri", "display_name", "app_roles", "scopes", "assignments"}


def is_loopback_http(uri: str) -> bool:
    """An `http://` URI on a loopback host: Entra ignores the port of such redirect URIs."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "").lower() in LOOPBACK_HOSTS


def validate_redirect_uri(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SeedError(f"{where} must be a non-empty URI string")
    uri = value.strip()
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise SeedError(f"{where}: {uri!r} is not a valid URI ({exc})") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SeedError(f"{where}: {uri!r} must be an absolute https:// (or loopback http://) URI")
    if parts.scheme == "http" and not is_loopback_http(uri):
        raise SeedError(
            f"{where}: {uri!r} uses http:// on a host that is not loopback; Entra allows "
            "http:// only for localhost, 127.0.0.1 and [::1]"
        )
    if parts.fragment or "#" in uri:
        raise SeedError(f"{where}: {uri!r} must not have a fragment")
    if "*" in uri:
        raise SeedError(f"{where}: {uri!r} must not contain a wildcard")
    return uri


def validate_client(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SeedError(f"{where} must be an object")
    for key in raw:
        if key not in _CLIENT_KEYS and not key.startswith(("$", "_")):
            warn(f"{where} has an unknown key {key!r}; it is ignored")
    cid = raw.get("client_id")
    if not isinstance(cid, str) or not cid.strip():
        raise SeedError(f"{where} is missing 'client_id'")
    secret = raw.get("client_secret")
    cert = raw.get("certificate")
    uris = raw.get("redirect_uris")
    if uris is not None and not isinstance(uris, list):
        raise SeedError(f"{where}.redirect_uris must be a list of URIs")
    redirect_uris = [
        validate_redirect_uri(u, f"{where}.redirect_uris[{k}]") for k, u in enumerate(uris or [])
    ]
    if secret is None and cert is None and not redirect_uris:
        raise SeedError(
            f"{where} needs a 'client_secret' or a 'certificate' (PEM), or 'redirect_uris' "
            "for a public client that signs users in"
        )
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise SeedError(f"{where}.client_secret must be a non-empty string")
    if cert is not None:
        if not isinstance(cert, str):
            raise SeedError(f"{where}.certificate must be a PEM string")
        try:
            x509.load_pem_x509_certificates(cert.encode("utf-8"))
        except ValueError as exc:
            raise SeedError(f"{where}.certificate is not a PEM X.509 certificate: {exc}") from exc
    roles = raw.get("roles", list(DEFAULT_ROLES))
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise SeedError(f"{where}.roles must be a list of permission names")
    display_name = raw.get("display_name", cid.strip())
    if not isinstance(display_name, str) or not display_name.strip():
        raise SeedError(f"{where}.display_name must be a non-empty string")
    return {
        "client_id": cid.strip(),
        "client_secret": secret,
        "certificate": cert,
        "roles": roles,
        "display_name": display_name,
        "redirect_uris": list(dict.fromkeys(redirect_uris)),
    }


def _names(value: Any, where: str, what: str) -> list[str]:
    """A list of role or scope values: non-empty, no spaces, unique (as Entra requires)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedError(f"{where} must be a list of {what}")
    out: list[str] = []
    for k, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or any(ch.isspace() for ch in item):
            raise SeedError(f"{where}[{k}] must be a non-empty {what[:-1]} without spaces")
        if item.startswith("."):
            raise SeedError(f"{where}[{k}]: {item!r} must not start with '.'")
        if item in out:
            raise SeedError(f"{where}[{k}]: {item!r} is listed twice")
        out.append(item)
    return out


def _identifier_uri(value: Any, app_id: str, where: str) -> str:
    if value is None:
        return f"api://{app_id}"
    if not isinstance(value, str) or not value.strip():
        raise SeedError(f"{where} must be a URI such as api://tenant-sync")
    uri = value.strip()
    scheme, colon, rest = uri.partition(":")
    if not colon or not scheme or not rest or any(ch.isspace() for ch in uri):
        raise SeedError(f"{where}: {uri!r} must be a URI such as api://tenant-sync")
    if uri.endswith("/") or "*" in uri or "#" in uri:
        raise SeedError(f"{where}: {uri!r} must not end with '/' or hold '*' or '#'")
    if uri.rstrip("/").lower() in GRAPH_RESOURCES:
        raise SeedError(f"{where}: {uri!r} is Microsoft Graph's own identifier")
    return uri


def _principal_key(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


class Principals:
    """The users, groups and clients of one tenant that API app roles can be assigned to."""

    def __init__(
        self, users: list[dict[str, Any]], groups: list[dict[str, Any]], client_ids: list[str]
    ) -> None:
        self.objects: dict[str, str] = {u["id"]: "user" for u in users}
        self.objects.update({g["id"]: "group" for g in groups})
        self.upns = {str(u["userPrincipalName"]).casefold(): u["id"] for u in users}
        self.clients = set(client_ids)

    def resolve(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise SeedError(
                f"{where} must be a user id or userPrincipalName, a group id or a client id"
            )
        key = _principal_key(value.strip())
        found: set[str] = set()
        if key in self.objects:
            found.add(key)
        if key in self.clients:
            found.add(key)
        upn_id = self.upns.get(value.strip().casefold())
        if upn_id is not None:
            found.add(upn_id)
        if not found:
            raise SeedError(
                f"{where}: {value!r} is not a user (id or userPrincipalName), group or client "
                "of this tenant"
            )
        if len(found) > 1 or (key in self.objects and key in self.clients):
            raise SeedError(f"{where}: {value!r} names more than one principal of this tenant")
        return found.pop()


def validate_apis(raw: Any, where: str, principals: Principals) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SeedError(f"{where} must be a list of API app registrations")
    out: list[dict[str, Any]] = []
    seen: dict[str, str] = {}  # app id or identifier URI (casefolded) -> where it was defined
    for j, item in enumerate(raw):
        at = f"{where}[{j}]"
        api = _api(item, at, principals)
        for name in (api["app_id"], api["identifier_uri"].casefold()):
            if name in seen:
                raise SeedError(f"{at}: {name!r} is already used by {seen[name]}")
            seen[name] = at
        out.append(api)
    return out


def _api(raw: Any, where: str, principals: Principals) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SeedError(f"{where} must be an object")
    for key in raw:
        if key not in _API_KEYS and not key.startswith(("$", "_")):
            warn(f"{where} has an unknown key {key!r}; it is ignored")
    if "app_id" not in raw:
        raise SeedError(f"{where} is missing 'app_id' (the API app registration's GUID)")
    app_id = guid(raw["app_id"], f"{where}.app_id")
    identifier_uri = _identifier_uri(raw.get("identifier_uri"), app_id, f"{where}.identifier_uri")
    display_name = raw.get("display_name", identifier_uri)
    if not isinstance(display_name, str) or not display_name.strip():
        raise SeedError(f"{where}.display_name must be a non-empty string")
    app_roles = _names(raw.get("app_roles"), f"{where}.app_roles", "role values")
    scopes = _names(raw.get("scopes"), f"{where}.scopes", "scope names")
    assignments_raw = raw.get("assignments")
    if assignments_raw is None:
        assignments_raw = []
    if not isinstance(assignments_raw, list):
        raise SeedError(f"{where}.assignments must be a list of {{principal, role}} objects")
    assignments: list[dict[str, str]] = []
    for k, a in enumerate(assignments_raw):
        at = f"{where}.assignments[{k}]"
        if not isinstance(a, dict) or "principal" not in a or "role" not in a:
            raise SeedError(f'{at} must be an object like {{"principal": ID, "role": ROLE}}')
        unknown = sorted(set(a) - {"principal", "role"})
        if unknown:
            raise SeedError(f"{at} has unknown keys {unknown} (only 'principal' and 'role')")
        role = a["role"]
        if role not in app_roles:
            raise SeedError(f"{at}.role {role!r} is not one of this API's app_roles {app_roles}")
        entry = {"principal": principals.resolve(a["principal"], f"{at}.principal"), "role": role}
        if entry not in assignments:
            assignments.append(entry)
    return {
        "app_id": app_id,
        "identifier_uri": identifier_uri,
        "display_name": display_name,
        "app_roles": app_roles,
        "scopes": scopes,
        "assignments": assignments,
    }
