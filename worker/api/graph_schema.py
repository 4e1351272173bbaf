"""A job's configuration as Graph's synchronizationSchema: read-only, from the config.

One synchronizationRule (source users → target users) with one objectMapping whose `scope` holds
the job's scoping filters (Graph's filter → filterGroup → filterClause, operators under Entra's
names) and whose attributeMappings are the job's mappings (Attribute, Constant or Function
sources; `apply: on_create` is flowType ObjectAddOnly; `match: N` is matchingPriority N). The two
`directories` list the attributes the mappings read and write. What Graph has no place for (user
and group assignment, deprovisioning, the deletion threshold) is in the extra property `tenantSync`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from worker.config import Config, Job
from worker.domain.mapping import NEVER_WRITTEN, Apply, MappingSpec
from worker.domain.scope import VALUELESS_OPERATORS, Clause

RULE_ID = "user-to-user"
_FUNCTION = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*\(")
_ATTRIBUTE_TYPES = {
    "Edm.Boolean": "Boolean",
    "Edm.Int32": "Integer",
    "Edm.Int64": "Integer",
    "Edm.DateTimeOffset": "DateTime",
    "Edm.Date": "DateTime",
    "Edm.Binary": "Binary",
}


def _constant_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else json.dumps(value)


def _source(mapping: MappingSpec) -> dict[str, Any]:
    if mapping.kind == "expression":
        function = _FUNCTION.match(mapping.expression_text)
        return {
            "type": "Function",
            "name": function.group(1) if function else None,
            "expression": mapping.expression_text,
            "parameters": [],
        }
    if mapping.kind == "direct":
        return {
            "type": "Attribute",
            "name": mapping.source,
            "expression": f"[{mapping.source}]",
            "parameters": [],
        }
    text = _constant_text(mapping.constant)
    return {"type": "Constant", "name": text, "expression": json.dumps(text), "parameters": []}


def _attribute_mapping(mapping: MappingSpec) -> dict[str, Any]:
    return {
        "targetAttributeName": mapping.target,
        "source": _source(mapping),
        "defaultValue": None if mapping.default is None else _constant_text(mapping.default),
        "exportMissingReferences": False,
        "flowBehavior": "FlowWhenChanged",
        "flowType": "ObjectAddOnly" if mapping.apply is Apply.ON_CREATE else "Always",
        "matchingPriority": mapping.match or 0,
        # tenant-sync's own: userPrincipalName is read (invitation address) but never written
        "written": mapping.target not in NEVER_WRITTEN,
    }


def _clause(clause: Clause) -> dict[str, Any]:
    if clause.operator in VALUELESS_OPERATORS:
        values: list[str] = []
    elif isinstance(clause.value, list | tuple):
        values = [_constant_text(v) for v in clause.value]
    else:
        values = [_constant_text(clause.value)]
    return {
        "operatorName": clause.operator.value,
        "sourceOperandName": clause.attribute,
        "targetOperand": {"values": values},
    }


def _attribute(name: str, edm_type: str) -> dict[str, Any]:
    collection = edm_type.startswith("Collection(")
    inner = edm_type[len("Collection(") : -1] if collection else edm_type
    return {
        "name": name,
        "type": _ATTRIBUTE_TYPES.get(inner, "String"),
        "multivalued": collection,
        "anchor": name == "id",
        "caseExact": False,
        "flowNullValues": False,
        "mutability": "ReadWrite",
        "required": False,
        "defaultValue": None,
        "apiExpressions": [],
        "metadata": [],
        "referencedObjects": [],
    }


def _directory(directory_id: str | None, name: str, attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "id": directory_id,
        "name": name,
        "readOnly": True,
        "discoverabilities": "None",
        "discoveryDateTime": None,
        "version": None,
        "objects": [
            {
                "name": "User",
                "attributes": [_attribute(n, t) for n, t in sorted(attributes.items())],
                "metadata": [],
                "supportedApis": [],
            }
        ],
    }


def synchronization_schema(config: Config, job: Job) -> dict[str, Any]:
    rt = job.runtime
    source, target = config.tenants[job.source], config.tenants[job.target]
    read: dict[str, str] = {"id": "Edm.String"}
    for mapping in job.mappings:
        for name in sorted(mapping.source_attributes):
            read.setdefault(name, "Edm.String")
    for group in job.scope.filters:
        for clause in group:
            read.setdefault(clause.attribute, "Edm.String")
    written = {"id": "Edm.String", **{m.target: m.target_type for m in job.mappings}}
    flows = [
        name
        for name, on in (
            ("Add", rt.create),
            ("Update", rt.update),
            ("Delete", rt.delete),
        )
        if on
    ]
    object_mapping = {
        "name": f"Provision {job.source} users as {rt.user_type} users of {job.target}",
        "enabled": True,
        "flowTypes": ", ".join(flows) or "None",
        "sourceObjectName": "User",
        "targetObjectName": "User",
        "metadata": [],
        "scope": {
            "groups": [
                {"name": f"filter group {n}", "clauses": [_clause(c) for c in group]}
                for n, group in enumerate(job.scope.filters, start=1)
            ],
            "inputFilterGroups": [],
            "categoryFilterGroups": [],
        },
        "attributeMappings": [_attribute_mapping(m) for m in job.mappings],
    }
    return {
        "id": job.name,
        "version": None,
        "synchronizationRules": [
            {
                "id": RULE_ID,
                "name": f"{job.source} to {job.target}",
                "editable": False,
                "priority": 1,
                "sourceDirectoryName": job.source,
                "targetDirectoryName": job.target,
                "containerFilter": None,
                "groupFilter": None,
                "metadata": [],
                "objectMappings": [object_mapping],
            }
        ],
        "directories": [
            _directory(source.tenant_id, job.source, read),
            _directory(target.tenant_id, job.target, written),
        ],
        "tenantSync": {
            "scope": {
                "users": rt.scope_users,
                "userIds": sorted(job.scope.user_ids),
                "groups": list(job.scope.group_ids),
                "nestedGroups": job.scope.nested_groups,
            },
            "userType": rt.user_type,
            "deprovision": rt.deprovision.value,
            "skipOutOfScopeDeletions": rt.skip_out_of_scope_deletions,
            "deletionThreshold": {
                "count": rt.deletion_count,
                "percent": rt.deletion_percent,
            },
            "matching": [{"priority": m.match, "attribute": m.target} for m in job.match_mappings]
            or [{"priority": 1, "attribute": "mail", "default": True}],
        },
    }
