"""`tenant-sync provision`: sync one user (or one group's members) now, outside the cycle, and
print what was done."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from worker.cli_common import (
    ConfigOption,
    JsonOption,
    _audited,
    _config,
    _job,
    _json_error,
    _runtime,
    _short,
    emit_json,
    fail,
    out,
)
from worker.config import GUID_RE


def provision(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The job."),
    source_user_id: str = typer.Argument(
        ...,
        metavar="USER",
        help="The source user: object id, UPN or mail; or a group of scope.groups (object id "
        "or displayName) when the job has groups.provision: true.",
    ),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Provision one source user now, synchronously, and print each step (works while paused).
    USER is the source user's object id, UPN or mail (an unknown or ambiguous one: exit 2).
    With groups.provision: true it may name a group of scope.groups instead (its object id or
    displayName): the group is created or updated and its members set to the linked users of
    its members; members not provisioned yet are reported, not created. A group not in
    scope.groups: exit 2."""
    from worker.domain.errors import SyncError
    from worker.service.ondemand import GroupRefused, UnknownSourceUser

    if not source_user_id.strip():
        fail("USER must be the source user's object id, UPN or mail")
    failed = _json_error(as_json, job=job)
    cfg = _config(ctx, config, failed)
    _job(cfg, job, graph=True, on_failure=failed)
    with _runtime(cfg, on_failure=failed) as runtime:
        try:
            group_id = runtime.on_demand(job).group_for(source_user_id.strip())
        except GroupRefused as exc:
            fail(str(exc))
        except SyncError as exc:
            fail(f"cannot look up {source_user_id!r} in the source tenant: {exc}", 1)
        if group_id is not None:
            _provision_group(runtime, job, group_id, as_json)
        try:
            user_id = _source_user_id(runtime, job, source_user_id.strip())
        except SyncError as exc:
            fail(f"cannot look up {source_user_id!r} in the source tenant: {exc}", 1)
        try:
            # An id that names nobody is bad input (exit 2): nothing was done, nothing recorded.
            with _audited(
                runtime, "provision", job, {"user_id": user_id}, bad_input=(UnknownSourceUser,)
            ) as entry:
                outcome = runtime.on_demand(job).provision(user_id)
                _note_outcome(entry, outcome)
        except UnknownSourceUser as exc:
            fail(str(exc))
        except SyncError as exc:
            fail(f"provisioning {source_user_id} failed: {exc}", 1)
    _print_provisioned(job, outcome, as_json)


def _note_outcome(entry: Any, outcome: Any) -> None:
    """What an on-demand provisioning did, in its audit entry (a failed export fails it)."""
    entry.note(
        action=outcome.action.value, status=outcome.status.value, target_id=outcome.target_id
    )
    if outcome.status.value == "failure":
        entry.fail(outcome.error_message or outcome.reason or "the export failed")


def _provision_group(runtime: Any, job: str, group_id: str, as_json: bool) -> NoReturn:
    """`provision JOB GROUP`: one group of scope.groups now (docs/groups.md); exits."""
    from worker.domain.errors import SyncError
    from worker.service.ondemand import GroupRefused

    try:
        with _audited(
            runtime, "provision", job, {"group_id": group_id}, bad_input=(GroupRefused,)
        ) as entry:
            result = runtime.on_demand(job).provision_group(group_id)
            outcome = result.outcome
            _note_outcome(entry, outcome)
    except GroupRefused as exc:
        fail(str(exc))
    except SyncError as exc:
        fail(f"provisioning group {group_id} failed: {exc}", 1)
    _print_provisioned(job, outcome, as_json, unlinked=result.unlinked)


def _print_provisioned(
    job: str, outcome: Any, as_json: bool, *, unlinked: list[str] | None = None
) -> NoReturn:
    """Print one on-demand provisioning's steps (or its JSON), and exit 1 when it failed."""
    group = outcome.object_type == "Group"
    if as_json:
        from worker.domain.records import outcome_record

        record = outcome_record(outcome)
        answer = {
            "job": job,
            "sourceId": record["sourceId"],
            "sourceIdentity": record["sourceIdentity"],
            "targetId": record["targetId"],
            "action": outcome.action.value,
            "status": record["status"],
            "reason": record["reason"] or None,
            "steps": record["steps"],
            "modifiedProperties": record["modifiedProperties"],
        }
        if group:
            answer |= {"objectType": "Group", "unlinkedMembers": unlinked or []}
        emit_json(answer)
    else:
        out.print(f"{outcome.source_label or outcome.source_id} ({job})", markup=False)
        for step in outcome.steps:
            mark = {"success": "✓", "skipped": "·", "warning": "!", "failure": "✗"}[
                step.status.value
            ]
            out.print(f"  {mark} {step.name:<10} {step.detail}", markup=False)
        for name, change in outcome.modified.items():
            out.print(f"      {name}: {_short(change.old)} → {_short(change.new)}", markup=False)
        out.print(
            f"result: {outcome.action.value} {outcome.status.value}"
            + (f" — {outcome.reason}" if outcome.reason else "")
            + (
                f" (target {'group' if group else 'user'} {outcome.target_id})"
                if outcome.target_id
                else ""
            ),
            markup=False,
        )
    raise typer.Exit(1 if outcome.status.value == "failure" else 0)


def _source_user_id(runtime: Any, job: str, user: str) -> str:
    """The object id of the source user named by `user` (an id, a UPN or a mail)."""
    if GUID_RE.match(user):
        return user.lower()
    source, _target = runtime.directories(runtime.config.job(job))
    wanted = user.lower()
    found = [
        u
        for u in source.search_users(user, ["id", "userPrincipalName", "mail"], limit=50)
        if wanted
        in (
            str(u.attributes.get("userPrincipalName") or "").lower(),
            str(u.attributes.get("mail") or "").lower(),
        )
    ]
    if not found:
        groups_off = "@" not in user and not runtime.config.job(job).spec.groups.enabled
        fail(
            f"no user with the UPN or mail {user!r} in the source tenant of {job}"
            + (
                f"; {job} does not provision groups (groups.provision is off), so USER names a "
                "user: its object id, UPN or mail"
                if groups_off
                else ""
            )
        )
    if len(found) > 1:
        ids = ", ".join(sorted(u.id for u in found))
        fail(f"{user!r} names {len(found)} source users ({ids}): give the object id")
    return str(found[0].id).lower()
