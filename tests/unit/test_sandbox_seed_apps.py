"""Seed app registrations: API apps, assignments, redirect URIs, passwords; scope parsing."""

from __future__ import annotations

from typing import Any

import pytest

from tenant_sync_sandbox.default_seed import default_seed
from tenant_sync_sandbox.scopes import ScopeError, parse
from tenant_sync_sandbox.seed import SeedError, validate_seed
from tenant_sync_sandbox.signin import redirect_uri_matches
from tenant_sync_sandbox.state import SandboxState

pytestmark = pytest.mark.unit

TID = "0b1c2d3e-0000-4000-8000-000000000001"
APP = "0b1c2d3e-0000-4000-8000-0000000000a1"
ANN = "0b1c2d3e-0000-4000-8000-0000000000f1"
GROUP = "0b1c2d3e-0000-4000-8000-0000000000e1"


def api(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "app_id": APP,
        "identifier_uri": "api://tenant-sync",
        "app_roles": ["TenantSync.Read", "TenantSync.Operate"],
        "assignments": [{"principal": "ann@contoso.onmicrosoft.com", "role": "TenantSync.Read"}],
    }
    base.update(over)
    return base


def seed(apis: Any = None, clients: Any = None, **user: Any) -> dict[str, Any]:
    tenant: dict[str, Any] = {
        "tenant_id": TID,
        "domain": "contoso.onmicrosoft.com",
        "clients": clients
        if clients is not None
        else [{"client_id": "c1", "client_secret": "s", "redirect_uris": ["https://x.test/cb"]}],
        "users": [{"id": ANN, "userPrincipalName": "ann@contoso.onmicrosoft.com", **user}],
        "groups": [{"id": GROUP, "members": [ANN]}],
    }
    if apis is not None:
        tenant["apis"] = apis
    return {"tenants": [tenant]}


def test_api_apps_are_normalised() -> None:
    apis = [
        api(
            assignments=[
                {"principal": "ANN@contoso.onmicrosoft.com", "role": "TenantSync.Read"},
                {"principal": GROUP.upper(), "role": "TenantSync.Operate"},
                {"principal": "c1", "role": "TenantSync.Operate"},
            ]
        ),
        {"app_id": "0b1c2d3e-0000-4000-8000-0000000000a2"},
    ]
    tenant = validate_seed(seed(apis))["tenants"][0]
    first, second = tenant["apis"]
    assert first["assignments"] == [
        {"principal": ANN, "role": "TenantSync.Read"},
        {"principal": GROUP, "role": "TenantSync.Operate"},
        {"principal": "c1", "role": "TenantSync.Operate"},
    ]
    assert first["scopes"] == []
    assert second["identifier_uri"] == "api://0b1c2d3e-0000-4000-8000-0000000000a2"
    assert second["app_roles"] == []
    assert second["assignments"] == []


def test_seeds_without_apps_stay_valid() -> None:
    tenant = validate_seed(seed(clients=[{"client_id": "c1", "client_secret": "s"}]))["tenants"][0]
    assert tenant["apis"] == []
    assert tenant["clients"][0]["redirect_uris"] == []


def test_a_public_client_needs_only_redirect_uris() -> None:
    clients = [{"client_id": "spa", "redirect_uris": ["http://localhost:3000/cb"]}]
    state = SandboxState(validate_seed(seed(clients=clients)))
    assert state.tenants[TID].clients["spa"].public


