"""`tenant-sync serve` as a real process, driven over HTTP: Graph's synchronization API, the
provisioning logs, the /api/ extensions, tokens and roles.

Most tests read one served world (tests/support/serve.py: two cycles, a quarantine over held
deletions, an escrowed failure); the tests that change a job's state get a world of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import SyncEnv
from tests.support.csdl import validate_collection, validate_entity
from tests.support.serve import (
    AMBIGUOUS_USER,
    OPERATE_TOKEN,
    READ_TOKEN,
    REMOVED_USERS,
    RENAMED_USER,
    Served,
    ServiceHandle,
    add_api_section,
    running_service,
    served_world,
)
from tests.support.world import GROUP, TARGET

pytestmark = pytest.mark.integration

JOB = "/v1.0/servicePrincipals/sync/synchronization/jobs/sync"
LOGS = "/v1.0/auditLogs/provisioning"
# tenant-sync's own properties beside Graph's (docs/operator-service.md)
STATUS_EXTRAS = {
    "job",
    "running",
    "watermark",
    "linkedUsers",
    "groups",
    "escrows",
    "stagedDeletes",
    "allowDeletes",
    "deletionThreshold",
    "cycleProgress",
}
EXECUTION_EXTRAS = {"mode", "trigger", "counts"}
ROW_EXTRAS = {"action", "reason"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_world(tmp_path_factory.mktemp("api")) as world:
        yield world


@pytest.fixture
def fresh(sync_env: SyncEnv, tmp_path: Path) -> Iterator[tuple[SyncEnv, ServiceHandle]]:
    """A world of its own: the sandbox, one full cycle, and serve."""
    add_api_section(sync_env.config)
    sync_env.run_json("--full")
    with running_service(sync_env.config, tmp_path / "serve") as service:
        yield sync_env, service


def graph_only(job: dict[str, Any]) -> dict[str, Any]:
    """A synchronizationJob body without tenant-sync's documented extra properties."""
    body = {k: v for k, v in job.items() if not k.startswith("@")}
    status = {k: v for k, v in body["status"].items() if k not in STATUS_EXTRAS}
    for key in ("lastExecution", "lastSuccessfulExecution", "lastSuccessfulExecutionWithExports"):
        if status[key] is not None:
            status[key] = {k: v for k, v in status[key].items() if k not in EXECUTION_EXTRAS}
    return body | {"status": status}


def odata_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error["innerError"]) == {"date", "request-id"}
    message: str = error["message"]
    return message


def all_rows(client: httpx.Client, filter_: str | None = None) -> list[dict[str, Any]]:
    params = {"$top": "1000"} | ({"$filter": filter_} if filter_ else {})
    body = client.get(LOGS, params=params).json()
    assert "@odata.nextLink" not in body
    rows: list[dict[str, Any]] = body["value"]
    return rows


# tokens and roles --------------------------------------------------------------------------------
def test_every_route_but_healthz_wants_a_token_with_the_right_role(served: Served) -> None:
    anonymous = served.service.client(token=None)
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    for path in (
        "/v1.0/servicePrincipals",
        JOB,
        f"{JOB}/schema",
        LOGS,
        "/api/jobs",
        "/api/jobs/sync/staged",
        "/api/openapi.json",
    ):
        response = anonymous.get(path)
        message = odata_error(response, 401, "InvalidAuthenticationToken")
        assert "Bearer" in message
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = served.service.client(token="not-a-token-of-this-service")
    message = odata_error(wrong.get(JOB), 401, "InvalidAuthenticationToken")
    assert "matches no known token" in message
    basic = anonymous.get(JOB, headers={"Authorization": f"Basic {OPERATE_TOKEN}"})
    odata_error(basic, 401, "InvalidAuthenticationToken")

    reader = served.reader()
    assert reader.get(JOB).status_code == 200
    before = reader.get(JOB).json()["status"]
    for path, body in (
        (f"{JOB}/pause", None),
        (f"{JOB}/start", None),
        (f"{JOB}/restart", {"criteria": {"resetScope": "Full"}}),
        (f"{JOB}/provisionOnDemand", {"parameters": []}),
        ("/api/jobs/sync/trigger", {"full": True}),
        ("/api/jobs/sync/allow-deletes", None),
        ("/api/jobs/sync/resume", None),
    ):
        message = odata_error(reader.post(path, json=body), 403, "Authorization_RequestDenied")
        assert message == "reader does not have the TenantSync.Operate role"
    after = reader.get(JOB).json()["status"]
    assert after["code"] == before["code"] == "Quarantine"  # nothing changed
    assert (after["stagedDeletes"], after["allowDeletes"]) == (4, False)
    assert after["watermark"] == before["watermark"]


