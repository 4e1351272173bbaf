"""Microsoft's own Graph SDK for Python (msgraph-sdk) drives `tenant-sync serve` the way a
runbook written for Entra's synchronization API does, with only its base URL changed.

The SDK (kiota) sends its bearer token only over https, except to localhost / 127.0.0.1, which
is what these tests use; the credential is any azure-core TokenCredential: here one that hands
out a static token of `api.auth.tokens` (README, Operator service).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.audit_logs.provisioning.provisioning_request_builder import (
    ProvisioningRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.provisioning_action import ProvisioningAction
from msgraph.generated.models.provisioning_object_summary import ProvisioningObjectSummary
from msgraph.generated.models.provisioning_result import ProvisioningResult
from msgraph.generated.models.quarantine_reason import QuarantineReason
from msgraph.generated.models.synchronization_job_application_parameters import (
    SynchronizationJobApplicationParameters,
)
from msgraph.generated.models.synchronization_job_restart_criteria import (
    SynchronizationJobRestartCriteria,
)
from msgraph.generated.models.synchronization_job_restart_scope import (
    SynchronizationJobRestartScope,
)
from msgraph.generated.models.synchronization_job_subject import SynchronizationJobSubject
from msgraph.generated.models.synchronization_schedule_state import SynchronizationScheduleState
from msgraph.generated.models.synchronization_status_code import SynchronizationStatusCode
from msgraph.generated.models.synchronization_task_execution_result import (
    SynchronizationTaskExecutionResult,
)
from msgraph.generated.service_principals.item.synchronization.jobs.item.provision_on_demand.provision_on_demand_post_request_body import (
    ProvisionOnDemandPostRequestBody,
)
from msgraph.generated.service_principals.item.synchronization.jobs.item.restart.restart_post_request_body import (
    RestartPostRequestBody,
)
from msgraph_core.tasks.page_iterator import PageIterator

from tests.support.serve import (
    AMBIGUOUS_USER,
    OPERATE_TOKEN,
    READ_TOKEN,
    Served,
    served_world,
)

pytestmark = [
    pytest.mark.integration,
    # The SDK's generated request builders warn about their own deprecated classes.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]

SCOPES = ["api://tenant-sync/.default"]


class StaticTokenCredential:
    """An azure-core TokenCredential that hands out one static bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def graph(served: Served, token: str = OPERATE_TOKEN) -> GraphServiceClient:
    """The client a Graph script builds, pointed at serve instead of graph.microsoft.com."""
    client = GraphServiceClient(credentials=StaticTokenCredential(token), scopes=SCOPES)
    client.request_adapter.base_url = f"{served.service.url}/v1.0"
    return client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_world(tmp_path_factory.mktemp("sdk")) as world:
        yield world


def test_the_sdk_reads_provisioning_logs_with_filters_and_paging(served: Served) -> None:
    async def script() -> None:
        client = graph(served, READ_TOKEN)
        logs = client.audit_logs.provisioning

        def query(filter_: str, top: int) -> RequestConfiguration[Any]:
            return RequestConfiguration(
                query_parameters=ProvisioningRequestBuilder.ProvisioningRequestBuilderGetQueryParameters(
                    filter=filter_, top=top
                )
            )

        everything = await logs.get(query("jobId eq 'sync'", 1000))
        assert everything is not None
        assert everything.value
        assert everything.odata_next_link is None
        creates = [
            r.id for r in everything.value if r.provisioning_action == ProvisioningAction.Create
        ]

        # page by page, following @odata.nextLink with with_url
        first = await logs.get(query("jobId eq 'sync' and provisioningAction eq 'create'", 5))
        assert first is not None
        assert first.value is not None
        paged = [r.id for r in first.value]
        link = first.odata_next_link
        while link:
            page = await logs.with_url(link).get()
            assert page is not None
            assert page.value is not None
            assert len(page.value) <= 5
            paged += [r.id for r in page.value]
            link = page.odata_next_link
        assert paged == creates

        # and with the SDK's PageIterator
        iterated: list[str | None] = []

        def collect(row: ProvisioningObjectSummary) -> bool:
            iterated.append(row.id)
            return True

        start = await logs.get(query("jobId eq 'sync' and provisioningAction eq 'create'", 4))
        await PageIterator(start, client.request_adapter).iterate(collect)
        assert iterated == creates

        failed = await logs.get(
            query("provisioningStatusInfo/status eq 'failure' and jobId eq 'sync'", 50)
        )
        assert failed is not None
        assert failed.value
        twin = served.source_user(AMBIGUOUS_USER)
        for row in failed.value:
            assert row.provisioning_status_info is not None
            assert row.provisioning_status_info.status == ProvisioningResult.Failure
            assert row.provisioning_status_info.error_information is not None
            assert row.provisioning_status_info.error_information.error_code == "AmbiguousMatch"
            assert row.source_identity is not None
            assert row.source_identity.id == twin["id"]
        newest = everything.value[0]
        assert newest.activity_date_time is not None
        since = newest.activity_date_time.isoformat().replace("+00:00", "Z")
        recent = await logs.get(query(f"activityDateTime ge {since}", 1000))
        assert recent is not None
        assert recent.value
        assert all(r.activity_date_time >= newest.activity_date_time for r in recent.value)  # type: ignore[operator]

        with pytest.raises(ODataError) as refused:
            await logs.get(query("displayName eq 'x'", 10))
        assert refused.value.response_status_code == 400
        assert refused.value.error is not None
        assert refused.value.error.message is not None
        assert "'displayName' cannot be filtered on" in refused.value.error.message

    asyncio.run(script())


