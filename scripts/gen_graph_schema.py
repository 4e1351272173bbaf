"""Extract the Graph v1.0 entity and complex types tenant-sync uses from Microsoft's CSDL.

The full CSDL (3 MB) lives outside the repository; this writes the subset the worker and the
sandbox need to `worker/schema/graph_v1.json`, so a fresh clone has it.

Usage: python scripts/gen_graph_schema.py ../shared/reference/graph/v1.0-Prod.csdl
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
ROOT_TYPES = [
    "entity",
    "directoryObject",
    "user",
    "group",
    "invitation",
    "crossTenantAccessPolicyConfigurationPartner",
    "crossTenantIdentitySyncPolicyPartner",
    # the operator service's Graph-shaped API (worker/api)
    "synchronizationJob",
    "synchronizationSchema",
    "directoryDefinition",
    "provisioningObjectSummary",
    "stringKeyStringValuePair",
]


def main(csdl_path: str) -> None:
    tree = ET.parse(csdl_path)  # noqa: S314 - trusted local file
    schema = next(
        s for s in tree.getroot().iter(f"{EDM}Schema") if s.get("Namespace") == "microsoft.graph"
    )
    nodes: dict[str, ET.Element] = {}
    for kind in ("EntityType", "ComplexType", "EnumType"):
        for node in schema.findall(f"{EDM}{kind}"):
            nodes[node.get("Name", "")] = node

    out: dict[str, dict[str, object]] = {}
    pending = list(ROOT_TYPES)
    while pending:
        name = pending.pop()
        if name in out or name not in nodes:
            continue
        node = nodes[name]
        kind = node.tag.removeprefix(EDM)
        if kind == "EnumType":
            out[name] = {
                "kind": "enum",
                "members": [m.get("Name") for m in node.findall(f"{EDM}Member")],
            }
            continue
        props: dict[str, dict[str, object]] = {}
        for prop in node.findall(f"{EDM}Property"):
            ptype = prop.get("Type", "")
            props[prop.get("Name", "")] = {
                "type": ptype,
                "nullable": prop.get("Nullable", "true") != "false",
            }
            inner = ptype.removeprefix("Collection(").removesuffix(")")
            if inner.startswith("graph."):
                pending.append(inner.removeprefix("graph."))
        navigation = sorted(n.get("Name", "") for n in node.findall(f"{EDM}NavigationProperty"))
        base = node.get("BaseType")
        if base:
            pending.append(base.removeprefix("graph."))
        out[name] = {
            "kind": "entity" if kind == "EntityType" else "complex",
            "base": base.removeprefix("graph.") if base else None,
            "open": node.get("OpenType") == "true",
            "properties": props,
            "navigation": navigation if name in ROOT_TYPES else [],
        }
    target = Path(__file__).resolve().parent.parent / "worker" / "schema" / "graph_v1.json"
    target.write_text(json.dumps(dict(sorted(out.items())), indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(out)} types to {target}")


if __name__ == "__main__":
    main(sys.argv[1])