def test_unknown_jobs_are_404_in_graphs_error_shape(served: Served) -> None:
    client = served.reader()
    message = odata_error(
        client.get("/v1.0/servicePrincipals/nope"), 404, "Request_ResourceNotFound"
    )
    assert "Service principal 'nope' does not exist" in message
    assert "(known: sync)" in message
    message = odata_error(
        client.get("/v1.0/servicePrincipals/sync/synchronization/jobs/other"),
        404,
        "Request_ResourceNotFound",
    )
    assert "its one job is 'sync'" in message
    odata_error(client.get("/api/jobs/nope/runs"), 404, "Request_ResourceNotFound")
    operator = served.operator()
    odata_error(
        operator.post("/v1.0/servicePrincipals/nope/synchronization/jobs/nope/pause"),
        404,
        "Request_ResourceNotFound",
    )
    odata_error(operator.post("/api/jobs/nope/trigger"), 404, "Request_ResourceNotFound")


# service principals and jobs --------------------------------------------------------------------
def test_each_job_is_a_service_principal_with_one_job(served: Served) -> None:
    client = served.reader()
    listed = client.get("/v1.0/servicePrincipals").json()
    assert listed["@odata.context"].endswith("/v1.0/$metadata#servicePrincipals")
    assert listed["value"] == [{"id": "sync", "displayName": "sync", "appId": None}]
    one = client.get("/v1.0/servicePrincipals/sync").json()
    assert {k: v for k, v in one.items() if not k.startswith("@")} == listed["value"][0]
    by_name = client.get(
        "/v1.0/servicePrincipals", params={"$filter": "displayName eq 'sync'", "$top": "5"}
    )
    assert [sp["id"] for sp in by_name.json()["value"]] == ["sync"]
    none = client.get("/v1.0/servicePrincipals", params={"$filter": "displayName eq 'x'"})
    assert none.json()["value"] == []
    selected = client.get("/v1.0/servicePrincipals", params={"$select": "displayName"})
    assert selected.json()["value"] == [{"id": "sync", "displayName": "sync"}]
    message = odata_error(
        client.get("/v1.0/servicePrincipals", params={"$filter": "startswith(displayName,'s')"}),
        400,
        "BadRequest",
    )
    assert "startswith" in message

    jobs = client.get("/v1.0/servicePrincipals/sync/synchronization/jobs").json()
    assert [j["id"] for j in jobs["value"]] == ["sync"]
    assert not validate_collection(
        "synchronizationJob", jobs | {"value": [graph_only(j) for j in jobs["value"]]}
    )


def test_the_job_shows_schedule_and_status_as_graph_types_them(served: Served) -> None:
    job = served.reader().get(JOB).json()
    assert not validate_entity("synchronizationJob", graph_only(job)), job
    assert job["templateId"] == "Azure2Azure"
    assert job["schedule"] == {"expiration": None, "interval": "PT40M", "state": "Active"}
    status = job["status"]
    assert status["code"] == "Quarantine"
    assert status["quarantine"]["reason"] == "TooManyDeletes"
    assert "4 deletions" in status["quarantine"]["error"]["message"]
    last = status["lastExecution"]
    assert last["state"] == "EntryLevelErrors"  # the escrowed user failed again
    assert last["mode"] == "incremental"
    assert (last["countExported"], last["countEscrowed"]) == (1, 1)  # the rename; the twin
    assert last["counts"]["staged_delete"] == 4
    # held deletions and an escrowed user do not make a cycle fail: it is the last success too
    assert status["lastSuccessfulExecution"]["activityIdentifier"] == last["activityIdentifier"]
    exported = status["lastSuccessfulExecutionWithExports"]
    assert exported["activityIdentifier"] == last["activityIdentifier"]
    assert status["synchronizedEntryCountByType"] == [{"key": "User", "value": 19}]
    assert (status["escrows"], status["stagedDeletes"]) == (1, 4)
    assert status["progress"] == []
    assert status["cycleProgress"] is None
    assert status["steadyStateFirstAchievedTime"].endswith("Z")


