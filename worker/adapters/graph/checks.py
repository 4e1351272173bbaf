"""`tenant-sync check JOB`: can this job work? Credentials, permissions, partner settings.

Each check says ✓ or ✗ (or ! when it cannot tell) and, when it fails, how to fix it. Nothing is
written. Permissions are read from the `roles` claim of the app-only token, which is where Entra
lists the application permissions granted to the app.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.adapters.graph.client import GraphClient
from worker.domain.errors import NotFound, StopSync, SyncError

SOURCE_ROLES = {
    "User.Read.All": (
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
}
GROUP_ROLES = (
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Group.ReadWrite.All",
)
TARGET_ROLES = {
    "User.Invite.All": ("User.Invite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "User.ReadWrite.All": ("User.ReadWrite.All", "Directory.ReadWrite.All"),
}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | fail | unknown
    detail: str = ""
    fix: str = ""

    @property
    def mark(self) -> str:
        return {"ok": "✓", "fail": "✗"}.get(self.status, "!")


def token_roles(token: str) -> set[str] | None:
    """The application permissions in an access token, or None if it carries no roles claim."""
    try:
        payload = token.split(".")[1]
        claims: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (IndexError, ValueError):
        return None
    roles = claims.get("roles")
    return {str(r) for r in roles} if isinstance(roles, list) else None


class JobChecks:
    def __init__(
        self,
        *,
        job: str,
        source: GraphClient,
        target: GraphClient,
        source_tenant: str,
        target_tenant: str,
        groups: tuple[str, ...],
    ) -> None:
        self.job = job
        self.source = source
        self.target = target
        self.source_tenant = source_tenant
        self.target_tenant = target_tenant
        self.groups = groups

    def run(self) -> list[Check]:
        checks: list[Check] = []
        source_token = self._sign_in(self.source, "source", checks)
        if source_token is not None:
            self._roles(source_token, "source", SOURCE_ROLES, checks)
            checks.append(self._read_users(self.source, "source"))
            if self.groups:
                checks.extend(self._groups())
            checks.append(self._partner(self.source, "source", self.target_tenant))
        target_token = self._sign_in(self.target, "target", checks)
        if target_token is not None:
            self._roles(target_token, "target", TARGET_ROLES, checks)
            checks.append(self._read_users(self.target, "target"))
            checks.append(self._partner(self.target, "target", self.source_tenant))
            checks.append(self._sync_allowed())
        return checks

    def _sign_in(self, client: GraphClient, side: str, checks: list[Check]) -> str | None:
        try:
            token = client.tokens.token()
        except SyncError as exc:
            checks.append(
                Check(
                    f"{side}: sign in",
                    "fail",
                    str(exc),
                    f"check the {side} tenant's tenant_id, client_id and client_secret or "
                    "certificate_path against its app registration",
                )
            )
            return None
        checks.append(Check(f"{side}: sign in", "ok", "app-only token obtained"))
        return token

    def _roles(
        self, token: str, side: str, needed: Mapping[str, tuple[str, ...]], checks: list[Check]
    ) -> None:
        roles = token_roles(token)
        for name, sufficient in needed.items():
            if roles is None:
                checks.append(
                    Check(f"{side}: permission {name}", "unknown", "the token lists no roles")
                )
            elif roles & set(sufficient):
                checks.append(Check(f"{side}: permission {name}", "ok", "granted"))
            else:
                checks.append(
                    Check(
                        f"{side}: permission {name}",
                        "fail",
                        f"granted: {', '.join(sorted(roles)) or 'nothing'}",
                        f"add the application permission {name} to the {side} app registration "
                        "and grant admin consent",
                    )
                )

    def _read_users(self, client: GraphClient, side: str) -> Check:
        try:
            client.get_json("/users", {"$select": "id", "$top": "1"})
        except SyncError as exc:
            return Check(
                f"{side}: read users",
                "fail",
                str(exc),
                f"grant User.Read.All (source) or User.ReadWrite.All (target) in the {side} tenant",
            )
        return Check(f"{side}: read users", "ok")

    def _groups(self) -> list[Check]:
        checks = []
        for group in self.groups:
            name = f"source: read members of group {group}"
            try:
                self.source.get_json(f"/groups/{group}/members", {"$select": "id", "$top": "1"})
            except NotFound:
                checks.append(Check(name, "fail", "no such group", "fix the job's scope.groups"))
            except SyncError as exc:
                checks.append(
                    Check(name, "fail", str(exc), "grant GroupMember.Read.All in the source tenant")
                )
            else:
                checks.append(Check(name, "ok"))
        return checks

    def _partner(self, client: GraphClient, side: str, other: str) -> Check:
        direction = "inbound" if side == "target" else "outbound"
        name = f"{side}: automatic redemption ({direction}) with {other}"
        where = "target's inbound" if side == "target" else "source's outbound"
        fix = (
            f"in the {side} tenant, add {other} to the cross-tenant access settings and turn on "
            f"'Automatically redeem invitations' ({where} trust settings)"
        )
        try:
            partner = client.get_json(f"/policies/crossTenantAccessPolicy/partners/{other}")
        except NotFound:
            return Check(name, "fail", "no partner configuration for that tenant", fix)
        except StopSync as exc:
            return Check(name, "unknown", f"cannot read the policy: {exc}", "grant Policy.Read.All")
        except SyncError as exc:
            return Check(name, "unknown", str(exc))
        settings = partner.get("automaticUserConsentSettings") or {}
        allowed = settings.get("inboundAllowed" if side == "target" else "outboundAllowed")
        if allowed:
            return Check(name, "ok")
        return Check(name, "fail", "automatic redemption is off: invited users stay pending", fix)

    def _sync_allowed(self) -> Check:
        name = f"target: user sync allowed from {self.source_tenant}"
        partner = f"/policies/crossTenantAccessPolicy/partners/{self.source_tenant}"
        url = f"{partner}/identitySynchronization"
        fix = (
            "in the target tenant's cross-tenant access settings for the source tenant, allow "
            "users sync into this tenant"
        )
        try:
            sync = self.target.get_json(url)
        except NotFound:
            return Check(name, "fail", "no identity synchronization policy for that tenant", fix)
        except SyncError as exc:
            return Check(name, "unknown", str(exc), "grant Policy.Read.All in the target tenant")
        if (sync.get("userSyncInbound") or {}).get("isSyncAllowed"):
            return Check(name, "ok")
        return Check(name, "fail", "isSyncAllowed is false", fix)
