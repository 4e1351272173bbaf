"""Graph's cross-tenant access policy partners, read and written as Graph v1.0 does.

- `GET /policies/crossTenantAccessPolicy/partners[/{tenantId}]`: the partner entries (404 for a
  tenant without one);
- `POST .../partners`: create an entry (201 with it; 409 when the tenant has one already);
- `PATCH .../partners/{tenantId}`: change the properties sent (204); a complex value such as
  `automaticUserConsentSettings` is merged member by member, as OData's PATCH does;
- `GET|PUT .../partners/{tenantId}/identitySynchronization`: the user synchronization policy
  (404 until it exists; PUT creates or replaces it, 204). A seeded partner has one (its
  `is_sync_allowed`); a partner created with POST has none until it is PUT.

Bodies are checked against the CSDL types (`crossTenantAccessPolicyConfigurationPartner`,
`crossTenantIdentitySyncPolicyPartner`). Reads need `Policy.Read.All` or
`Policy.ReadWrite.CrossTenantAccess`; writes need `Policy.ReadWrite.CrossTenantAccess` alone,
else 403 `Authorization_RequestDenied` (see permissions.py). The seed's `cross_tenant_access`
presets them (docs/sandbox-seed.md).
"""

from __future__ import annotations

from typing import Any

from .common import json_object_body, validate_writable
from .permissions import READ_POLICIES, WRITE_POLICIES
from .router import GraphError, GraphRequest, GraphResponse, Router, bad_request, not_found
from .seed_errors import SeedError, guid
from .state import Partner

_PARTNERS = "policies/crossTenantAccessPolicy/partners"
_PARTNER_TYPE = "crossTenantAccessPolicyConfigurationPartner"
_SYNC_TYPE = "crossTenantIdentitySyncPolicyPartner"
_CONSENT = "automaticUserConsentSettings"


def register(router: Router) -> None:
    base = "/policies/crossTenantAccessPolicy/partners"
    router.add("GET", base, list_partners, permissions=READ_POLICIES)
    router.add("POST", base, create_partner, permissions=WRITE_POLICIES)
    router.add("GET", base + "/{tenant_id}", get_partner, permissions=READ_POLICIES)
    router.add("PATCH", base + "/{tenant_id}", update_partner, permissions=WRITE_POLICIES)
    sync = base + "/{tenant_id}/identitySynchronization"
    router.add("GET", sync, get_identity_sync, permissions=READ_POLICIES)
    router.add("PUT", sync, put_identity_sync, permissions=WRITE_POLICIES)


def _partner_view(partner: Partner) -> dict[str, Any]:
    view: dict[str, Any] = {
        "tenantId": partner.tenant_id,
        "isServiceProvider": False,
        "isInMultiTenantOrganization": False,
        "inboundTrust": None,
        "b2bCollaborationInbound": None,
        "b2bCollaborationOutbound": None,
        "b2bDirectConnectInbound": None,
        "b2bDirectConnectOutbound": None,
        "tenantRestrictions": None,
    }
    view.update(partner.other)
    view[_CONSENT] = {
        "inboundAllowed": partner.inbound_auto_redeem,
        "outboundAllowed": partner.outbound_auto_redeem,
    }
    return view


def _find(req: GraphRequest) -> Partner:
    raw = req.params["tenant_id"]
    for tid, partner in req.tenant.partners.items():
        if tid.lower() == raw.lower():
            return partner
    raise not_found(raw)


def _consent(partner: Partner, value: Any) -> None:
    """Apply an `automaticUserConsentSettings` value (already type-checked) to the partner."""
    if value is None:
        partner.inbound_auto_redeem = partner.outbound_auto_redeem = False
        return
    for member in value:
        if member not in ("inboundAllowed", "outboundAllowed"):
            raise bad_request(
                f"Property '{member}' does not exist on type "
                "'microsoft.graph.inboundOutboundPolicyConfiguration'."
            )
    if "inboundAllowed" in value:
        partner.inbound_auto_redeem = bool(value["inboundAllowed"])
    if "outboundAllowed" in value:
        partner.outbound_auto_redeem = bool(value["outboundAllowed"])