def test_schema_shows_scope_filters_and_mappings(served: Served) -> None:
    schema = served.reader().get(f"{JOB}/schema").json()
    graph_part = {k: v for k, v in schema.items() if k not in {"tenantSync", "@odata.context"}}
    rule = graph_part["synchronizationRules"][0]
    mapping = rule["objectMappings"][0]
    for attribute in mapping["attributeMappings"]:
        assert attribute.pop("written") is (attribute["targetAttributeName"] != "userPrincipalName")
    assert not validate_entity("synchronizationSchema", graph_part)
    assert mapping["flowTypes"] == "Add, Update, Delete"
    by_target = {m["targetAttributeName"]: m for m in mapping["attributeMappings"]}
    assert by_target["displayName"]["source"] == {
        "type": "Attribute",
        "name": "displayName",
        "expression": "[displayName]",
        "parameters": [],
    }
    assert by_target["showInAddressList"]["source"]["type"] == "Constant"
    assert by_target["showInAddressList"]["source"]["name"] == "True"
    assert [d["name"] for d in schema["directories"]] == ["contoso", "fabrikam"]
    extra = schema["tenantSync"]
    assert extra["scope"] == {
        "users": "assigned",
        "userIds": [],
        "groups": [GROUP],
        "nestedGroups": False,
    }
    assert extra["deletionThreshold"] == {"count": 3, "percent": None}


def test_schema_lists_scoping_filters_as_graph_filter_clauses(
    sync_env: SyncEnv, tmp_path: Path
) -> None:
    import yaml

    data = yaml.safe_load(sync_env.config.read_text())
    data["jobs"]["sync"]["scope"]["filters"] = [
        [{"attribute": "department", "operator": "EQUALS", "value": "Sales"}],
        [
            {"attribute": "jobTitle", "operator": "IS NOT NULL"},
            {"attribute": "country", "operator": "IS IN", "value": ["NO", "SE"]},
        ],
    ]
    data["jobs"]["sync"]["mappings"] = [
        {"target": "displayName", "expression": 'Join(" ", [givenName], [surname])'},
        {"target": "mail", "source": "mail", "match": 1},
        {"target": "jobTitle", "source": "jobTitle", "apply": "on_create", "default": "Staff"},
    ]
    sync_env.config.write_text(yaml.safe_dump(data))
    add_api_section(sync_env.config)
    with running_service(sync_env.config, tmp_path / "serve") as service:
        schema = service.client(READ_TOKEN).get(f"{JOB}/schema").json()
    mapping = schema["synchronizationRules"][0]["objectMappings"][0]
    assert mapping["scope"]["groups"] == [
        {
            "name": "filter group 1",
            "clauses": [
                {
                    "operatorName": "EQUALS",
                    "sourceOperandName": "department",
                    "targetOperand": {"values": ["Sales"]},
                }
            ],
        },
        {
            "name": "filter group 2",
            "clauses": [
                {
                    "operatorName": "IS NOT NULL",
                    "sourceOperandName": "jobTitle",
                    "targetOperand": {"values": []},
                },
                {
                    "operatorName": "IS IN",
                    "sourceOperandName": "country",
                    "targetOperand": {"values": ["NO", "SE"]},
                },
            ],
        },
    ]
    by_target = {m["targetAttributeName"]: m for m in mapping["attributeMappings"]}
    assert by_target["displayName"]["source"]["type"] == "Function"
    assert by_target["displayName"]["source"]["name"] == "Join"
    assert by_target["mail"]["matchingPriority"] == 1
    assert by_target["jobTitle"]["flowType"] == "ObjectAddOnly"
    assert by_target["jobTitle"]["defaultValue"] == "Staff"
    source_attributes = {a["name"] for a in schema["directories"][0]["objects"][0]["attributes"]}
    assert {"givenName", "surname", "department", "country"} <= source_attributes


