"""A job as the service sees it: scope, mappings, policy, and the fingerprint of what it reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from worker.domain.groups import GroupProvisioning
from worker.domain.health import DeletionThreshold
from worker.domain.mapping import MappingSpec, required_source_attributes, writable
from worker.domain.model import MANAGER
from worker.domain.scope import ScopeSpec


class Deprovision(StrEnum):
    SOFT_DELETE = "soft_delete"
    DISABLE = "disable"


@dataclass(frozen=True)
class JobPolicy:
    create: bool = True
    update: bool = True
    delete: bool = True
    deprovision: Deprovision = Deprovision.SOFT_DELETE
    skip_out_of_scope_deletions: bool = False


@dataclass(frozen=True)
class JobSpec:
    name: str
    scope: ScopeSpec
    mappings: tuple[MappingSpec, ...]
    policy: JobPolicy
    user_type: str = "Member"
    full_every: timedelta | None = None
    interval: timedelta = timedelta(minutes=40)
    deletion_threshold: DeletionThreshold = field(default_factory=DeletionThreshold)
    # `{target: manager, source: manager}`: the manager reference is synced (docs/manager.md).
    manager: bool = False
    groups: GroupProvisioning = field(default_factory=GroupProvisioning)

    @property
    def select(self) -> list[str]:
        """What a users delta round selects: core attributes, mapped sources, filter attributes."""
        names = required_source_attributes(self.mappings, self.scope.filter_attributes)
        # Read with $expand by the source adapter; in the select, so the fingerprint changes
        # (a full cycle sets every reference) when the mapping is added.
        return sorted([*names, MANAGER]) if self.manager else names

    @property
    def target_select(self) -> list[str]:
        """What is read of a matched target user to compare it with the mapped values."""
        return sorted(writable({m.target: None for m in self.mappings}))

    @property
    def match_mappings(self) -> list[MappingSpec]:
        return sorted((m for m in self.mappings if m.match is not None), key=lambda m: m.match or 0)

    @property
    def fingerprint(self) -> str:
        """Changes when what the job reads or how it decides changes: then a full cycle is due."""
        description = {
            "select": self.select,
            "assigned": self.scope.assigned_only,
            "user_ids": sorted(self.scope.user_ids),
            "groups": sorted(self.scope.group_ids),
            "nested": self.scope.nested_groups,
            "filters": [[c.describe() for c in group] for group in self.scope.filters],
            "mappings": [
                [m.target, m.kind, m.describe(), repr(m.default), m.apply.value, m.match]
                for m in self.mappings
            ],
            "user_type": self.user_type,
        }
        if self.groups.enabled:
            # Only then: a job that provisions no groups keeps its fingerprint from before.
            # Its own key: "groups" is the scope's, which must still count (docs/manager.md).
            description["group_provisioning"] = self.groups.describe()
        canonical = json.dumps(description, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
