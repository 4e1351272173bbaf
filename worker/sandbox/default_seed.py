"""The seed used when the sandbox starts without `--seed`: two partner tenants, ready to sync.

Ids and secrets are fixed so a config file can point at a plain `tenant-sync sandbox serve`.
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
                "clients": [{"client_id": CONTOSO_CLIENT, "client_secret": "contoso-secret"}],
                "users": contoso_users,
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