def test_the_sdk_drives_a_job_start_pause_restart_provision_schema(served: Served) -> None:
    async def script() -> None:
        client = graph(served)
        principals = await client.service_principals.get()
        assert principals is not None
        assert principals.value is not None
        assert [(sp.id, sp.display_name, sp.app_id) for sp in principals.value] == [
            ("sync", "sync", None)
        ]
        jobs = client.service_principals.by_service_principal_id("sync").synchronization.jobs
        listed = await jobs.get()
        assert listed is not None
        assert [j.id for j in listed.value or []] == ["sync"]
        job = jobs.by_synchronization_job_id("sync")

        async def status() -> Any:
            found = await job.get()
            assert found is not None
            assert found.status is not None
            return found

        found = await status()
        assert found.template_id == "Azure2Azure"
        assert found.schedule.interval == timedelta(minutes=40)
        assert found.schedule.state == SynchronizationScheduleState.Active
        assert found.status.code == SynchronizationStatusCode.Quarantine
        assert found.status.quarantine.reason == QuarantineReason.TooManyDeletes
        last = found.status.last_execution
        assert last.state == SynchronizationTaskExecutionResult.EntryLevelErrors
        assert (last.count_exported, last.count_escrowed) == (1, 1)
        assert found.status.additional_data["stagedDeletes"] == 4  # tenant-sync's own

        await job.pause.post()
        found = await status()
        assert found.schedule.state == SynchronizationScheduleState.Paused
        assert found.status.code == SynchronizationStatusCode.Paused
        await job.start.post()
        found = await status()
        assert found.schedule.state == SynchronizationScheduleState.Active
        assert found.status.code == SynchronizationStatusCode.Quarantine  # a cycle decides

        async def restart(scope: SynchronizationJobRestartScope) -> dict[str, Any]:
            criteria = SynchronizationJobRestartCriteria(reset_scope=scope)
            await job.restart.post(RestartPostRequestBody(criteria=criteria))
            after = await status()
            extra: dict[str, Any] = after.status.additional_data
            return {
                "code": after.status.code,
                "watermark": extra["watermark"] is not None,
                "escrows": extra["escrows"],
                "staged": extra["stagedDeletes"],
                "allowDeletes": extra["allowDeletes"],
            }

        held = {
            "code": SynchronizationStatusCode.Quarantine,
            "watermark": True,
            "escrows": 1,
            "staged": 4,
            "allowDeletes": False,
        }
        assert await restart(SynchronizationJobRestartScope.None_) == held
        held["allowDeletes"] = True
        assert await restart(SynchronizationJobRestartScope.ForceDeletes) == held
        held["escrows"] = 0
        assert await restart(SynchronizationJobRestartScope.Escrows) == held
        held["watermark"] = False
        assert await restart(SynchronizationJobRestartScope.Watermark) == held
        held["code"] = SynchronizationStatusCode.Active
        assert await restart(SynchronizationJobRestartScope.QuarantineState) == held
        held["staged"] = 0
        assert await restart(SynchronizationJobRestartScope.Full) == held

        user = served.source_user(3)
        subject = SynchronizationJobSubject(object_id=user["id"], object_type_name="User")
        answer = await job.provision_on_demand.post(
            ProvisionOnDemandPostRequestBody(
                parameters=[SynchronizationJobApplicationParameters(subjects=[subject])]
            )
        )
        assert answer is not None
        assert answer.key
        assert answer.value
        assert json.loads(answer.key)["result"] == "Skipped"  # already in sync
        steps = json.loads(answer.value)["provisioningSteps"]
        assert [s["type"] for s in steps] == ["Import", "Scoping", "Matching", "Processing"]

        schema = await job.schema.get()
        assert schema is not None
        assert schema.synchronization_rules
        mappings = schema.synchronization_rules[0].object_mappings[0].attribute_mappings
        assert "displayName" in {m.target_attribute_name for m in mappings}
        assert [d.name for d in schema.directories or []] == ["contoso", "fabrikam"]

    asyncio.run(script())


def test_the_sdk_raises_odata_errors_for_roles_tokens_and_unknown_jobs(served: Served) -> None:
    async def script() -> None:
        def job(client: GraphServiceClient, name: str = "sync") -> Any:
            return client.service_principals.by_service_principal_id(
                name
            ).synchronization.jobs.by_synchronization_job_id(name)

        with pytest.raises(ODataError) as weak:
            await job(graph(served, READ_TOKEN)).pause.post()
        assert weak.value.response_status_code == 403
        assert weak.value.error is not None
        assert weak.value.error.code == "Authorization_RequestDenied"
        assert weak.value.error.message == "reader does not have the TenantSync.Operate role"
        still = await job(graph(served, READ_TOKEN)).get()
        assert still.schedule.state == SynchronizationScheduleState.Active  # not paused

        with pytest.raises(ODataError) as unknown_token:
            await job(graph(served, "a-token-nobody-issued")).get()
        assert unknown_token.value.response_status_code == 401
        assert unknown_token.value.error.code == "InvalidAuthenticationToken"

        with pytest.raises(ODataError) as missing:
            await job(graph(served), "no-such-job").get()
        assert missing.value.response_status_code == 404
        assert missing.value.error.code == "Request_ResourceNotFound"

    asyncio.run(script())