def test_passwords_stay_out_of_the_directory() -> None:
    state = SandboxState(validate_seed(seed(password="pw")))
    tenant = state.tenants[TID]
    assert "password" not in tenant.users[ANN]
    assert tenant.password_of(ANN) == "pw"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (seed(apis={"app_id": APP}), "tenants[0].apis must be a list"),
        (seed(apis=[{"identifier_uri": "api://x"}]), "tenants[0].apis[0] is missing 'app_id'"),
        (seed(apis=[api(app_id="tenant-sync")]), "tenants[0].apis[0].app_id must be a GUID"),
        (seed(apis=[api(identifier_uri="tenant-sync")]), "must be a URI such as api://"),
        (seed(apis=[api(identifier_uri="api://x/")]), "must not end with '/'"),
        (
            seed(apis=[api(identifier_uri="https://graph.microsoft.com")]),
            "Microsoft Graph's own identifier",
        ),
        (
            seed(apis=[api(), api(app_id="0b1c2d3e-0000-4000-8000-0000000000a2")]),
            "tenants[0].apis[1]: 'api://tenant-sync' is already used by tenants[0].apis[0]",
        ),
        (seed(apis=[api(app_roles=["Tenant Sync"])]), "app_roles[0] must be a non-empty role"),
        (seed(apis=[api(app_roles=["A", "A"])]), "app_roles[1]: 'A' is listed twice"),
        (seed(apis=[api(scopes=[".default"])]), "scopes[0]: '.default' must not start with '.'"),
        (
            seed(apis=[api(assignments=[{"principal": ANN, "role": "Admin"}])]),
            "assignments[0].role 'Admin' is not one of this API's app_roles",
        ),
        (
            seed(
                apis=[
                    api(
                        assignments=[
                            {"principal": "bob@contoso.onmicrosoft.com", "role": "TenantSync.Read"}
                        ]
                    )
                ]
            ),
            "tenants[0].apis[0].assignments[0].principal: 'bob@contoso.onmicrosoft.com' is not a "
            "user (id or userPrincipalName), group or client of this tenant",
        ),
        (seed(apis=[api(assignments=["ann"])]), 'must be an object like {"principal"'),
        (
            seed(apis=[api(assignments=[{"principal": ANN, "role": "TenantSync.Read", "x": 1}])]),
            "unknown keys ['x']",
        ),
        (
            seed(clients=[{"client_id": "c", "redirect_uris": "https://x.test/cb"}]),
            "clients[0].redirect_uris must be a list",
        ),
        (
            seed(clients=[{"client_id": "c", "redirect_uris": ["http://app.example/cb"]}]),
            "uses http:// on a host that is not loopback",
        ),
        (
            seed(clients=[{"client_id": "c", "redirect_uris": ["https://x.test/cb#top"]}]),
            "must not have a fragment",
        ),
        (
            seed(clients=[{"client_id": "c", "redirect_uris": ["/auth/callback"]}]),
            "clients[0].redirect_uris[0]: '/auth/callback' must be an absolute https://",
        ),
        (
            seed(clients=[{"client_id": "c", "redirect_uris": ["https://*.x.test/cb"]}]),
            "must not contain a wildcard",
        ),
        (seed(clients=[{"client_id": "c"}]), "or 'redirect_uris' for a public client"),
        (seed(password=""), "tenants[0].users[0].password must be a non-empty string"),
    ],
)
def test_bad_app_registrations(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SeedError) as info:
        validate_seed(data)
    assert fragment in str(info.value)


def test_loopback_redirect_uris_ignore_the_port() -> None:
    registered = "http://127.0.0.1:8080/auth/callback"
    assert redirect_uri_matches(registered, "http://127.0.0.1:49152/auth/callback")
    assert redirect_uri_matches(registered, "http://127.0.0.1/auth/callback")
    assert not redirect_uri_matches(registered, "http://127.0.0.1:8080/auth/other")
    assert not redirect_uri_matches(registered, "http://localhost:8080/auth/callback")
    https = "https://sync.contoso.test/auth/callback"
    assert not redirect_uri_matches(https, "https://sync.contoso.test:8443/auth/callback")


def test_scope_parsing() -> None:
    state = SandboxState(validate_seed(seed([api(scopes=["access_as_user"])])))
    tenant = state.tenants[TID]
    asked = parse(
        tenant, "api://TENANT-SYNC/.default openid profile offline_access", app_only=False
    )
    assert asked.audience == "api://tenant-sync"
    assert asked.delegated() == ["access_as_user"]
    assert asked.oidc == {"openid", "profile", "offline_access"}
    assert parse(tenant, f"{APP}/.default", app_only=True).audience == "api://tenant-sync"
    assert parse(tenant, "openid profile", app_only=False).audience == "https://graph.microsoft.com"
    for scope, app_only, code in (
        ("api://tenant-sync/.default https://graph.microsoft.com/.default", False, 28000),
        ("api://other/.default", True, 500011),
        ("api://tenant-sync/access_as_user", True, 1002012),
        ("api://tenant-sync/nope", False, 650053),
    ):
        with pytest.raises(ScopeError) as info:
            parse(tenant, scope, app_only=app_only)
        assert info.value.code == code, scope


def test_the_default_seed_has_the_operator_service_apps() -> None:
    state = SandboxState(validate_seed(default_seed()))
    contoso = next(t for t in state.tenants.values() if t.domain == "contoso.onmicrosoft.com")
    tenant_sync = contoso.api("api://tenant-sync")
    assert tenant_sync is not None
    operator = contoso.active_user("operator@contoso.onmicrosoft.com")
    reader = contoso.active_user("reader@contoso.onmicrosoft.com")
    assert operator is not None
    assert reader is not None
    assert tenant_sync.roles_of({operator["id"]}) == ["TenantSync.Operate"]
    assert tenant_sync.roles_of({reader["id"]}) == ["TenantSync.Read"]
    console = contoso.clients["7a5c0000-0000-4000-8000-000000000002"]
    assert "http://127.0.0.1:8080/auth/callback" in console.redirect_uris