# provisioning on demand -------------------------------------------------------------------------
def provision(
    client: httpx.Client, object_id: str, type_name: str = "User", *, job: str = JOB
) -> httpx.Response:
    return client.post(
        f"{job}/provisionOnDemand",
        json={
            "parameters": [
                {
                    "ruleId": "user-to-user",
                    "subjects": [{"objectId": object_id, "objectTypeName": type_name}],
                }
            ]
        },
    )


def test_provision_on_demand_answers_with_the_steps(served: Served) -> None:
    import json

    client = served.operator()
    graph = served.env.source()
    created = graph.post(
        "/users",
        json={
            "accountEnabled": True,
            "displayName": "On Demand",
            "mailNickname": "ondemand",
            "userPrincipalName": "ondemand@contoso.onmicrosoft.com",
            "mail": "ondemand@contoso.com",
            "passwordProfile": {"password": "On-Demand-2026!"},
        },
    )
    created.raise_for_status()
    newcomer = created.json()["id"]
    graph.post(
        f"/groups/{GROUP}/members/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{newcomer}"},
    ).raise_for_status()

    answer = provision(client, newcomer)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["@odata.context"].endswith("#microsoft.graph.stringKeyStringValuePair")
    key, value = json.loads(body["key"]), json.loads(body["value"])
    assert key == {"result": "Success", "details": {"errorCode": None, "errorMessage": None}}
    assert value["action"] == "Create"
    assert [s["name"] for s in value["provisioningSteps"]] == [
        "EntryImport",
        "EntrySynchronizationScoping",
        "EntryMatching",
        "EntrySynchronizationAdd",
        "EntryExportAdd",
        "EntryExportUpdate",
    ]
    assert {s["status"] for s in value["provisioningSteps"]} == {"Success"}
    assert {p["displayName"] for p in value["modifiedProperties"]} >= {"displayName", "mail"}
    target_id = value["targetIdentity"]["id"]
    assert any(u["id"] == target_id for u in served.env.target_users())
    # the same row is in the provisioning log, under the change id the answer gave
    row = all_rows(client, f"changeId eq '{value['changeId']}'")
    assert [r["targetIdentity"]["id"] for r in row] == [target_id]

    again = json.loads(provision(client, newcomer).json()["key"])
    assert again["result"] == "Skipped"
    assert again["details"]["errorCode"] == "RedundantExport"

    outside = served.source_user(21)  # a member, but not of the group
    skipped = json.loads(json.loads(provision(client, outside["id"]).text)["value"])
    assert skipped["statusInfo"]["status"] == "Skipped"
    assert "not assigned" in skipped["statusInfo"]["reason"]


def test_provision_on_demand_refuses_what_it_cannot_do_and_records_nothing(
    served: Served,
) -> None:
    client = served.operator()
    before = all_rows(client)
    missing = "0b1c0000-dead-4000-8000-00000000beef"
    message = odata_error(provision(client, missing), 404, "Request_ResourceNotFound")
    assert f"no user {missing} in the source tenant" in message
    message = odata_error(provision(client, "ann@contoso.com"), 400, "BadRequest")
    assert "objectId must be the source user's object id (a GUID)" in message
    message = odata_error(provision(client, missing, "Group"), 400, "BadRequest")
    assert "objectTypeName 'Group' is not supported" in message
    two = client.post(
        f"{JOB}/provisionOnDemand",
        json={"parameters": [{"subjects": [{"objectId": missing}, {"objectId": missing}]}]},
    )
    assert "exactly one subject (found 2)" in odata_error(two, 400, "BadRequest")
    message = odata_error(client.post(f"{JOB}/provisionOnDemand", json={}), 400, "BadRequest")
    assert "parameters" in message
    assert all_rows(client) == before