def _apply(partner: Partner, props: dict[str, Any]) -> None:
    for name, value in props.items():
        if name == "tenantId":
            continue
        if name == _CONSENT:
            _consent(partner, value)
        else:
            partner.other[name] = value


def list_partners(req: GraphRequest) -> GraphResponse:
    partners = req.tenant.partners
    return GraphResponse(
        200,
        {
            "@odata.context": f"{req.base_url}/v1.0/$metadata#{_PARTNERS}",
            "value": [_partner_view(partners[tid]) for tid in sorted(partners)],
        },
    )


def get_partner(req: GraphRequest) -> GraphResponse:
    return GraphResponse(
        200,
        {
            "@odata.context": f"{req.base_url}/v1.0/$metadata#{_PARTNERS}/$entity",
            **_partner_view(_find(req)),
        },
    )


def create_partner(req: GraphRequest) -> GraphResponse:
    body = json_object_body(req)
    props = validate_writable(_PARTNER_TYPE, body)
    raw_id = props.get("tenantId")
    if not isinstance(raw_id, str):
        raise bad_request("The tenantId property is required.")
    try:
        tenant_id = guid(raw_id, "tenantId")
    except SeedError as exc:
        raise bad_request(
            f"Invalid value for property 'tenantId': {raw_id!r} is not a GUID."
        ) from exc
    if tenant_id == req.tenant.tenant_id.lower():
        raise bad_request("A tenant cannot be a partner of itself.")
    if any(tid.lower() == tenant_id for tid in req.tenant.partners):
        raise GraphError(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            f"A partner configuration for tenant '{tenant_id}' already exists.",
        )
    partner = Partner(tenant_id, False, False, False, has_sync_policy=False)
    _apply(partner, props)
    req.tenant.partners[tenant_id] = partner
    return GraphResponse(
        201,
        {
            "@odata.context": f"{req.base_url}/v1.0/$metadata#{_PARTNERS}/$entity",
            **_partner_view(partner),
        },
    )


def update_partner(req: GraphRequest) -> GraphResponse:
    partner = _find(req)
    props = validate_writable(_PARTNER_TYPE, json_object_body(req))
    if "tenantId" in props and str(props["tenantId"]).lower() != partner.tenant_id.lower():
        raise bad_request("The tenantId of a partner configuration cannot be changed.")
    _apply(partner, props)
    return GraphResponse(204)


def get_identity_sync(req: GraphRequest) -> GraphResponse:
    partner = _find(req)
    if not partner.has_sync_policy:
        raise not_found(f"{partner.tenant_id}/identitySynchronization")
    other = req.state.tenant(partner.tenant_id)
    name = partner.sync_display_name
    if name is None and other is not None:
        name = other.display_name
    return GraphResponse(
        200,
        {
            "@odata.context": f"{req.base_url}/v1.0/$metadata#policies/crossTenantAccessPolicy/"
            f"partners('{partner.tenant_id}')/identitySynchronization/$entity",
            "tenantId": partner.tenant_id,
            "displayName": name,
            "userSyncInbound": {"isSyncAllowed": partner.is_sync_allowed},
        },
    )


def put_identity_sync(req: GraphRequest) -> GraphResponse:
    partner = _find(req)
    props = validate_writable(_SYNC_TYPE, json_object_body(req))
    if "tenantId" in props and str(props["tenantId"]).lower() != partner.tenant_id.lower():
        raise bad_request("The tenantId must be the partner's.")
    inbound = props.get("userSyncInbound") or {}
    for member in inbound:
        if member != "isSyncAllowed":
            raise bad_request(
                f"Property '{member}' does not exist on type "
                "'microsoft.graph.crossTenantUserSyncInbound'."
            )
    # PUT replaces the whole policy: what is not sent is not kept.
    partner.has_sync_policy = True
    partner.sync_display_name = props.get("displayName")
    partner.is_sync_allowed = bool(inbound.get("isSyncAllowed", False))
    return GraphResponse(204)
