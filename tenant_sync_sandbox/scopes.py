"""Which resource a `scope` parameter asks for, and what a token for it may carry.

`api://tenant-sync/.default`, `{app_id}/.default`, `api://tenant-sync/access_as_user` name a seeded
API app; `https://graph.microsoft.com/.default`, `User.Read` (no resource: Graph) name Graph; the
OpenID scopes (`openid profile email offline_access`) name no resource. One request names at most
one resource (Entra: AADSTS28000); a sign-in asking for OpenID scopes only gets a Graph token, as
with Entra. App-only requests (client credentials) must ask for `{resource}/.default`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .state import ApiApp, Tenant

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCES = frozenset({GRAPH_AUDIENCE, GRAPH_APP_ID, "graph.microsoft.com"})
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
DEFAULT = ".default"


class ScopeError(ValueError):
    def __init__(self, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.code = code
        self.description = description


@dataclass(frozen=True)
class ScopeRequest:
    api: ApiApp | None  # None: Microsoft Graph
    names: tuple[str, ...]  # permissions asked of the resource (".default" or scope names)
    oidc: frozenset[str]  # the OpenID scopes asked for

    @property
    def audience(self) -> str:
        return self.api.identifier_uri if self.api is not None else GRAPH_AUDIENCE

    def delegated(self) -> list[str]:
        """The `scp` values of a user's token: what was asked, or all the API's on .default."""
        if self.api is None:
            names = [n for n in self.names if n != DEFAULT]
            return names or ["User.Read"]
        if DEFAULT in self.names:
            return list(self.api.scopes)
        return [n for n in self.api.scopes if n in self.names]

    def granted(self) -> str:
        """The `scope` of the token response: the resource's granted scopes, then OpenID's."""
        if self.api is None:
            resource = [f"{GRAPH_AUDIENCE}/{n}" for n in self.delegated()]
        else:
            names = self.delegated() or [DEFAULT]
            resource = [f"{self.api.identifier_uri}/{n}" for n in names]
        return " ".join(resource + sorted(self.oidc))


def _split(value: str) -> tuple[str | None, str]:
    """(resource, permission) of one scope value; resource None for a bare Graph permission."""
    if "/" not in value:
        return None, value
    resource, _, name = value.rpartition("/")
    return resource.rstrip("/"), name


def parse(tenant: Tenant, scope: str, *, app_only: bool) -> ScopeRequest:
    values = scope.split()
    oidc = frozenset(v.lower() for v in values if v.lower() in OIDC_SCOPES)
    asked = [v for v in values if v.lower() not in OIDC_SCOPES]
    resources: dict[str, tuple[ApiApp | None, list[str]]] = {}
    for value in asked:
        resource, name = _split(value)
        if resource is None or resource.lower() in GRAPH_RESOURCES:
            resources.setdefault("graph", (None, []))[1].append(name)
            continue
        api = tenant.api(resource)
        if api is None:
            raise ScopeError(
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.domain}. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant. You "
                "might have sent your authentication request to the wrong tenant.",
            )
        resources.setdefault(api.app_id, (api, []))[1].append(name)
    if len(resources) > 1:
        raise ScopeError(
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it contains more "
            f"than one resource. Scope {scope} is not valid.",
        )
    api, names = next(iter(resources.values())) if resources else (None, [])
    if app_only:
        if len(names) != 1 or names[0] != DEFAULT:
            raise ScopeError(
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        return ScopeRequest(api, (DEFAULT,), frozenset())
    if api is not None:
        unknown = [n for n in names if n != DEFAULT and n not in api.scopes]
        if unknown:
            raise ScopeError(
                "invalid_scope",
                650053,
                f"The application asked for scope '{unknown[0]}' that doesn't exist on the "
                f"resource '{api.app_id}' ({api.identifier_uri}). Its scopes: "
                f"{list(api.scopes) or 'none'}.",
            )
        if DEFAULT in names and len(names) > 1:
            raise ScopeError(
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope "
                f"{scope} is not valid: .default cannot be combined with other scopes.",
            )
    return ScopeRequest(api, tuple(names), oidc)