# provisioning logs ------------------------------------------------------------------------------
def test_provisioning_logs_are_graph_rows_newest_first(served: Served) -> None:
    rows = all_rows(served.reader())
    assert not validate_collection(
        "provisioningObjectSummary",
        {"value": [{k: v for k, v in r.items() if k not in ROW_EXTRAS} for r in rows]},
    )
    times = [r["activityDateTime"] for r in rows]
    assert times == sorted(times, reverse=True)
    actions = {r["provisioningAction"] for r in rows}
    assert {"create", "update", "stagedDelete", "other"} <= actions
    twin = served.source_user(AMBIGUOUS_USER)
    failed = [r for r in rows if r["provisioningStatusInfo"]["status"] == "failure"]
    assert {r["sourceIdentity"]["id"] for r in failed} == {twin["id"]}
    assert failed[0]["provisioningStatusInfo"]["errorInformation"]["errorCode"] == "AmbiguousMatch"


def test_provisioning_log_filters(served: Served) -> None:
    client = served.reader()
    rows = all_rows(client, "jobId eq 'sync'")
    assert rows == all_rows(client)  # one job here
    cycles = list(dict.fromkeys(r["cycleId"] for r in rows))
    renamed = served.source_user(RENAMED_USER)

    def ids(filter_: str) -> list[str]:
        return [r["id"] for r in all_rows(client, filter_)]

    def expected(keep: Any) -> list[str]:
        return [r["id"] for r in rows if keep(r)]

    assert ids(f"cycleId eq '{cycles[0]}'") == expected(lambda r: r["cycleId"] == cycles[0])
    assert ids(f"changeId eq '{rows[3]['changeId']}'") == [rows[3]["id"]]
    assert ids("provisioningAction eq 'stagedDelete'") == expected(
        lambda r: r["provisioningAction"] == "stagedDelete"
    )
    assert len(ids("provisioningAction eq 'stagedDelete'")) == len(REMOVED_USERS)
    assert ids("provisioningStatusInfo/status eq 'failure' and jobId eq 'sync'") == expected(
        lambda r: r["provisioningStatusInfo"]["status"] == "failure"
    )
    by_source = ids(f"sourceIdentity/id eq '{renamed['id'].upper()}'")
    assert by_source == expected(lambda r: r["sourceIdentity"]["id"] == renamed["id"])
    assert len(by_source) >= 2  # created, then renamed
    target = next(r["targetIdentity"]["id"] for r in rows if r["targetIdentity"]["id"])
    assert ids(f"targetIdentity/id eq '{target}'") == expected(
        lambda r: r["targetIdentity"]["id"] == target
    )
    middle = rows[len(rows) // 2]["activityDateTime"]
    assert ids(f"activityDateTime ge {middle}") == expected(
        lambda r: r["activityDateTime"] >= middle
    )
    assert ids(f"activityDateTime lt {middle} and provisioningAction eq 'create'") == expected(
        lambda r: r["activityDateTime"] < middle and r["provisioningAction"] == "create"
    )
    later = (datetime.fromisoformat(rows[0]["activityDateTime"]) + timedelta(hours=1)).isoformat()
    assert ids(f"activityDateTime gt '{later}'") == []
    assert client.get(LOGS, params={"$filter": "jobId eq 'no-such-job'"}).json()["value"] == []


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"$filter": "displayName eq 'x'"}, "'displayName' cannot be filtered on"),
        ({"$filter": "jobId eq 'a' or jobId eq 'b'"}, "'or' is not supported"),
        ({"$filter": "provisioningAction eq 'explode'"}, "'explode' is not a provisioningAction"),
        ({"$filter": "activityDateTime ge soon"}, "'soon' is not a value"),
        ({"$filter": "jobId eq"}, "expected 'property operator value'"),
        ({"$top": "0"}, "$top must be a whole number from 1 to 1000, not '0'"),
        ({"$top": "5000"}, "not '5000'"),
        ({"$skiptoken": "made-up"}, "$skiptoken is not one this service issued"),
        ({"$orderby": "activityDateTime asc"}, "$orderby 'activityDateTime asc' is not supported"),
        ({"$skip": "10"}, "$skip is not supported"),
    ],
)
def test_provisioning_log_refuses_bad_options_naming_them(
    served: Served, params: dict[str, str], names: str
) -> None:
    message = odata_error(served.reader().get(LOGS, params=params), 400, "BadRequest")
    assert names in message


