"""The validated configuration as the rest of the worker sees it: `Config`, `Job`, `JobRuntime`.

A `Job` holds its domain pieces (scope, mappings, policy, group provisioning), the domain's
`JobSpec` built from them, and what the runtime needs besides (`JobRuntime`). `Config` holds the
sections, the jobs, and what cannot be used because a variable is unset or a file missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from worker.config_models import (
    ApiConfig,
    EmailNotification,
    JobConfig,
    LoggingConfig,
    MappingConfig,
    MetricsConfig,
    RawConfig,
    StateConfig,
    TeamsNotification,
    TenantConfig,
    WebhookNotification,
)
from worker.config_source import ConfigError
from worker.domain.groups import GroupProvisioning
from worker.domain.health import DeletionThreshold
from worker.domain.job import Deprovision, JobPolicy, JobSpec
from worker.domain.mapping import Apply, MappingSpec
from worker.domain.model import MANAGER
from worker.domain.organization import Organization
from worker.domain.scope import ScopeSpec


@dataclass(frozen=True)
class JobRuntime:
    """What the runtime needs of a job besides its domain spec: scheduling, fan-out, how the
    target is written, and the settings as configured (for status pages and the API)."""

    interval: timedelta
    full_every: timedelta | None
    fan_out: int  # under Celery: pages exported by other workers, this many at a time (0: none)
    user_type: str
    invite_redirect_url: str
    deprovision: Deprovision
    skip_out_of_scope_deletions: bool
    create: bool
    update: bool
    delete: bool
    scope_users: str  # "all" or "assigned"
    deletion_count: int | None  # the threshold as configured (None: no count limit)
    deletion_percent: float | None


class Job:
    """A validated job, with its domain pieces built: scope, mappings, policy, the domain spec
    (`spec`) and the runtime part (`runtime`). Nothing outside the config modules reads `raw`."""

    def __init__(
        self,
        name: str,
        raw: JobConfig,
        scope: ScopeSpec,
        mappings: list[MappingSpec],
        groups: GroupProvisioning | None = None,
    ):
        self.name = name
        # "jobs" when written under jobs:, "organization" when an organisation made it.
        self.origin = "jobs"
        self.raw = raw
        self.scope = scope
        self.mappings = mappings
        self.policy = JobPolicy(
            create=raw.actions.create,
            update=raw.actions.update,
            delete=raw.actions.delete,
            deprovision=raw.deprovision,
            skip_out_of_scope_deletions=raw.skip_out_of_scope_deletions,
        )
        interval = raw.schedule.interval
        threshold = raw.deletion_threshold
        self.runtime = JobRuntime(
            interval=interval,
            full_every=raw.schedule.full_every,
            fan_out=raw.fan_out,
            user_type=raw.user_type,
            invite_redirect_url=raw.invite_redirect_url,
            deprovision=raw.deprovision,
            skip_out_of_scope_deletions=raw.skip_out_of_scope_deletions,
            create=raw.actions.create,
            update=raw.actions.update,
            delete=raw.actions.delete,
            scope_users=raw.scope.users,
            deletion_count=threshold.count,
            deletion_percent=threshold.percent,
        )
        self.spec = JobSpec(
            name=name,
            scope=scope,
            mappings=tuple(mappings),
            policy=self.policy,
            user_type=raw.user_type,
            full_every=raw.schedule.full_every,
            interval=interval,
            deletion_threshold=DeletionThreshold(
                count=threshold.count,
                percent=threshold.percent,
                window=threshold.window_for(interval),
            ),
            manager=any(_is_manager_reference(m) for m in raw.mappings),
            groups=groups or GroupProvisioning(),
        )

    @property
    def source(self) -> str:
        return self.raw.source

    @property
    def target(self) -> str:
        return self.raw.target

    @property
    def match_mappings(self) -> list[MappingSpec]:
        matching = [m for m in self.mappings if m.match is not None]
        return sorted(matching, key=lambda m: m.match or 0)


class Config:
    """The whole validated configuration."""

    def __init__(
        self,
        raw: RawConfig,
        jobs: dict[str, Job],
        path: Path | None,
        unavailable: Mapping[str, list[str]] | None = None,
        *,
        unavailable_parts: Mapping[str, list[str]] | None = None,
        notification_positions: list[int] | None = None,
        organization: Organization | None = None,
    ) -> None:
        self.raw = raw
        self.jobs = jobs
        # The `organization:` section, if any (its jobs are in `jobs`, origin "organization").
        self.organization = organization
        self.path = path
        # Tenants that cannot be used (an environment variable unset), with the problems.
        self.unavailable: dict[str, list[str]] = dict(unavailable or {})
        # Other parts that cannot be used for the same reason, by path: `api` (only `serve`
        # needs it) and `notifications[N]` (that notifier is left out of `notifications`).
        self.unavailable_parts: dict[str, list[str]] = dict(unavailable_parts or {})
        self._positions = notification_positions or list(range(len(raw.notifications)))

    @property
    def state(self) -> StateConfig:
        return self.raw.state

    @property
    def logging(self) -> LoggingConfig:
        return self.raw.logging

    @property
    def metrics(self) -> MetricsConfig:
        return self.raw.metrics

    @property
    def tenants(self) -> dict[str, TenantConfig]:
        return self.raw.tenants

    @property
    def api(self) -> ApiConfig:
        return self.raw.api

    @property
    def notifications(self) -> list[WebhookNotification | TeamsNotification | EmailNotification]:
        return self.raw.notifications

    def indexed_notifications(
        self,
    ) -> list[tuple[int, WebhookNotification | TeamsNotification | EmailNotification]]:
        """The usable notifiers with their positions in `notifications:` (for their labels)."""
        return list(zip(self._positions, self.raw.notifications, strict=True))

    def job(self, name: str) -> Job:
        """The job, if it can run: ConfigError when unknown or a tenant it uses is unusable."""
        try:
            job = self.jobs[name]
        except KeyError:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise ConfigError([f"jobs: unknown job {name!r} (known jobs: {known})"]) from None
        problems = [f"jobs.{name}: {blocker}" for blocker in self.blockers(name)]
        if problems:
            raise ConfigError(problems)
        return job

    def blockers(self, name: str) -> list[str]:
        """Why the job cannot talk to Graph (a tenant it uses is unusable), or [] if it can.

        Only what needs Graph is refused: the job's state (status, logs, audit, pause, ...)
        can still be read and changed."""
        job = self.jobs.get(name)
        if job is None:
            return []
        return [
            f"cannot run: its {role} tenant {tenant!r} is unusable: {problem}"
            for role, tenant in (("source", job.source), ("target", job.target))
            for problem in self.unavailable.get(tenant, [])
        ]


def _is_manager_reference(mapping: MappingConfig) -> bool:
    """`{target: manager, source: manager}` and nothing else: the manager reference."""
    return (
        mapping.target == MANAGER
        and mapping.source == MANAGER
        and mapping.default is None
        and mapping.match is None
        and mapping.apply is Apply.ALWAYS
    )
