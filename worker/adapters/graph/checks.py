"""`tenant-sync check JOB`: can this job work? Credentials, permissions, partner settings.

Each check says ✓ or ✗ (or ! when it cannot tell) and, when it fails, how to fix it. Nothing is
written, and nothing waits long: a request is repeated at most once (`retry.CHECK_POLICY`).
Permissions are read from the `roles` claim of the app-only token, which is where Entra lists
the application permissions granted to the app. A job that provisions groups (docs/groups.md)
also needs the source app to read groups and their members and the target app to read and write
groups: Group.ReadWrite.All, or Group.Create with GroupMember.ReadWrite.All; only
Group.ReadWrite.All deletes groups (Graph's delete-group permissions), so with the others a
second line says that deletions of provisioned groups will fail.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.adapters.graph.client import GraphClient
from worker.adapters.graph.retry import CHECK_POLICY
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
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
)
# Reading the scoped groups and their members in the source (group provisioning).
SOURCE_GROUP_ROLES = {"Group.Read.All (or GroupMember.Read.All)": GROUP_ROLES}
# Creating, renaming, filling and deleting groups in the target: one of these grants it all,
GROUP_WRITE_ROLES = ("Group.ReadWrite.All", "Directory.ReadWrite.All")
# or Group.Create (create; the app owns what it creates) with one that writes members.
GROUP_CREATE_ROLES = (("Group.Create",), ("GroupMember.ReadWrite.All",))
GROUP_WRITE_NAME = "Group.ReadWrite.All (or Group.Create + GroupMember.ReadWrite.All)"
# Deleting a group: Graph lists Group.ReadWrite.All alone for application permissions
# (Directory.ReadWrite.All does not delete groups; GroupMember.ReadWrite.All says groups
# "cannot be deleted"; Group.Create only creates).
GROUP_DELETE_ROLES = ("Group.ReadWrite.All",)
GROUP_DELETE_NAME = "target: permission Group.ReadWrite.All, to delete provisioned groups"
TARGET_ROLES = {
    "User.Invite.All": ("User.Invite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "User.ReadWrite.All": ("User.ReadWrite.All", "Directory.ReadWrite.All"),
}


# Entra's sign-in errors, by what is wrong: the tenant, the app, or its credential.
_TENANT_CODES = ("AADSTS90002", "AADSTS90023", "AADSTS900023")
_APP_CODES = ("AADSTS700016", "AADSTS700038", "AADSTS7000112")
_NETWORK_TEXT = (
    "connection refused",
    "connecterror",
    "connecttimeout",
    "timed out",
    "timeout",
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "no route to host",
    "network is unreachable",
    "connection reset",
    "remote end closed",
    "max retries exceeded",
    "failed to establish a new connection",
)


@dataclass(frozen=True)
class Side:
    """How `check` names one side's settings in its advice."""

    name: str  # the tenant's name in the config (tenants.NAME)
    ca_bundle: str | None = None  # its CA setting, if any


def failure_kind(exc: BaseException) -> str:
    """What kind of failure an error is: network, tls, credentials, permissions or other."""
    text = " ".join(_chain_text(exc)).lower()
    if (
        "certificate verify failed" in text
        or "certificate_verify_failed" in text
        or ("ssl" in text and ("certificate" in text or "handshake" in text))
    ):
        return "tls"
    if isinstance(exc, SyncError) and exc.status in (401, 403):
        return "permissions" if exc.status == 403 else "credentials"
    if "aadsts" in text or "invalid_client" in text or "unauthorized_client" in text:
        return "credentials"
    if "authorization_requestdenied" in text or "insufficient privileges" in text:
        return "permissions"
    if any(marker in text for marker in _NETWORK_TEXT):
        return "network"
    return "other"


