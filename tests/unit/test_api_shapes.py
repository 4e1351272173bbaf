"""The Graph-shaped API's pure parts: $filter, $top, $skiptoken, resetScope, durations, and the
shapes of status and log rows against Graph's CSDL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.csdl import validate_entity
from worker.adapters.state.sql import LogCondition
from worker.api.graph_logs import conditions
from worker.api.graph_status import synchronization_status, task_execution
from worker.api.odata import (
    NEVER,
    FilterError,
    decode_skiptoken,
    encode_skiptoken,
    graph_time,
    iso_duration,
    parse_filter,
    parse_top,
)
from worker.api.provisioning import JobSystems, System, actions_for, on_demand_result, summary
from worker.api.restart_scope import ScopeError, parse_reset_scope
from worker.service.admin import RestartScope

pytestmark = pytest.mark.unit

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
    "cycleProgress",
}
EXECUTION_EXTRAS = {"mode", "trigger", "counts"}
ROW_EXTRAS = {"action", "reason"}


def test_filter_reads_and_joined_comparisons_with_graphs_literals() -> None:
    found = parse_filter(
        "jobId eq 'a-to-b' and provisioningStatusInfo/status EQ 'failure' and "
        "activityDateTime ge 2024-05-01T00:00:00Z and activityDateTime lt '2024-05-02' "
        "and sourceIdentity/id eq 'O''Brien'"
    )
    assert [(c.path, c.op) for c in found] == [
        ("jobId", "eq"),
        ("provisioningStatusInfo/status", "eq"),
        ("activityDateTime", "ge"),
        ("activityDateTime", "lt"),
        ("sourceIdentity/id", "eq"),
    ]
    assert found[2].value == datetime(2024, 5, 1, tzinfo=UTC)
    assert found[3].value == "2024-05-02"  # quoted: a string, the route reads the date
    assert found[4].value == "O'Brien"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobId eq 'a' or jobId eq 'b'", "'or' is not supported"),
        ("contains(jobId, 'a')", "function 'contains(...)' is not supported"),
        ("jobId has 'a'", "'has' after 'jobId' is not an operator"),
        ("jobId eq a-to-b", "is not a value"),
        ("jobId eq", "expected 'property operator value'"),
        ("(jobId eq 'a')", "parentheses are not supported"),
        ("jobId eq 'a' jobId eq 'b'", "expected 'and' after 'jobId eq 'a''"),
        ("activityDateTime ge 2024-13-45T00:00:00Z", "in 'activityDateTime ge 2024-13-45"),
        ("", "$filter is empty"),
    ],
)
def test_filter_errors_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert message in str(caught.value)


def test_log_filter_maps_graph_names_to_the_ledger() -> None:
    found = conditions(
        "jobId eq 'sync' and provisioningAction eq 'update' and "
        "provisioningStatusInfo/status eq 'Skipped' and targetIdentity/id eq 'ABC' and "
        "activityDateTime gt 2024-05-01T10:00:00+02:00"
    )
    assert found == [
        LogCondition("job", "eq", "sync"),
        LogCondition("action", "in", ["update", "restore"]),  # a restore is Graph's update
        LogCondition("status", "eq", "skipped"),
        LogCondition("target_id", "eq", "abc"),
        LogCondition("created_at", "gt", datetime(2024, 5, 1, 8, tzinfo=UTC)),
    ]
    assert conditions("provisioningAction eq 'stagedDelete'") == [
        LogCondition("action", "in", ["staged_delete"])
    ]
    assert actions_for("other") == ["skip", "other"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("displayName eq 'x'", "'displayName' cannot be filtered on (supported: jobId"),
        ("provisioningAction eq 'explode'", "'explode' is not a provisioningAction value"),
        ("jobId ne 'x'", "only 'eq' compares jobId"),
        ("activityDateTime eq 2024-05-01", "compare activityDateTime with ge, gt, le or lt"),
        ("activityDateTime ge 'yesterday'", "the value must be a date-time"),
        ("jobId eq 3", "the value must be a quoted string"),
    ],
)
def test_log_filter_refuses_what_it_cannot_do(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        conditions(text)
    assert message in str(caught.value)


def test_top_and_skiptoken() -> None:
    assert parse_top(None, default=100, maximum=1000) == 100
    assert parse_top("1000", default=100, maximum=1000) == 1000
    for bad in ("0", "1001", "-1", "ten", ""):
        with pytest.raises(FilterError, match="from 1 to 1000"):
            parse_top(bad, default=100, maximum=1000)
    token = encode_skiptoken(123456789)
    assert "123456789" not in token  # opaque
    assert decode_skiptoken(token) == 123456789
    for bad in ("garbage", "", encode_skiptoken(5)[:-2] + "!!", "dHMxOmFiYw"):
        with pytest.raises(FilterError, match="not one this service issued"):
            decode_skiptoken(bad)


def test_reset_scope_combinations_default_and_refusals() -> None:
    assert parse_reset_scope(None) == [
        RestartScope.WATERMARK,
        RestartScope.ESCROWS,
        RestartScope.QUARANTINE,
    ]
    assert parse_reset_scope("") == parse_reset_scope(None)
    assert parse_reset_scope("forceDeletes,  WATERMARK") == [
        RestartScope.WATERMARK,
        RestartScope.FORCE_DELETES,
    ]
    assert parse_reset_scope("Full, Escrows, ForceDeletes") == [
        RestartScope.FULL,
        RestartScope.FORCE_DELETES,
    ]
    assert parse_reset_scope("None") == []
    assert parse_reset_scope("QuarantineState") == [RestartScope.QUARANTINE]
    with pytest.raises(ScopeError, match="'Bogus' is not a synchronizationJobRestartScope"):
        parse_reset_scope("Watermark, Bogus")
    with pytest.raises(ScopeError, match="'ConnectorDataStore' is not supported"):
        parse_reset_scope("ConnectorDataStore")
    with pytest.raises(ScopeError, match=r"'\(empty\)'"):
        parse_reset_scope("Watermark,,Escrows")


def test_durations_and_times_as_graph_writes_them() -> None:
    assert iso_duration(timedelta(minutes=40)) == "PT40M"
    assert iso_duration(timedelta(hours=1, minutes=30)) == "PT1H30M"
    assert iso_duration(timedelta(days=7)) == "P7D"
    assert iso_duration(timedelta(days=1, seconds=90)) == "P1DT1M30S"
    assert iso_duration(timedelta(0)) == "PT0S"
    assert graph_time("2024-05-01T10:00:00.5+00:00") == "2024-05-01T10:00:00.500000Z"
    assert graph_time(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01T12:00:00Z"
    assert graph_time(None) is None


def _execution(**overrides: Any) -> dict[str, Any]:
    execution = {
        "activityIdentifier": "run-1",
        "mode": "incremental",
        "trigger": "schedule",
        "state": "Succeeded",
        "timeBegan": "2024-05-01T10:00:00+00:00",
        "timeEnded": "2024-05-01T10:01:00+00:00",
        "countExported": 5,
        "countFailed": 2,
        "countSkipped": 3,
        "counts": {"create": 3, "update": 2, "skip": 3, "failure": 2, "failure.create": 2},
        "error": None,
    }
    return execution | overrides


def _strip(obj: dict[str, Any], extras: set[str]) -> dict[str, Any]:
    assert extras <= set(obj), extras - set(obj)
    return {k: v for k, v in obj.items() if k not in extras}


def test_task_execution_counts_and_state() -> None:
    shaped = task_execution(_execution())
    assert shaped is not None
    assert shaped["countImported"] == 10  # every object the cycle read and decided on
    assert shaped["countEntitled"] == 7  # less the skipped
    assert shaped["countExported"] == 5
    assert shaped["countExports"] == 7  # tried: exported + failed
    assert shaped["countEscrowed"] == 2
    assert shaped["countImportedDeltas"] == 10
    assert shaped["state"] == "EntryLevelErrors"  # finished, with per-object failures
    assert shaped["timeBegan"] == "2024-05-01T10:00:00Z"
    failed = task_execution(_execution(state="Failed", error={"message": "sign-in refused"}))
    assert failed is not None
    assert failed["state"] == "Failed"
    assert failed["error"] == {
        "code": "CycleFailed",
        "message": "sign-in refused",
        "tenantActionable": True,
    }
    assert not validate_entity("synchronizationTaskExecution", _strip(failed, EXECUTION_EXTRAS))


def test_status_fits_graphs_synchronization_status() -> None:
    status = {
        "job": "sync",
        "code": "Quarantine",
        "running": True,
        "lastExecution": _execution(),
        "lastSuccessfulExecution": _execution(),
        "lastSuccessfulExecutionWithExports": _execution(),
        "countSuccessiveCompleteFailures": 0,
        "steadyStateFirstAchievedTime": None,
        "steadyStateLastAchievedTime": "2024-05-01T10:01:00+00:00",
        "progress": {
            "activityIdentifier": "run-2",
            "mode": "full",
            "phase": "users",
            "running": True,
            "usersRead": 40,
            "counts": {"create": 10, "skip": 2},
            "timeBegan": "2024-05-01T11:00:00+00:00",
        },
        "watermark": None,
        "linkedUsers": 12,
        "groups": {"provisioned": 2, "skipped": []},
        "quarantine": {
            "reason": "TooManyDeletes",
            "seriesBegan": "2024-05-01T10:01:00+00:00",
            "seriesCount": 1,
            "nextAttempt": None,
            "error": {"message": "4 deletions over the threshold of 3"},
        },
        "escrows": 1,
        "stagedDeletes": 4,
        "allowDeletes": False,
    }
    shaped = synchronization_status(status)
    assert shaped["progress"] == [
        {
            "completedUnits": 12,
            "totalUnits": 40,
            "units": "users",
            "progressObservationDateTime": "2024-05-01T11:00:00Z",
        }
    ]
    assert shaped["cycleProgress"] == status["progress"]
    assert shaped["steadyStateFirstAchievedTime"] == NEVER  # Graph's "never" (not nullable)
    assert shaped["quarantine"]["reason"] == "TooManyDeletes"
    assert shaped["quarantine"]["nextAttempt"] == NEVER
    assert shaped["synchronizedEntryCountByType"] == [
        {"key": "User", "value": 12},
        {"key": "Group", "value": 2},  # provisioned groups (docs/groups.md)
    ]
    graph_only = _strip(shaped, STATUS_EXTRAS)
    for key in ("lastExecution", "lastSuccessfulExecution", "lastSuccessfulExecutionWithExports"):
        graph_only[key] = _strip(graph_only[key], EXECUTION_EXTRAS)
    assert not validate_entity("synchronizationStatus", graph_only)


ROW = {
    "changeId": "9a0c7e1e-2b7c-4c4e-9d7c-1f5e7d9b2a11",
    "cycleId": "c0ffee00-2b7c-4c4e-9d7c-1f5e7d9b2a11",
    "jobId": "sync",
    "sourceId": "5b0c7e1e-2b7c-4c4e-9d7c-1f5e7d9b2a11",
    "sourceIdentity": "ann@contoso.onmicrosoft.com",
    "sourceMail": "ann@contoso.com",
    "targetId": "7b0c7e1e-2b7c-4c4e-9d7c-1f5e7d9b2a11",
    "action": "create",
    "status": "success",
    "reason": "",
    "errorCode": "",
    "errorMessage": "",
    "steps": [
        {"name": "import", "status": "success", "detail": "read from the source"},
        {"name": "scoping", "status": "success", "detail": "in scope"},
        {"name": "matching", "status": "success", "detail": "no target user matches: create"},
        {"name": "processing", "status": "success", "detail": "create: invite ann@contoso.com"},
        {"name": "export", "status": "success", "detail": "invited ann@contoso.com"},
        {"name": "export", "status": "success", "detail": "updated 3 attributes"},
    ],
    "modifiedProperties": {
        "displayName": {"old": None, "new": "Ann"},
        "accountEnabled": {"old": None, "new": True},
        "businessPhones": {"old": None, "new": ["+1 555"]},
    },
    "durationMs": 42,
    "activityDateTime": "2024-05-01T10:00:00+00:00",
}
SYSTEMS = JobSystems(
    System("11111111-1111-4111-8111-111111111111", "contoso"),
    System("22222222-2222-4222-8222-222222222222", "fabrikam"),
)


def test_log_row_fits_graphs_provisioning_object_summary() -> None:
    shaped = summary(ROW, SYSTEMS)
    assert [s["name"] for s in shaped["provisioningSteps"]] == [
        "EntryImport",
        "EntrySynchronizationScoping",
        "EntryMatching",
        "EntrySynchronizationAdd",
        "EntryExportAdd",
        "EntryExportUpdate",  # the attributes written after the invitation
    ]
    assert shaped["modifiedProperties"][1] == {
        "displayName": "accountEnabled",
        "oldValue": None,
        "newValue": "true",
    }
    assert shaped["sourceIdentity"]["details"] == {"mail": "ann@contoso.com"}
    assert not validate_entity("provisioningObjectSummary", _strip(shaped, ROW_EXTRAS))
    failed = summary(
        ROW
        | {
            "action": "restore",
            "status": "failure",
            "errorCode": "Request_BadRequest",
            "errorMessage": "Invalid value",
        },
        SYSTEMS,
    )
    assert failed["provisioningAction"] == "update"
    assert failed["action"] == "restore"
    assert failed["provisioningStatusInfo"] == {
        "status": "failure",
        "errorInformation": {
            "errorCode": "Request_BadRequest",
            "reason": "Invalid value",
            "additionalDetails": None,
            "errorCategory": "failure",
            "recommendedAction": None,
        },
    }
    assert not validate_entity("provisioningObjectSummary", _strip(failed, ROW_EXTRAS))


def test_on_demand_result_is_graphs_key_value_pair_of_json() -> None:
    import json

    skipped = ROW | {
        "action": "skip",
        "status": "skipped",
        "reason": "RedundantExport",
        "steps": ROW["steps"][:3],
        "modifiedProperties": {},
    }
    pair = on_demand_result(skipped, SYSTEMS)
    assert not validate_entity("stringKeyStringValuePair", pair)
    key, value = json.loads(pair["key"]), json.loads(pair["value"])
    assert key["result"] == "Skipped"
    assert key["details"]["errorCode"] == "RedundantExport"
    assert value["action"] == "Other"
    assert [(s["name"], s["type"], s["status"]) for s in value["provisioningSteps"]] == [
        ("EntryImport", "Import", "Success"),
        ("EntrySynchronizationScoping", "Scoping", "Success"),
        ("EntryMatching", "Matching", "Success"),
    ]
    assert value["sourceIdentity"]["id"] == ROW["sourceId"]
    assert value["targetSystem"] == {"id": SYSTEMS.target.id, "name": "fabrikam", "details": None}
