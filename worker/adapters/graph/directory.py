"""The source and target directory ports on Microsoft Graph v1.0."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from worker.adapters.graph.client import GraphClient
from worker.domain.errors import NotFound
from worker.domain.model import SourceItem, SourceRemoval, SourceUser, TargetUser
from worker.ports import GroupPage, Invitation, MembershipChange, UserPage
from worker.schema import user_property_types

USER_TYPE = "#microsoft.graph.user"
MAX_DELTA_ID_FILTER = 50  # Graph's limit on `id eq` clauses in a delta filter


def odata_string(value: str) -> str:
    """An OData string literal: quotes doubled, so a value can neither break nor widen a query."""
    return "'" + value.replace("'", "''") + "'"


def _attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if "@" not in k and k != "id"}


class GraphSourceDirectory:
    """Reads of the source tenant: delta rounds of users and of the job's groups."""

    def __init__(self, client: GraphClient, *, page_size: int | None = None) -> None:
        self.client = client
        self.page_size = page_size

    def _headers(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={self.page_size}"} if self.page_size else {}

    def sign_in(self) -> None:
        self.client.tokens.token()

    def users_delta_start(self, select: Sequence[str]) -> str:
        return self.client.url("/users/delta?" + urlencode({"$select": ",".join(select)}))

    def users_page(self, url: str) -> UserPage:
        data = self.client.request("GET", url, headers=self._headers()).json()
        items: list[SourceItem] = []
        for entry in data.get("value", []):
            if "@removed" in entry:
                reason = str((entry.get("@removed") or {}).get("reason", "deleted"))
                items.append(SourceRemoval(id=entry["id"], reason=reason))
            else:
                items.append(SourceUser(id=entry["id"], attributes=_attributes(entry)))
        return UserPage(
            items=items,
            next_link=data.get("@odata.nextLink"),
            delta_link=data.get("@odata.deltaLink"),
        )

    def groups_delta_start(self, group_ids: Sequence[str]) -> str:
        params = {"$select": "members"}
        if len(group_ids) <= MAX_DELTA_ID_FILTER:
            params["$filter"] = " or ".join(f"id eq {odata_string(g)}" for g in group_ids)
        return self.client.url("/groups/delta?" + urlencode(params))

    def groups_page(self, url: str) -> GroupPage:
        data = self.client.request("GET", url, headers=self._headers()).json()
        changes: list[MembershipChange] = []
        removed_groups: list[str] = []
        for group in data.get("value", []):
            if "@removed" in group:
                removed_groups.append(group["id"])
                continue
            for member in group.get("members@delta", []):
                if member.get("@odata.type", USER_TYPE) != USER_TYPE:
                    continue
                changes.append(
                    MembershipChange(
                        group_id=group["id"], member_id=member["id"], added="@removed" not in member
                    )
                )
        return GroupPage(
            changes=changes,
            removed_groups=removed_groups,
            next_link=data.get("@odata.nextLink"),
            delta_link=data.get("@odata.deltaLink"),
        )

    def get_user(self, user_id: str, select: Sequence[str]) -> SourceUser | None:
        try:
            data = self.client.get_json(f"/users/{user_id}", {"$select": ",".join(select)})
        except NotFound:
            return None
        return SourceUser(id=data["id"], attributes=_attributes(data))

    def transitive_member_ids(self, group_id: str) -> set[str]:
        return self.group_member_ids(group_id, transitive=True)

    def group_member_ids(self, group_id: str, *, transitive: bool = False) -> set[str]:
        """User members of a group: direct ones, or also those of nested groups."""
        relation = "transitiveMembers" if transitive else "members"
        members: set[str] = set()
        url: str | None = self.client.url(f"/groups/{group_id}/{relation}?$select=id&$top=999")
        while url:
            data = self.client.request("GET", url).json()
            members.update(
                m["id"]
                for m in data.get("value", [])
                if m.get("@odata.type", USER_TYPE) == USER_TYPE
            )
            url = data.get("@odata.nextLink")
        return members


class GraphTargetDirectory:
    """Reads and writes of the target tenant."""

    def __init__(self, client: GraphClient, *, invite_redirect_url: str) -> None:
        self.client = client
        self.invite_redirect_url = invite_redirect_url
        self._types = user_property_types()

    def sign_in(self) -> None:
        self.client.tokens.token()

    def find_users(self, attribute: str, value: str, select: Sequence[str]) -> list[TargetUser]:
        if self._types.get(attribute, "").startswith("Collection("):
            condition = f"{attribute}/any(x:x eq {odata_string(value)})"
        else:
            condition = f"{attribute} eq {odata_string(value)}"
        # Two answers are enough to tell "one" from "ambiguous".
        data = self.client.get_json(
            "/users", {"$filter": condition, "$select": ",".join(["id", *select]), "$top": "2"}
        )
        return [TargetUser(id=u["id"], attributes=_attributes(u)) for u in data.get("value", [])]

    def get_user(self, user_id: str, select: Sequence[str]) -> TargetUser | None:
        try:
            data = self.client.get_json(f"/users/{user_id}", {"$select": ",".join(["id", *select])})
        except NotFound:
            return None
        return TargetUser(id=data["id"], attributes=_attributes(data))

    def user_ids(self) -> set[str]:
        ids: set[str] = set()
        url: str | None = self.client.url("/users?$select=id&$top=999")
        while url:
            data = self.client.request("GET", url).json()
            ids.update(u["id"] for u in data.get("value", []))
            url = data.get("@odata.nextLink")
        return ids

    def invite(self, address: str, display_name: str | None, user_type: str) -> Invitation:
        body: dict[str, Any] = {
            "invitedUserEmailAddress": address,
            "inviteRedirectUrl": self.invite_redirect_url,
            "sendInvitationMessage": False,
            "invitedUserType": user_type,
        }
        if display_name:
            body["invitedUserDisplayName"] = display_name
        data = self.client.request("POST", "/invitations", json=body).json()
        return Invitation(user_id=data["invitedUser"]["id"], status=str(data.get("status", "")))

    def update_user(self, user_id: str, attributes: Mapping[str, Any]) -> None:
        self.client.request("PATCH", f"/users/{user_id}", json=dict(attributes))

    def delete_user(self, user_id: str) -> None:
        self.client.request("DELETE", f"/users/{user_id}")

    def restore_user(self, user_id: str) -> None:
        self.client.request("POST", f"/directory/deletedItems/{user_id}/restore")