def test_provisioning_log_pages_stay_stable_while_rows_arrive(served: Served) -> None:
    client = served.operator()
    everything = [r["id"] for r in all_rows(client)]
    assert len(everything) > 12
    first = client.get(LOGS, params={"$top": "5", "$filter": "jobId eq 'sync'"}).json()
    seen = [r["id"] for r in first["value"]]
    link = first["@odata.nextLink"]
    assert link.startswith(served.service.url + LOGS)
    assert "skiptoken" in link
    # A row recorded while the client pages (a newer one) shifts nothing
    provision(client, served.source_user(3)["id"]).raise_for_status()
    while link:
        page = httpx.get(link, headers={"Authorization": f"Bearer {READ_TOKEN}"}).json()
        assert len(page["value"]) <= 5
        seen += [r["id"] for r in page["value"]]
        link = page.get("@odata.nextLink")
    assert seen == everything  # every row once, in order, none of the newer
    assert all_rows(client)[0]["id"] not in seen


# the /api/ extensions ---------------------------------------------------------------------------
def test_api_extensions_show_jobs_runs_staged_deletions_and_progress(served: Served) -> None:
    client = served.reader()
    (overview,) = client.get("/api/jobs").json()
    assert overview["job"] == "sync"
    assert (overview["source"], overview["target"]) == ("contoso", "fabrikam")
    assert overview["state"] == "Quarantine"
    assert overview["quarantine"]["reason"] == "TooManyDeletes"
    assert overview["lastCycle"]["mode"] == "incremental"
    assert overview["counts"]["staged_delete"] == 4
    assert overview["nextCycle"] is not None
    assert overview["progress"] is None
    assert client.get("/api/jobs/sync").json()["job"] == "sync"

    assert len(client.get("/api/jobs/sync/runs", params={"limit": 2}).json()) == 2
    runs = client.get("/api/jobs/sync/runs").json()
    cycles = [r for r in runs if r["mode"] != "on_demand"]  # provisioned on demand: runs too
    assert [(r["mode"], r["status"]) for r in cycles] == [
        ("incremental", "success"),
        ("full", "success"),
    ]
    full = cycles[-1]
    assert full["counts"]["create"] == 18
    assert full["durationS"] >= 0
    message = odata_error(client.get("/api/jobs/sync/runs", params={"limit": 0}), 400, "BadRequest")
    assert "limit" in message

    staged = client.get("/api/jobs/sync/staged").json()
    assert staged["count"] == 4
    assert staged["threshold"] == {"count": 3, "percent": None}
    removed = {served.source_user(i)["userPrincipalName"] for i in REMOVED_USERS}
    assert {d["sourceIdentity"] for d in staged["deletions"]} == removed
    live_targets = {u["id"] for u in served.env.target_users() if not u.get("deletedDateTime")}
    assert all(d["targetId"] in live_targets for d in staged["deletions"])  # not deleted yet

    progress = client.get("/api/jobs/sync/progress").json()
    assert progress == {"job": "sync", "running": False, "progress": None}

    document = client.get("/api/openapi.json").json()
    paths = set(document["paths"])
    assert {
        "/api/jobs",
        "/api/jobs/{job}/runs",
        "/api/jobs/{job}/staged",
        "/api/jobs/{job}/progress",
        "/api/jobs/{job}/trigger",
        "/api/jobs/{job}/resume",
        "/api/jobs/{job}/allow-deletes",
        "/v1.0/auditLogs/provisioning",
        "/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job_id}/restart",
    } <= paths
    assert "bearer" in document["components"]["securitySchemes"]


