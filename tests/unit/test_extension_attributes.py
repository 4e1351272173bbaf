"""Extension attributes: valid names in filters and mappings, what validate refuses and how it
says so, the flat engine names, the nested Graph payload, and the `$select` a job reads with."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_config
from worker.domain import extension_attributes as ext
from worker.domain.mapping import Mapper, MappingSpec
from worker.domain.model import SourceUser
from worker.domain.scope import Clause, Operator, evaluate_filters

pytestmark = pytest.mark.unit

APP_EXT = "extension_0123456789abcdef0123456789abcdef_costCenter"

CONFIG = """
tenants:
  contoso:
    tenant_id: 0b1c0000-0000-4000-8000-000000000001
    client_id: 5e6f0000-0000-4000-8000-000000000001
    client_secret: x
  fabrikam:
    tenant_id: 0b1c0000-0000-4000-8000-000000000002
    client_id: 5e6f0000-0000-4000-8000-000000000002
    client_secret: y
jobs:
  a-to-b:
    source: contoso
    target: fabrikam
    scope:
      filters:
        - - {attribute: FILTER, operator: EQUALS, value: "Sync"}
    mappings:
      - {target: displayName, source: displayName}
      - {target: TARGET, source: SOURCE}
      - {target: mail, source: mail, match: 1}
"""


def load(tmp_path: Path, filter_: str, target: str, source: str, extra: str = "") -> object:
    text = (
        CONFIG.replace("FILTER", filter_).replace("TARGET", target).replace("SOURCE", source)
        + extra
    )
    path = tmp_path / "tenant-sync.yaml"
    path.write_text(text)
    return load_config(path, env={})


def problems(tmp_path: Path, filter_: str, target: str, source: str, extra: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, filter_, target, source, extra)
    return "\n".join(caught.value.problems)


@pytest.mark.parametrize(
    ("written", "engine"),
    [
        ("extensionAttribute1", "extensionAttribute1"),
        ("onPremisesExtensionAttributes.extensionAttribute15", "extensionAttribute15"),
        (APP_EXT, APP_EXT),
    ],
)
def test_both_documented_forms_validate_as_filter_source_and_target(
    tmp_path: Path, written: str, engine: str
) -> None:
    config = load(tmp_path, written, written, written)
    job = config.job("a-to-b")  # type: ignore[attr-defined]
    assert [c.attribute for g in job.scope.filters for c in g] == [engine]
    mapped = job.mappings[1]
    assert (mapped.target, mapped.source) == (engine, engine)
    assert engine in job.spec.select


@pytest.mark.parametrize(
    ("where", "bad"),
    [
        ("filter", "extensionAttribute16"),
        ("source", "onPremisesExtensionAttributes.extensionAttribute0"),
        ("target", "extension_xyz"),
        ("target", "extension_0123456789abcdef0123456789abcde_short"),
    ],
)
def test_a_wrong_extension_name_is_refused_with_its_place_and_the_valid_forms(
    tmp_path: Path, where: str, bad: str
) -> None:
    names = {"filter": "department", "target": "jobTitle", "source": "jobTitle", where: bad}
    message = problems(tmp_path, names["filter"], names["target"], names["source"])
    place = {
        "filter": "jobs.a-to-b.scope.filters[0][0].attribute",
        "source": "jobs.a-to-b.mappings[1].source",
        "target": "jobs.a-to-b.mappings[1].target",
    }[where]
    assert f"{place}: {bad!r} is not" in message
    assert "extensionAttribute1..extensionAttribute15" in message
    assert "extension_<appId>_<name>" in message


def test_expressions_read_extension_attributes_in_both_forms(tmp_path: Path) -> None:
    extra = (
        "      - target: department\n"
        '        expression: \'Join("-", [onPremisesExtensionAttributes.extensionAttribute3],'
        f' [extensionAttribute4], [{APP_EXT}], "[onPremisesExtensionAttributes.x]")\'\n'
    )
    config = load(tmp_path, "department", "jobTitle", "jobTitle", extra)
    spec = config.job("a-to-b").mappings[-1]  # type: ignore[attr-defined]
    assert spec.source_attributes == {"extensionAttribute3", "extensionAttribute4", APP_EXT}
    user = SourceUser(
        "u1", {"extensionAttribute3": "A", "extensionAttribute4": "B", APP_EXT: "CC-7"}
    )
    assert Mapper([spec]).map(user, creating=False).values == {
        "department": "A-B-CC-7-[onPremisesExtensionAttributes.x]"
    }
    bad = extra.replace("[extensionAttribute4]", "[extensionAttribute44]")
    message = problems(tmp_path, "department", "jobTitle", "jobTitle", bad)
    assert "jobs.a-to-b.mappings[3].expression: 'extensionAttribute44' is not" in message


def test_the_same_extension_attribute_in_two_forms_is_mapped_twice(tmp_path: Path) -> None:
    extra = "      - {target: onPremisesExtensionAttributes.extensionAttribute5, source: city}\n"
    message = problems(tmp_path, "department", "extensionAttribute5", "jobTitle", extra)
    assert "mappings[3].target" in message
    assert "already mapped by mappings[1]" in message


def test_matching_on_an_extension_attribute_is_refused(tmp_path: Path) -> None:
    text = CONFIG.replace("{target: mail, source: mail, match: 1}", "{target: mail, source: mail}")
    text = text.replace(
        "{target: TARGET, source: SOURCE}",
        "{target: extensionAttribute2, source: employeeId, match: 1}",
    ).replace("FILTER", "department")
    path = tmp_path / "tenant-sync.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "mappings[1].match: 'extensionAttribute2' cannot be a matching attribute" in str(
        caught.value.problems
    )


def test_a_directory_extension_keeps_its_type_and_the_container_is_not_an_attribute(
    tmp_path: Path,
) -> None:
    config = load(tmp_path, APP_EXT, APP_EXT, "accountEnabled")
    spec = config.job("a-to-b").mappings[1]  # type: ignore[attr-defined]
    mapped = Mapper([spec]).map(SourceUser("u", {"accountEnabled": True}), creating=True)
    assert mapped.values == {APP_EXT: True}  # the app's own type flows, not a string
    message = problems(tmp_path, ext.CONTAINER, ext.CONTAINER, "jobTitle")
    message += problems(tmp_path, "department", "jobTitle", ext.CONTAINER)
    for place in ("scope.filters[0][0].attribute", "mappings[1].target", "mappings[1].source"):
        assert f"{place}: 'onPremisesExtensionAttributes' holds fifteen attributes" in message


def test_a_job_without_extension_attributes_selects_nothing_more(tmp_path: Path) -> None:
    config = load(tmp_path, "department", "jobTitle", "jobTitle")
    select = config.job("a-to-b").spec.select  # type: ignore[attr-defined]
    assert ext.graph_select(select) == select
    assert not any("xtension" in name for name in select)


def test_graph_select_reads_the_container_once_and_directory_extensions_by_name() -> None:
    names = ["id", "extensionAttribute1", "mail", "extensionAttribute5", APP_EXT]
    assert ext.graph_select(names) == ["id", ext.CONTAINER, "mail", APP_EXT]


def test_graph_answers_are_flattened_and_writes_nested_and_merged() -> None:
    answer = {
        "displayName": "Ann",
        ext.CONTAINER: {f"extensionAttribute{i}": None for i in range(1, 16)}
        | {"extensionAttribute1": "Sync"},
        APP_EXT: "CC-7",
    }
    flat = ext.flatten(answer)
    assert flat["extensionAttribute1"] == "Sync"
    assert flat["extensionAttribute2"] is None
    assert ext.CONTAINER not in flat
    assert flat[APP_EXT] == "CC-7"
    assert ext.graph_payload(
        {"jobTitle": "Dev", "extensionAttribute5": "E5", "extensionAttribute7": "E7", APP_EXT: 1}
    ) == {
        "jobTitle": "Dev",
        APP_EXT: 1,
        ext.CONTAINER: {"extensionAttribute5": "E5", "extensionAttribute7": "E7"},
    }
    assert ext.graph_payload({"jobTitle": "Dev"}) == {"jobTitle": "Dev"}


def test_filters_scope_on_extension_attributes() -> None:
    clauses = [[Clause("extensionAttribute1", Operator.EQUALS, "Sync")]]
    assert evaluate_filters({"extensionAttribute1": "Sync"}, clauses).in_scope
    out = evaluate_filters({"extensionAttribute1": None}, clauses)
    assert not out.in_scope
    assert "extensionAttribute1 EQUALS 'Sync' is false" in out.reason
    by_app = [[Clause(APP_EXT, Operator.STARTS_WITH, "CC-")]]
    assert evaluate_filters({APP_EXT: "CC-7"}, by_app).in_scope
    assert not evaluate_filters({}, by_app).in_scope


def test_mapping_an_extension_attribute_to_another_writes_the_flat_name() -> None:
    spec = MappingSpec(target="extensionAttribute5", source="extensionAttribute2")
    user = SourceUser("u", {"extensionAttribute2": "E2"})
    assert Mapper([spec]).map(user, creating=False).values == {"extensionAttribute5": "E2"}


class _NoClient:
    """The directories' request building needs no connection."""

    def url(self, path: str) -> str:
        return "https://graph.example/v1.0" + path