def _chain_text(exc: BaseException) -> list[str]:
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [type(current).__name__, str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def hint(exc: BaseException, side: str, where: Side, permission_fix: str) -> str:
    """Advice that matches the failure: reach the host, trust its certificate, fix the
    credential, or grant the permission (`permission_fix`)."""
    tenant = f"tenants.{where.name}"
    kind = failure_kind(exc)
    if kind == "network":
        return (
            f"this host cannot reach the {side} tenant's endpoints: check {tenant}.authority_host "
            f"and {tenant}.graph_url, DNS, and any firewall or proxy in between"
        )
    if kind == "tls":
        trusted = f"now {where.ca_bundle}" if where.ca_bundle else "now the system's CAs"
        return (
            f"the {side} endpoint's TLS certificate is not trusted: set {tenant}.ca_bundle to "
            f"the CA file that signed it ({trusted})"
        )
    if kind == "credentials":
        text = " ".join(_chain_text(exc))
        if any(code in text for code in _TENANT_CODES):
            return f"no such tenant: check {tenant}.tenant_id"
        if any(code in text for code in _APP_CODES):
            return (
                f"no such app in the {side} tenant: check {tenant}.client_id against its app "
                "registration"
            )
        return (
            f"the {side} app's credential was refused (wrong or expired): check "
            f"{tenant}.client_secret or certificate_path against its app registration"
        )
    if kind == "permissions":
        return permission_fix
    return ""


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


def group_checks(roles: set[str] | None) -> list[Check]:
    """The target app's group permissions: writing (`group_write_check`) and, when writing is
    granted by a set that cannot delete, a ✗ saying that deleting provisioned groups will fail
    (a source group deleted or taken out of scope fails its row every cycle)."""
    write = group_write_check(roles)
    if write.status != "ok" or roles is None or roles & set(GROUP_DELETE_ROLES):
        return [write]
    writers = {*GROUP_WRITE_ROLES, *(role for one_of in GROUP_CREATE_ROLES for role in one_of)}
    return [
        write,
        Check(
            GROUP_DELETE_NAME,
            "fail",
            f"granted: {', '.join(sorted(roles & writers))}; with these, deleting a provisioned "
            "group (its source group deleted or taken out of scope.groups) fails in every cycle",
            "add the application permission Group.ReadWrite.All to the target app registration "
            "and grant admin consent: Graph deletes groups only with it",
        ),
    ]


def group_write_check(roles: set[str] | None) -> Check:
    """Whether the target app may read, create, fill and delete groups (docs/groups.md)."""
    name = f"target: permission {GROUP_WRITE_NAME}"
    if roles is None:
        return Check(name, "unknown", "the token lists no roles")
    if roles & set(GROUP_WRITE_ROLES):
        return Check(name, "ok", "granted")
    if all(roles & set(one_of) for one_of in GROUP_CREATE_ROLES):
        return Check(name, "ok", "granted (Group.Create + GroupMember.ReadWrite.All)")
    return Check(
        name,
        "fail",
        f"granted: {', '.join(sorted(roles)) or 'nothing'}",
        "add the application permission Group.ReadWrite.All (or both Group.Create and "
        "GroupMember.ReadWrite.All) to the target app registration and grant admin consent: "
        "groups.provision creates and fills groups in the target",
    )


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
        source_side: Side | None = None,
        target_side: Side | None = None,
        provision_groups: bool = False,
    ) -> None:
        self.sides = {
            "source": source_side or Side("source"),
            "target": target_side or Side("target"),
        }
        self.job = job
        # A person waits for the answer: a failure is reported within seconds, not ridden out.
        self.source = source.with_policy(CHECK_POLICY)
        self.target = target.with_policy(CHECK_POLICY)
        self.source_tenant = source_tenant
        self.target_tenant = target_tenant
        self.groups = groups
        self.provision_groups = provision_groups

    def run(self) -> list[Check]:
        checks: list[Check] = []
        source_token = self._sign_in(self.source, "source", checks)
        if source_token is not None:
            self._roles(source_token, "source", SOURCE_ROLES, checks)
            if self.provision_groups:
                self._roles(source_token, "source", SOURCE_GROUP_ROLES, checks)
            checks.append(self._read_users(self.source, "source"))
            if self.groups:
                checks.extend(self._groups())
            checks.append(self._partner(self.source, "source", self.target_tenant))
        target_token = self._sign_in(self.target, "target", checks)
        if target_token is not None:
            self._roles(target_token, "target", TARGET_ROLES, checks)
            if self.provision_groups:
                checks.extend(group_checks(token_roles(target_token)))
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
                    hint(exc, side, self.sides[side], "grant admin consent to the app")
                    or f"check the {side} tenant's settings (tenants.{self.sides[side].name})",
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
                hint(
                    exc,
                    side,
                    self.sides[side],
                    "grant User.Read.All (source) or User.ReadWrite.All (target) in the "
                    f"{side} tenant",
                ),
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
                fix = hint(
                    exc,
                    "source",
                    self.sides["source"],
                    "grant GroupMember.Read.All in the source tenant",
                )
                checks.append(Check(name, "fail", str(exc), fix))
            else:
                checks.append(Check(name, "ok"))
        return checks

    def _partner(self, client: GraphClient, side: str, other: str) -> Check:
        direction = "inbound" if side == "target" else "outbound"
        name = f"{side}: automatic redemption ({direction}) with {other}"
        where = "target's inbound" if side == "target" else "source's outbound"
        fix = (
            f"in the {side} tenant, add {other} to the cross-tenant access settings and turn on "
            f"'Automatically redeem invitations' ({where} trust settings), or run "
            f"`tenant-sync check {self.job} --fix`"
        )
        try:
            partner = client.get_json(f"/policies/crossTenantAccessPolicy/partners/{other}")
        except NotFound:
            return Check(name, "fail", "no partner configuration for that tenant", fix)
        except SyncError as exc:
            fix = hint(exc, side, self.sides[side], f"grant Policy.Read.All in the {side} tenant")
            if isinstance(exc, StopSync) and failure_kind(exc) == "other":
                fix = f"grant Policy.Read.All in the {side} tenant"
            return Check(name, "unknown", f"cannot read the policy: {exc}", fix)
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
            f"users sync into this tenant, or run `tenant-sync check {self.job} --fix`"
        )
        try:
            sync = self.target.get_json(url)
        except NotFound:
            return Check(name, "fail", "no identity synchronization policy for that tenant", fix)
        except SyncError as exc:
            fix = hint(
                exc, "target", self.sides["target"], "grant Policy.Read.All in the target tenant"
            )
            return Check(name, "unknown", str(exc), fix)
        if (sync.get("userSyncInbound") or {}).get("isSyncAllowed"):
            return Check(name, "ok")
        return Check(name, "fail", "isSyncAllowed is false", fix)
