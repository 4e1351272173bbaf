"""Graph `/invitations` (B2B guests as Graph creates them); the partner settings are in policies.py.

An invitation to an address some user of the tenant already has (mail, otherMails or UPN)
returns that user instead of creating another. A new guest is redeemed at once ("Accepted")
when the inviting tenant auto-redeems inbound from the user's home tenant and the home tenant
auto-redeems outbound towards the inviting tenant, as Entra's cross-tenant access settings do.
"""

from __future__ import annotations

import secrets
from typing import Any

from . import schema
from .common import json_object_body
from .ids import new_guid
from .permissions import INVITE
from .router import GraphError, GraphRequest, GraphResponse, Router, bad_request
from .seed import now_iso
from .state import SandboxState, Tenant


def register(router: Router) -> None:
    router.add("POST", "/invitations", create_invitation, invitation=True, permissions=INVITE)


# ---------------------------------------------------------------- pure naming rules


def is_email_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return (
        bool(at and local and domain)
        and "." in domain
        and not domain.startswith(".")
        and not domain.endswith(".")
        and not any(c.isspace() for c in address)
        and "@" not in local
    )


def guest_mail_nickname(address: str) -> str:
    """`ann@contoso.com` -> `ann_contoso.com#EXT#`."""
    return address.replace("@", "_") + "#EXT#"


def guest_upn(address: str, domain: str, suffix: str = "") -> str:
    """`ann@contoso.com` in fabrikam -> `ann_contoso.com#EXT#@fabrikam.onmicrosoft.com`."""
    return f"{address.replace('@', '_')}{suffix}#EXT#@{domain}"


def local_part(address: str) -> str:
    return address.rpartition("@")[0]


# ---------------------------------------------------------------- invitations


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def home_tenant(state: SandboxState, inviting: Tenant, address: str) -> Tenant | None:
    """A seeded tenant (other than the inviting one) with a member having this mail or UPN."""
    for tenant in state.tenants.values():
        if tenant is inviting:
            continue
        for user in tenant.users_by_address(address):
            if user.get("userType", "Member") == "Member" and "#EXT#" not in str(
                user.get("userPrincipalName", "")
            ):
                return tenant
    return None


def auto_redeems(inviting: Tenant, home: Tenant | None) -> bool:
    if home is None:
        return False
    inbound = inviting.partners.get(home.tenant_id)
    outbound = home.partners.get(inviting.tenant_id)
    return bool(
        inbound and inbound.inbound_auto_redeem and outbound and outbound.outbound_auto_redeem
    )


def create_invitation(req: GraphRequest) -> GraphResponse:
    body = json_object_body(req)
    known = schema.properties("invitation")
    for key in body:
        if (
            "@" not in key
            and key not in known
            and key not in ("invitedUser", "invitedUserSponsors")
        ):
            raise bad_request(
                f"Property '{key}' does not exist on type 'microsoft.graph.invitation'."
            )
    address = body.get("invitedUserEmailAddress")
    redirect = body.get("inviteRedirectUrl")
    if not isinstance(address, str) or not address.strip():
        raise _bad("The invitedUserEmailAddress property is required.")
    if not isinstance(redirect, str) or not redirect.strip():
        raise _bad("The inviteRedirectUrl property is required.")
    address = address.strip()
    if not is_email_address(address):
        raise _bad(f"The invited user email address '{address}' is invalid.")
    user_type = body.get("invitedUserType") or "Guest"
    if user_type not in ("Guest", "Member"):
        raise _bad("invitedUserType must be 'Guest' or 'Member'.")
    display = body.get("invitedUserDisplayName")
    if display is not None and not isinstance(display, str):
        raise _bad("invitedUserDisplayName must be a string.")
    send = body.get("sendInvitationMessage", False)
    if not isinstance(send, bool):
        raise _bad("sendInvitationMessage must be true or false.")
    info = body.get("invitedUserMessageInfo")
    if info is not None:
        try:
            schema.check_value(known["invitedUserMessageInfo"], info)
        except schema.TypeMismatch as exc:
            raise _bad(str(exc)) from exc

    tenant = req.tenant
    home = home_tenant(req.state, tenant, address)
    auto = auto_redeems(tenant, home)
    existing = tenant.users_by_address(address)
    if existing:
        user = existing[0]
        if auto and user.get("externalUserState") == "PendingAcceptance":
            tenant.update_user(
                user["id"],
                {"externalUserState": "Accepted", "externalUserStateChangeDateTime": now_iso()},
            )
    else:
        upn = guest_upn(address, tenant.domain)
        n = 0
        while tenant.upn_taken(upn):
            n += 1
            upn = guest_upn(address, tenant.domain, str(n))
        stamp = now_iso()
        user = tenant.create_user(
            {
                "userPrincipalName": upn,
                "mail": address,
                "otherMails": [address],
                "mailNickname": guest_mail_nickname(address),
                "displayName": display or local_part(address),
                "userType": user_type,
                "accountEnabled": True,
                "creationType": "Invitation",
                "externalUserState": "Accepted" if auto else "PendingAcceptance",
                "externalUserStateChangeDateTime": stamp,
                "createdDateTime": stamp,
                "identities": [
                    {
                        "signInType": "userPrincipalName",
                        "issuer": tenant.domain,
                        "issuerAssignedId": upn,
                    }
                ],
            }
        )
    state = user.get("externalUserState")
    status = "PendingAcceptance" if state == "PendingAcceptance" else "Completed"
    message_info: dict[str, Any] = {
        "messageLanguage": None,
        "ccRecipients": [],
        "customizedMessageBody": None,
    }
    if isinstance(info, dict):
        message_info.update(info)
    out = {
        "@odata.context": f"{req.base_url}/v1.0/$metadata#invitations/$entity",
        "id": new_guid(),
        "inviteRedeemUrl": f"{req.base_url}/redeem?rd={secrets.token_urlsafe(24)}"
        f"&tenant={tenant.tenant_id}&user={user['id']}",
        "invitedUserDisplayName": display,
        "invitedUserType": user_type,
        "invitedUserEmailAddress": address,
        "sendInvitationMessage": send,
        "resetRedemption": False,
        "inviteRedirectUrl": redirect,
        "status": status,
        "invitedUserMessageInfo": message_info,
        "invitedUser": {"id": user["id"]},
    }
    return GraphResponse(201, out)
