"""Which application permissions each Graph route needs, as Microsoft Graph documents them.

A route lists the permissions any one of which lets an app call it (the "Permissions" table of
each API page, application column, least to most privileged). A token whose `roles` claim holds
none of them is answered 403 `Authorization_RequestDenied`, "Insufficient privileges to
complete the operation.", as Graph does. A client's roles come from its seed entry (`roles`,
default: everything tenant-sync needs, see `seed.DEFAULT_ROLES`).
"""

from __future__ import annotations

from .router import GraphError

READ_USERS = (
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
WRITE_USERS = ("User.ReadWrite.All", "Directory.ReadWrite.All")
INVITE = ("User.Invite.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
READ_GROUPS = (
    "GroupMember.Read.All",
    "Group.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
CREATE_GROUPS = ("Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All")
WRITE_GROUPS = ("Group.ReadWrite.All", "Directory.ReadWrite.All")
# Deleting a group: Graph's delete-group page lists Group.ReadWrite.All and no higher permission
# (Directory.ReadWrite.All does not delete users or groups).
DELETE_GROUPS = ("Group.ReadWrite.All",)
WRITE_MEMBERS = ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")
# memberOf of a user: Graph accepts the user or the group read permissions.
READ_MEMBERSHIPS = tuple(dict.fromkeys(READ_USERS + READ_GROUPS))
# deletedItems: reading or restoring users or groups.
READ_DELETED = READ_MEMBERSHIPS
WRITE_DELETED = ("User.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")
READ_POLICIES = ("Policy.Read.All", "Policy.ReadWrite.CrossTenantAccess")
# Writing cross-tenant access settings: this one permission, no higher one (not even
# Directory.ReadWrite.All), as Graph documents it.
WRITE_POLICIES = ("Policy.ReadWrite.CrossTenantAccess",)


def check(required: tuple[str, ...], roles: tuple[str, ...]) -> None:
    if required and not set(required) & set(roles):
        raise GraphError(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