# changing a job ---------------------------------------------------------------------------------
def test_pause_start_resume_and_trigger(fresh: tuple[SyncEnv, ServiceHandle]) -> None:
    env, service = fresh
    client = service.client(OPERATE_TOKEN)
    assert client.post(f"{JOB}/pause").status_code == 204
    job = client.get(JOB).json()
    assert job["schedule"]["state"] == "Paused"
    assert job["status"]["code"] == "Paused"
    assert env.cli("run", "sync").returncode == 1  # the CLI sees it paused too
    message = odata_error(client.post("/api/jobs/sync/trigger"), 409, "Conflict")
    assert "sync is paused" in message

    assert client.post(f"{JOB}/start").status_code == 204
    job = client.get(JOB).json()
    assert (job["schedule"]["state"], job["status"]["code"]) == ("Active", "Active")
    # start sent a cycle to Celery: nothing can queue a second one
    queued = odata_error(
        client.post("/api/jobs/sync/trigger", json={"full": True}), 409, "Conflict"
    )
    assert "already queued" in queued
    assert client.post(f"{JOB}/start").status_code == 204  # start again: nothing more to do

    paused = client.post("/api/jobs/sync/pause").json()
    assert paused == {"job": "sync", "paused": True, "allowDeletes": False, "stagedDeletes": 0}
    resumed = client.post("/api/jobs/sync/resume").json()
    assert resumed["paused"] is False
    allowed = client.post("/api/jobs/sync/allow-deletes").json()
    assert allowed["allowDeletes"] is True

    # each action is in the audit trail, with the token's name as the actor
    trail = client.get("/api/audit", params={"job": "sync"}).json()["value"]
    by_api = [(e["action"], e["result"]) for e in reversed(trail) if e["actor"] == "runbook"]
    assert by_api == [
        ("pause", "success"),
        ("trigger", "refused"),
        ("start", "success"),
        ("trigger", "refused"),
        ("start", "success"),
        ("pause", "success"),
        ("resume", "success"),
        ("allow-deletes", "success"),
    ]


def test_trigger_queues_a_cycle_and_answers_its_task_id(sync_env: SyncEnv, tmp_path: Path) -> None:
    add_api_section(sync_env.config)
    with running_service(sync_env.config, tmp_path / "serve") as service:
        client = service.client(OPERATE_TOKEN)
        answer = client.post("/api/jobs/sync/trigger", json={"full": True})
        assert answer.status_code == 202, answer.text
        task_id = answer.json()["taskId"]
        assert answer.json() == {"job": "sync", "taskId": task_id, "mode": "full"}
        again = odata_error(client.post("/api/jobs/sync/trigger"), 409, "Conflict")
        assert task_id in again
        # the CLI's trigger sees the same queue
        refused = sync_env.cli("trigger", "sync", "--json")
        assert refused.returncode == 1
        assert task_id in refused.stdout


def test_restart_clears_exactly_what_each_scope_names(tmp_path: Path) -> None:
    with served_world(tmp_path) as world:
        env, client = world.env, world.operator()

        def state() -> dict[str, Any]:
            status: dict[str, Any] = client.get(JOB).json()["status"]
            return {
                "code": status["code"],
                "watermark": status["watermark"] is not None,
                "escrows": status["escrows"],
                "staged": status["stagedDeletes"],
                "allowDeletes": status["allowDeletes"],
            }

        def restart(scope: str | None, expected: int = 204) -> httpx.Response:
            body = {"criteria": {"resetScope": scope}} if scope is not None else None
            response = client.post(f"{JOB}/restart", json=body)
            assert response.status_code == expected, response.text
            return response

        held = {
            "code": "Quarantine",
            "watermark": True,
            "escrows": 1,
            "staged": 4,
            "allowDeletes": False,
        }
        assert state() == held
        for bad, named in (
            ("Watermark, Bogus", "'Bogus' is not a synchronizationJobRestartScope"),
            ("ConnectorDataStore", "'ConnectorDataStore' is not supported"),
            ("Watermark;Escrows", "'Watermark;Escrows'"),
        ):
            assert named in odata_error(restart(bad, 400), 400, "BadRequest")
        assert state() == held  # nothing changed
        restart("None")
        assert state() == held

        restart("Full")
        assert state() == {
            "code": "Active",
            "watermark": False,
            "escrows": 0,
            "staged": 0,
            "allowDeletes": False,
        }
        again = env.run_json()  # a full cycle finds the same four and the same twin
        assert again["mode"] == "full"
        assert state() == held

        restart("ForceDeletes")
        assert state() == held | {"allowDeletes": True}
        restart("QuarantineState")
        assert state() == held | {"allowDeletes": True, "code": "Active"}
        restart("Escrows")
        assert state() == held | {"allowDeletes": True, "code": "Active", "escrows": 0}
        restart("Watermark")
        assert state() == held | {
            "allowDeletes": True,
            "code": "Active",
            "escrows": 0,
            "watermark": False,
        }
        released = env.run_json()
        assert released["counts"]["delete"] == 4  # allowed: the held deletions are made
        assert state() == {
            "code": "Active",
            "watermark": True,
            "escrows": 1,
            "staged": 0,
            "allowDeletes": False,
        }

        restart("Watermark, Escrows")
        assert state() == {
            "code": "Active",
            "watermark": False,
            "escrows": 0,
            "staged": 0,
            "allowDeletes": False,
        }
        env.run_json()
        client.post(f"{JOB}/pause")
        no_criteria = client.post(f"{JOB}/restart")  # Graph's default
        assert no_criteria.status_code == 204
        assert state() == {
            "code": "Paused",
            "watermark": False,
            "escrows": 0,
            "staged": 0,
            "allowDeletes": False,
        }