def test_the_adapter_patches_a_nested_body_that_fits_the_csdl() -> None:
    from tests.support.csdl import validate_entity
    from worker.adapters.graph.directory import GraphTargetDirectory
    from worker.ports import GetUser, PatchUser

    target = GraphTargetDirectory(_NoClient(), invite_redirect_url="https://x.example")  # type: ignore[arg-type]
    values = {"extensionAttribute5": "E5", "extensionAttribute6": "E6", "jobTitle": "Dev"}
    body = target._call(PatchUser("t", {**values, APP_EXT: "CC-1"})).body
    assert body[ext.CONTAINER] == {"extensionAttribute5": "E5", "extensionAttribute6": "E6"}
    assert body[APP_EXT] == "CC-1"
    # Directory extensions are defined in the tenant, not in the CSDL: the rest must fit it.
    without_app = {k: v for k, v in body.items() if k != APP_EXT}
    assert validate_entity("user", without_app, request_body=True) == []
    url = target._call(GetUser("t", ("extensionAttribute5", "extensionAttribute6", APP_EXT))).url
    assert f"%24select=id%2C{ext.CONTAINER}%2C{APP_EXT}" in url


def test_the_source_delta_selects_the_container_only_when_used() -> None:
    from worker.adapters.graph.directory import GraphSourceDirectory

    source = GraphSourceDirectory(_NoClient())  # type: ignore[arg-type]
    used = source.users_delta_start(["id", "extensionAttribute1", "extensionAttribute2", APP_EXT])
    assert f"%24select=id%2C{ext.CONTAINER}%2C{APP_EXT}" in used
    unused = source.users_delta_start(["id", "mail"])
    assert "xtension" not in unused
