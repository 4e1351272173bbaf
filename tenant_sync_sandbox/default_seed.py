"""The seed used when the sandbox starts without `--seed`: two partner tenants, ready to sync.

Ids and secrets are fixed so a config file can point at a plain `tenant-sync sandbox serve`.
`operator_service_apps()` is what the contoso tenant (here and in `tenant-sync demo`) holds for
the operator service's sign-in (docs/operator-service.md): the API app `api://tenant-sync` with
its two app roles, the console's app registration, an operator and a reader who can sign in, and
two runbook clients for app-only tokens. These are sandbox credentials, published on purpose.

Contoso (the source) also shows the shapes group and manager sync meet: a Microsoft 365 group,
a dynamic group (`user.department -eq "Sales"`), managers, on-premises extension attributes and
a directory extension property.
"""

from __future__ import annotations

from typing import Any

CONTOSO = "11111111-1111-4111-8111-111111111111"
FABRIKAM = "22222222-2222-4222-8222-222222222222"
CONTOSO_CLIENT = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
# A directory extension registered by an app of Contoso (`extension_{appId without dashes}_{name}`).
COST_CENTER = "extension_aaaaaaaaaaaa4aaa8aaaaaaaaaaaaaaa_costCenter"
FABRIKAM_CLIENT = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"

API_AUDIENCE = "api://tenant-sync"
API_APP_ID = "7a5c0000-0000-4000-8000-000000000001"
API_SCOPE = "access_as_user"
READ_ROLE, OPERATE_ROLE = "TenantSync.Read", "TenantSync.Operate"
CONSOLE_CLIENT = "7a5c0000-0000-4000-8000-000000000002"
CONSOLE_SECRET = "console-demo-secret"
CONSOLE_REDIRECT_URIS = (
    "http://127.0.0.1:8080/auth/callback",  # any port: Entra ignores it on loopback http
    "http://localhost:8080/auth/callback",
)
RUNBOOK_CLIENT = "7a5c0000-0000-4000-8000-000000000003"  # app-only, TenantSync.Operate
RUNBOOK_SECRET = "runbook-demo-secret"
MONITOR_CLIENT = "7a5c0000-0000-4000-8000-000000000004"  # app-only, TenantSync.Read
MONITOR_SECRET = "monitor-demo-secret"
OPERATOR_USER = "7a5c0000-0000-4000-8000-0000000000a1"
OPERATOR_PASSWORD = "operator-demo-password"
READER_USER = "7a5c0000-0000-4000-8000-0000000000a2"
READER_PASSWORD = "reader-demo-password"


def operator_service_apps(domain: str) -> dict[str, list[dict[str, Any]]]:
    """Clients, users and API apps to add to a tenant whose domain is `domain`."""
    org = domain.split(".")[0]
    return {
        "clients": [
            {
                "client_id": CONSOLE_CLIENT,
                "client_secret": CONSOLE_SECRET,
                "display_name": "tenant-sync console",
                "redirect_uris": list(CONSOLE_REDIRECT_URIS),
                "roles": [],
            },
            {
                "client_id": RUNBOOK_CLIENT,
                "client_secret": RUNBOOK_SECRET,
                "display_name": "tenant-sync runbook",
                "roles": [],
            },
            {
                "client_id": MONITOR_CLIENT,
                "client_secret": MONITOR_SECRET,
                "display_name": "tenant-sync monitor",
                "roles": [],
            },
        ],
        "users": [
            {
                "id": OPERATOR_USER,
                "userPrincipalName": f"operator@{domain}",
                "displayName": "Olivia Operator",
                "givenName": "Olivia",
                "surname": "Operator",
                "mail": f"operator@{org}.com",
                "department": "Identity",
                "jobTitle": "Identity operator",
                "password": OPERATOR_PASSWORD,
            },
            {
                "id": READER_USER,
                "userPrincipalName": f"reader@{domain}",
                "displayName": "Rafael Reader",
                "givenName": "Rafael",
                "surname": "Reader",
                "mail": f"reader@{org}.com",
                "department": "Identity",
                "jobTitle": "Auditor",
                "password": READER_PASSWORD,
            },
        ],
        "apis": [
            {
                "app_id": API_APP_ID,
                "identifier_uri": API_AUDIENCE,
                "display_name": "tenant-sync API",
                "app_roles": [READ_ROLE, OPERATE_ROLE],
                "scopes": [API_SCOPE],
                "assignments": [
                    {"principal": OPERATOR_USER, "role": OPERATE_ROLE},
                    {"principal": READER_USER, "role": READ_ROLE},
                    {"principal": RUNBOOK_CLIENT, "role": OPERATE_ROLE},
                    {"principal": MONITOR_CLIENT, "role": READ_ROLE},
                ],
            }
        ],
    }