def test_a_job_whose_tenant_has_no_secret_is_shown_but_not_run(
    sync_env: SyncEnv, tmp_path: Path
) -> None:
    variable = "TENANT_SYNC_TEST_API_NORTHWIND_SECRET_UNSET"
    config = yaml.safe_load(sync_env.config.read_text())
    config["tenants"]["northwind"] = {
        **config["tenants"]["fabrikam"],
        "tenant_id": "44444444-4444-4444-8444-444444444444",
        "client_secret": "${" + variable + "}",
    }
    config["jobs"]["to-northwind"] = {**config["jobs"]["sync"], "target": "northwind"}
    sync_env.config.write_text(yaml.safe_dump(config))
    add_api_section(sync_env.config)
    with running_service(sync_env.config, tmp_path / "serve") as service:
        client = service.client(OPERATE_TOKEN)
        other = "/v1.0/servicePrincipals/to-northwind/synchronization/jobs/to-northwind"
        assert client.get(other).status_code == 200  # shown, with its status
        why = f"tenants.northwind.client_secret: environment variable {variable} is not set"
        for refused in (
            client.post("/api/jobs/to-northwind/trigger"),
            client.post(f"{other}/start"),
            provision(client, "00000000-0000-4000-8000-000000000001", job=other),
        ):
            assert why in odata_error(refused, 409, "Conflict")
        # the job that does not use northwind runs as before
        assert client.post("/api/jobs/sync/trigger").status_code == 202
        trail = client.get("/api/audit", params={"job": "to-northwind"}).json()["value"]
        assert [(e["action"], e["result"]) for e in reversed(trail)] == [
            ("trigger", "refused"),
            ("start", "refused"),
            ("provision", "refused"),
        ]
        # refused before anything changed: the job was not resumed or touched
        assert client.get(other).json()["schedule"]["state"] == "Active"


@pytest.mark.world(job={"groups": {"provision": True}})
def test_provision_on_demand_takes_a_group_of_scope_groups(
    fresh: tuple[SyncEnv, ServiceHandle],
) -> None:
    import json

    env, service = fresh
    client = service.client()
    target = env.sandbox.graph(TARGET.tenant_id, TARGET.client_id, TARGET.secret)
    (made,) = target.get("/groups", params={"$filter": "displayName eq 'Sync'"}).json()["value"]
    target.delete(f"/groups/{made['id']}").raise_for_status()  # deleted by hand: made again

    answer = provision(client, GROUP, "Group")
    assert answer.status_code == 200, answer.text
    key, value = json.loads(answer.json()["key"]), json.loads(answer.json()["value"])
    # made; the source member never provisioned (the guest) is left out: a warning
    assert key["result"] == "Warning"
    assert value["action"] == "Create"
    (again,) = target.get("/groups", params={"$filter": "displayName eq 'Sync'"}).json()["value"]
    assert value["targetIdentity"]["id"] == again["id"] != made["id"]

    missing = "0b1c0000-dead-4000-8000-00000000beef"
    message = odata_error(provision(client, missing, "Group"), 404, "Request_ResourceNotFound")
    assert f"no group {missing} in the source tenant" in message
