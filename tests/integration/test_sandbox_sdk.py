"""Microsoft's own Graph SDK (msgraph-sdk) and Azure Identity as the referee: the sandbox driven
through them, for every endpoint the worker calls and every one the sandbox claims.

One SDK client per module (importing the SDK costs seconds); each test starts from the seed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, CredentialUnavailableError
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.directory.deleted_items.graph_user.graph_user_request_builder import (
    GraphUserRequestBuilder,
)
from msgraph.generated.groups.delta.delta_request_builder import (
    DeltaRequestBuilder as GroupsDeltaRequestBuilder,
)
from msgraph.generated.models.group import Group
from msgraph.generated.models.invitation import Invitation
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.reference_update import ReferenceUpdate
from msgraph.generated.models.user import User
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem
from msgraph_core.tasks.page_iterator import PageIterator

from tests.support.sandbox import (
    GRAPH_SCOPE,
    SandboxHandle,
    client_of,
    make_seed,
    make_tenant,
    make_user,
    new_id,
    partner,
    running_sandbox,
)
from tests.support.sdk import SdkClient

pytestmark = pytest.mark.integration

DOMAIN = "contoso.onmicrosoft.com"
ANN = make_user("ann", DOMAIN, id=new_id(), displayName="Ann Lee", department="Sales")
BOB = make_user("bob", DOMAIN, id=new_id(), displayName="Bob Stone", department="Sales")
CYD = make_user("cyd", DOMAIN, id=new_id(), displayName="Cyd Moreau", department="Finance")
STAFF = [make_user(f"staff{i:02d}", DOMAIN, department="Bulk") for i in range(12)]
GROUP = new_id()
INNER = new_id()
TARGET = make_tenant("fabrikam.onmicrosoft.com")
SOURCE = make_tenant(
    DOMAIN,
    users=[ANN, BOB, CYD, *STAFF],
    groups=[
        {"id": GROUP, "displayName": "Sync scope", "members": [ANN["id"], INNER]},
        {"id": INNER, "displayName": "Inner", "members": [BOB["id"]]},
    ],
    partners=[partner(TARGET["tenant_id"])],
)
READER = new_id()
SOURCE["clients"].append(
    {"client_id": READER, "client_secret": "reader", "roles": ["User.Read.All"]}
)
TARGET["cross_tenant_access"]["partners"] = [partner(SOURCE["tenant_id"])]
EVENTUAL = "ConsistencyLevel"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(SOURCE, TARGET), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture(scope="module")
def module_sdk(sb: SandboxHandle) -> Iterator[SdkClient]:
    client = SdkClient.connect(sb, *client_of(SOURCE))
    yield client
    client.close()


@pytest.fixture
def sdk(sb: SandboxHandle, module_sdk: SdkClient) -> SdkClient:
    sb.reset()
    return module_sdk


def config(*, eventual: bool = False, retries: int | None = None, **query: Any) -> Any:
    """A RequestConfiguration: query parameters object, ConsistencyLevel, retry option."""
    conf: RequestConfiguration[Any] = RequestConfiguration()
    if query:
        conf.query_parameters = query.pop("builder")(**query)
    if eventual:
        conf.headers.add(EVENTUAL, "eventual")
    if retries is not None:
        conf.options = [RetryHandlerOption(max_retries=retries)]
    return conf


def new_user(nick: str) -> User:
    return User(
        account_enabled=True,
        display_name=nick.capitalize(),
        mail_nickname=nick,
        user_principal_name=f"{nick}@{DOMAIN}",
        password_profile=PasswordProfile(password="Sdk-Pass-w0rd!"),
    )


# ---------------------------------------------------------------- users


def test_users_crud(sdk: SdkClient) -> None:
    users = sdk.graph.users
    created = sdk.run(users.post(new_user("dana")))
    assert created is not None
    assert created.id
    assert created.user_principal_name == f"dana@{DOMAIN}"
    sdk.run(users.by_user_id(created.id).patch(User(job_title="Lead", department="Ops")))
    got = sdk.run(
        users.by_user_id(created.id).get(
            config(
                builder=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters,
                select=["jobTitle", "department", "identities"],
            )
        )
    )
    assert got is not None
    assert (got.job_title, got.department) == ("Lead", "Ops")
    assert got.identities is not None
    assert got.identities[0].issuer_assigned_id == f"dana@{DOMAIN}"
    by_upn = sdk.run(users.by_user_id(f"dana@{DOMAIN}").get())
    assert by_upn is not None
    assert by_upn.id == created.id

    refused = sdk.error(
        users.post(
            User(
                display_name="No Password",
                user_principal_name=f"np@{DOMAIN}",
                mail_nickname="np",
                account_enabled=True,
            )
        )
    )
    assert refused.response_status_code == 400
    assert refused.error.code == "Request_BadRequest"  # type: ignore[attr-defined]

    sdk.run(users.by_user_id(created.id).delete())
    assert sdk.error(users.by_user_id(created.id).get()).response_status_code == 404


def test_select_filter_top_and_paging(sdk: SdkClient) -> None:
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters
    page = sdk.run(
        sdk.graph.users.get(
            config(
                builder=query,
                select=["displayName", "department"],
                filter="department eq 'Bulk'",
                top=5,
            )
        )
    )
    assert page is not None
    assert page.value is not None
    assert len(page.value) == 5
    assert page.value[0].department == "Bulk"
    assert page.value[0].mail is None  # not selected
    assert page.odata_next_link

    seen: list[str] = []

    def collect(user: User) -> bool:
        seen.append(str(user.id))
        return True

    iterator = PageIterator(page, sdk.graph.request_adapter)
    sdk.run(iterator.iterate(collect))
    assert len(seen) == 12
    assert len(set(seen)) == 12

    counted = sdk.run(sdk.graph.users.count.get(config(eventual=True)))
    assert counted == 15
    ordered = sdk.run(
        sdk.graph.users.get(config(builder=query, orderby=["displayName desc"], top=3))
    )
    assert ordered is not None
    assert ordered.value is not None
    assert [u.display_name for u in ordered.value] == ["Staff11", "Staff10", "Staff09"]
    found = sdk.run(
        sdk.graph.users.get(
            config(builder=query, search='"displayName:lee"', eventual=True, count=True)
        )
    )
    assert found is not None
    assert found.value is not None
    assert [u.id for u in found.value] == [ANN["id"]]
    assert found.odata_count == 1


def test_users_delta_with_removed(sdk: SdkClient) -> None:
    delta = sdk.graph.users.delta
    query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters
    page = sdk.run(delta.get(config(builder=query, select=["displayName", "department"])))
    ids: list[str] = []
    while True:
        assert page is not None
        assert page.value is not None
        ids += [str(u.id) for u in page.value]
        if page.odata_delta_link:
            link = page.odata_delta_link
            break
        page = sdk.run(delta.with_url(str(page.odata_next_link)).get())
    assert len(ids) == 15

    sdk.run(sdk.graph.users.by_user_id(BOB["id"]).patch(User(department="Ops")))
    sdk.run(sdk.graph.users.by_user_id(CYD["id"]).delete())
    changes = sdk.run(delta.with_url(link).get())
    assert changes is not None
    assert changes.value is not None
    got = {str(u.id): u for u in changes.value}
    assert set(got) == {BOB["id"], CYD["id"]}
    assert got[BOB["id"]].department == "Ops"
    assert got[CYD["id"]].additional_data["@removed"] == {"reason": "changed"}
    assert changes.odata_delta_link


# ---------------------------------------------------------------- groups and members


def test_groups_members_and_refs(sdk: SdkClient) -> None:
    groups = sdk.graph.groups
    listed = sdk.run(groups.get())
    assert listed is not None
    assert listed.value is not None
    assert {g.display_name for g in listed.value} == {"Sync scope", "Inner"}
    members = sdk.run(groups.by_group_id(GROUP).members.get())
    assert members is not None
    assert members.value is not None
    kinds = {m.id: type(m).__name__ for m in members.value}
    assert kinds == {ANN["id"]: "User", INNER: "Group"}  # typed by @odata.type
    users_only = sdk.run(groups.by_group_id(GROUP).members.graph_user.get())
    assert users_only is not None
    assert [u.id for u in users_only.value or []] == [ANN["id"]]
    transitive = sdk.run(groups.by_group_id(GROUP).transitive_members.graph_user.get())
    assert transitive is not None
    assert sorted(u.id for u in transitive.value or []) == sorted([ANN["id"], BOB["id"]])
    counted = sdk.run(groups.by_group_id(GROUP).members.count.get(config(eventual=True)))
    assert counted == 2

    ref = ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{CYD['id']}")
    sdk.run(groups.by_group_id(GROUP).members.ref.post(ref))
    again = sdk.error(groups.by_group_id(GROUP).members.ref.post(ref))
    assert again.response_status_code == 400
    sdk.run(groups.by_group_id(GROUP).members.by_directory_object_id(ANN["id"]).ref.delete())
    after = sdk.run(groups.by_group_id(GROUP).members.graph_user.get())
    assert after is not None
    assert [u.id for u in after.value or []] == [CYD["id"]]
    member_of = sdk.run(
        sdk.graph.users.by_user_id(BOB["id"]).transitive_member_of.graph_group.get()
    )
    assert member_of is not None
    assert sorted(g.id for g in member_of.value or []) == sorted([GROUP, INNER])


def test_groups_delta_with_members(sdk: SdkClient) -> None:
    delta = sdk.graph.groups.delta
    query = GroupsDeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters
    page = sdk.run(delta.get(config(builder=query, select=["displayName", "members"])))
    assert page is not None
    assert page.odata_delta_link
    first = {g.id: g for g in page.value or []}
    members = first[GROUP].additional_data["members@delta"]
    assert sorted(str(m["id"]) for m in members) == sorted([ANN["id"], INNER])

    ref = ReferenceCreate(odata_id=directory_object(CYD["id"]))
    sdk.run(sdk.graph.groups.by_group_id(GROUP).members.ref.post(ref))
    sdk.run(
        sdk.graph.groups.by_group_id(GROUP).members.by_directory_object_id(ANN["id"]).ref.delete()
    )
    changes = sdk.run(delta.with_url(page.odata_delta_link).get())
    assert changes is not None
    (group,) = changes.value or []
    assert group.id == GROUP
    moved = {str(m["id"]): "@removed" in m for m in group.additional_data["members@delta"]}
    assert moved == {CYD["id"]: False, ANN["id"]: True}


def directory_object(object_id: str) -> str:
    return f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"


def test_group_writes_through_the_sdk(sdk: SdkClient) -> None:
    groups = sdk.graph.groups
    created = sdk.run(
        groups.post(
            Group(
                display_name="Engineers",
                mail_enabled=False,
                mail_nickname="engineers",
                security_enabled=True,
                additional_data={"members@odata.bind": [directory_object(ANN["id"])]},
            )
        )
    )
    assert created is not None
    assert created.id
    assert created.security_enabled is True
    sdk.run(
        groups.by_group_id(created.id).patch(
            Group(
                description="Built with the SDK",
                additional_data={
                    "members@odata.bind": [directory_object(BOB["id"]), directory_object(CYD["id"])]
                },
            )
        )
    )
    members = sdk.run(groups.by_group_id(created.id).members.graph_user.get())
    assert members is not None
    assert sorted(u.id for u in members.value or []) == sorted([ANN["id"], BOB["id"], CYD["id"]])
    refused = sdk.error(
        groups.post(Group(display_name="No nickname", mail_enabled=False, security_enabled=True))
    )
    assert refused.response_status_code == 400
    sdk.run(groups.by_group_id(created.id).delete())
    deleted = sdk.run(sdk.graph.directory.deleted_items.graph_group.get())
    assert deleted is not None
    assert [g.id for g in deleted.value or []] == [created.id]


def test_manager_through_the_sdk(sdk: SdkClient) -> None:
    users = sdk.graph.users
    cyd = users.by_user_id(CYD["id"])
    assert sdk.error(cyd.manager.get()).response_status_code == 404
    sdk.run(
        cyd.manager.ref.put(
            ReferenceUpdate(odata_id=f"https://graph.microsoft.com/v1.0/users/{ANN['id']}")
        )
    )
    manager = sdk.run(cyd.manager.get())
    assert isinstance(manager, User)  # typed from @odata.type
    assert manager.id == ANN["id"]
    expanded = sdk.run(
        cyd.get(
            config(
                builder=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters,
                select=["displayName"],
                expand=["manager($select=id,displayName)"],
            )
        )
    )
    assert expanded is not None
    assert expanded.manager is not None
    assert (expanded.manager.id, expanded.manager.display_name) == (ANN["id"], "Ann Lee")

    query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters
    page = sdk.run(
        users.delta.get(config(builder=query, select=["displayName", "manager"], top=999))
    )
    assert page is not None
    link = str(page.odata_delta_link)
    sdk.run(cyd.manager.ref.delete())
    changes = sdk.run(users.delta.with_url(link).get())
    assert changes is not None
    assert [u.id for u in changes.value or []] == [CYD["id"]]
    (removed,) = changes.value[0].additional_data["manager@delta"]  # type: ignore[index]
    assert str(removed["id"]) == ANN["id"]  # the SDK's untyped values make GUIDs UUIDs
    assert removed["@removed"] == {"reason": "deleted"}


# ---------------------------------------------------------------- invitations, recycle bin


def test_invitation_creates_a_guest(sb: SandboxHandle, sdk: SdkClient) -> None:
    target = SdkClient.connect(sb, *client_of(TARGET))
    try:
        invitation = target.run(
            target.graph.invitations.post(
                Invitation(
                    invited_user_email_address=ANN["mail"],
                    invite_redirect_url="https://myapplications.microsoft.com",
                    send_invitation_message=False,
                    invited_user_type="Member",
                )
            )
        )
        assert invitation is not None
        assert invitation.invited_user is not None
        assert invitation.status == "Completed"  # both tenants auto-redeem
        guest = target.run(
            target.graph.users.by_user_id(str(invitation.invited_user.id)).get(
                config(
                    builder=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters,
                    select=["userPrincipalName", "userType", "externalUserState", "creationType"],
                )
            )
        )
        assert guest is not None
        assert guest.user_principal_name == "ann_contoso.com#EXT#@fabrikam.onmicrosoft.com"
        assert (guest.user_type, guest.external_user_state, guest.creation_type) == (
            "Member",
            "Accepted",
            "Invitation",
        )
    finally:
        target.close()


def test_deleted_items_with_casts_and_restore(sdk: SdkClient) -> None:
    sdk.run(sdk.graph.users.by_user_id(BOB["id"]).delete())
    deleted = sdk.graph.directory.deleted_items
    query = GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters
    listed = sdk.run(
        deleted.graph_user.get(
            config(builder=query, select=["id", "displayName", "deletedDateTime"])
        )
    )
    assert listed is not None
    assert [u.id for u in listed.value or []] == [BOB["id"]]
    assert listed.value[0].deleted_date_time is not None  # type: ignore[index]
    one = sdk.run(deleted.by_directory_object_id(BOB["id"]).graph_user.get())
    assert one is not None
    assert one.display_name == "Bob Stone"
    assert (
        sdk.error(deleted.by_directory_object_id(BOB["id"]).graph_group.get()).response_status_code
        == 404
    )
    assert sdk.run(deleted.graph_user.count.get(config(eventual=True))) == 1

    restored = sdk.run(deleted.by_directory_object_id(BOB["id"]).restore.post())
    assert restored is not None
    assert restored.id == BOB["id"]
    assert sdk.run(sdk.graph.users.by_user_id(BOB["id"]).get()) is not None
    sdk.run(sdk.graph.users.by_user_id(BOB["id"]).delete())
    sdk.run(deleted.by_directory_object_id(BOB["id"]).delete())  # purged
    assert sdk.error(deleted.by_directory_object_id(BOB["id"]).get()).response_status_code == 404


# ---------------------------------------------------------------- $batch


def relative_to_version(item: BatchRequestItem) -> BatchRequestItem:
    """msgraph-core 1.5 keeps the absolute URL of a request it has sent before (and its
    `set_url` leaves `/v1.0` in): Graph wants `/users/...`, so strip scheme, host and version."""
    path = urlsplit(item.url)
    item.url = path.path.split("/v1.0", 1)[-1] + (f"?{path.query}" if path.query else "")
    return item


def test_batch_through_the_sdk_classes(sb: SandboxHandle, sdk: SdkClient) -> None:
    users = sdk.graph.users
    read = BatchRequestItem(users.by_user_id(ANN["id"]).to_get_request_information(), id="read")
    write = BatchRequestItem(
        users.by_user_id(BOB["id"]).to_patch_request_information(User(job_title="Batched")),
        id="write",
    )
    missing = BatchRequestItem(
        users.by_user_id("nobody").to_get_request_information(), id="missing"
    )

    # As Graph does, the sandbox answers an absolute item URL 400, item by item.
    absolute = BatchRequestContent()
    for item in (read, write):
        item.url = f"{sb.url}/v1.0{relative_to_version(item).url}"
        absolute.add_request(item.id, item)
    refused = sdk.run(sdk.graph.batch.post(batch_request_content=absolute))
    assert refused is not None
    assert refused.responses is not None
    assert {rid: r.status for rid, r in refused.responses.items()} == {"read": 400, "write": 400}

    content = BatchRequestContent()
    for item in (read, write, missing):
        content.add_request(item.id, relative_to_version(item))
    answer = sdk.run(sdk.graph.batch.post(batch_request_content=content))
    assert answer is not None
    assert answer.responses is not None
    statuses = {rid: r.status for rid, r in answer.responses.items()}
    assert statuses == {"read": 200, "write": 204, "missing": 404}
    assert answer.responses["read"].headers["x-ms-resource-unit"] == "1"
    # msgraph-core 1.5 reads item bodies only when they are base64 strings, and Graph (like
    # the sandbox) sends JSON objects: the effect is read through the API instead.
    bob = sdk.run(
        users.by_user_id(BOB["id"]).get(
            config(
                builder=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters,
                select=["jobTitle"],
            )
        )
    )
    assert bob is not None
    assert bob.job_title == "Batched"


# ---------------------------------------------------------------- cross-tenant access


def test_cross_tenant_partners(sdk: SdkClient) -> None:
    partners = sdk.graph.policies.cross_tenant_access_policy.partners
    listed = sdk.run(partners.get())
    assert listed is not None
    assert [p.tenant_id for p in listed.value or []] == [TARGET["tenant_id"]]
    one = partners.by_cross_tenant_access_policy_configuration_partner_tenant_id(
        TARGET["tenant_id"]
    )
    got = sdk.run(one.get())
    assert got is not None
    assert got.automatic_user_consent_settings is not None
    assert got.automatic_user_consent_settings.inbound_allowed is True
    sync = sdk.run(one.identity_synchronization.get())
    assert sync is not None
    assert sync.user_sync_inbound is not None
    assert sync.user_sync_inbound.is_sync_allowed is True


# ---------------------------------------------------------------- 401, 403, 404, 429


class _BogusCredential:
    """An azure-core TokenCredential that hands out a token the sandbox never issued."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("not-a-token", int(time.time()) + 3600)