def default_seed() -> dict[str, Any]:
    users = [
        ("ann", "Ann", "Lee", "Sales"),
        ("bob", "Bob", "Stone", "Sales"),
        ("cyd", "Cyd", "Moreau", "Engineering"),
        ("dee", "Dee", "Okafor", "Finance"),
    ]
    contoso_users = [
        {
            "id": f"c0000000-0000-4000-8000-00000000000{i + 1}",
            "userPrincipalName": f"{nick}@contoso.onmicrosoft.com",
            "displayName": f"{given} {surname}",
            "givenName": given,
            "surname": surname,
            "mail": f"{nick}@contoso.com",
            "department": dept,
            "jobTitle": "Specialist",
            "accountEnabled": True,
            "userType": "Member",
        }
        for i, (nick, given, surname, dept) in enumerate(users)
    ]
    operator = operator_service_apps("contoso.onmicrosoft.com")
    ann, bob, cyd, dee = contoso_users
    for user in (bob, cyd, dee):
        user["manager"] = ann["id"]
    for user, number in ((ann, "E1001"), (bob, "E1002")):
        user["onPremisesExtensionAttributes"] = {"extensionAttribute1": number}
    ann[COST_CENTER] = "CC-100"
    groups = [
        {
            "id": "c1000000-0000-4000-8000-000000000001",
            "displayName": "Sync scope",
            "members": [ann["id"], bob["id"]],
        },
        {
            "id": "c1000000-0000-4000-8000-000000000002",
            "displayName": "Contoso Team",
            "description": "A Microsoft 365 group",
            "mailNickname": "contoso-team",
            "groupTypes": ["Unified"],
            "members": [ann["id"], cyd["id"]],
        },
        {
            "id": "c1000000-0000-4000-8000-000000000003",
            "displayName": "Sales (dynamic)",
            "mailNickname": "sales-dynamic",
            "groupTypes": ["DynamicMembership"],
            "membershipRule": 'user.department -eq "Sales"',
        },
    ]
    return {
        "tenants": [
            {
                "tenant_id": CONTOSO,
                "domain": "contoso.onmicrosoft.com",
                "clients": [
                    {"client_id": CONTOSO_CLIENT, "client_secret": "contoso-secret"},
                    *operator["clients"],
                ],
                "users": contoso_users + operator["users"],
                "apis": operator["apis"],
                "groups": groups,
                "cross_tenant_access": {
                    "partners": [
                        {
                            "tenant_id": FABRIKAM,
                            "inbound_auto_redeem": True,
                            "outbound_auto_redeem": True,
                            "is_sync_allowed": True,
                        }
                    ]
                },
            },
            {
                "tenant_id": FABRIKAM,
                "domain": "fabrikam.onmicrosoft.com",
                "clients": [{"client_id": FABRIKAM_CLIENT, "client_secret": "fabrikam-secret"}],
                "users": [
                    {
                        "id": "f0000000-0000-4000-8000-000000000001",
                        "userPrincipalName": "admin@fabrikam.onmicrosoft.com",
                        "displayName": "Fabrikam Admin",
                        "mail": "admin@fabrikam.com",
                    }
                ],
                "cross_tenant_access": {
                    "partners": [
                        {
                            "tenant_id": CONTOSO,
                            "inbound_auto_redeem": True,
                            "outbound_auto_redeem": True,
                            "is_sync_allowed": True,
                        }
                    ]
                },
            },
        ]
    }