def test_errors_401_403_404(sb: SandboxHandle, sdk: SdkClient) -> None:
    verify = sb.ssl_context()
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=verify)
    )
    adapter = GraphRequestAdapter(
        AzureIdentityAuthenticationProvider(_BogusCredential(), scopes=[GRAPH_SCOPE]), client=http
    )  # type: ignore[arg-type]
    adapter.base_url = f"{sb.url}/v1.0"
    bogus = GraphServiceClient(request_adapter=adapter)
    unauthorized = sdk.error(bogus.users.get())
    assert unauthorized.response_status_code == 401
    sdk.run(http.aclose())

    reader = SdkClient.connect(sb, SOURCE["tenant_id"], READER, "reader")
    try:
        assert reader.run(reader.graph.users.by_user_id(ANN["id"]).get()) is not None
        denied = reader.error(reader.graph.users.by_user_id(ANN["id"]).patch(User(job_title="x")))
        assert denied.response_status_code == 403
        assert denied.error.code == "Authorization_RequestDenied"  # type: ignore[attr-defined]
        assert reader.error(reader.graph.groups.get()).response_status_code == 403
    finally:
        reader.close()

    missing = sdk.error(sdk.graph.users.by_user_id(new_id()).get())
    assert missing.response_status_code == 404
    assert missing.error.code == "Request_ResourceNotFound"  # type: ignore[attr-defined]

    wrong = ClientSecretCredential(
        SOURCE["tenant_id"],
        client_of(SOURCE)[1],
        "wrong",
        authority=sb.url,
        disable_instance_discovery=True,
        connection_verify=str(sb.ca_path),
    )
    with pytest.raises((ClientAuthenticationError, CredentialUnavailableError)) as caught:
        wrong.get_token(GRAPH_SCOPE)
    assert "AADSTS7000215" in str(caught.value)
    wrong.close()


def test_throttling_429_and_the_sdk_retry(sb: SandboxHandle, sdk: SdkClient) -> None:
    sb.set_limits(resource_units_per_10s=4, window_scale=0.5)  # 4 RU per 5 s
    users = sdk.graph.users
    # 2 RU a call: the third in one window is refused. A loaded machine can stretch three calls
    # over a window, so keep calling (without the SDK's retries) until one is refused.
    throttled: APIError | None = None
    for _ in range(8):
        try:
            assert sdk.run(users.get(config(retries=0))) is not None
        except APIError as refused:
            throttled = refused
            break
    assert throttled is not None, "eight calls at 2 RU each against 4 RU per 5 s: none refused"
    assert throttled.response_status_code == 429
    headers = {k.lower(): v for k, v in (throttled.response_headers or {}).items()}
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert headers["x-ms-throttle-scope"].startswith("Tenant_Application/ReadWrite/")
    # The SDK's retry handler waits Retry-After and tries again: the call succeeds.
    assert sdk.run(users.get()) is not None
    assert sb.stats()["throttled"] >= 2
