"""Configuration loading: interpolation, defaults, and every problem reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_config, parse_duration

pytestmark = pytest.mark.unit

GOOD = """
tenants:
  contoso:
    tenant_id: 0B1C0000-0000-4000-8000-000000000001
    client_id: 5e6f0000-0000-4000-8000-000000000001
    client_secret: ${CONTOSO_SECRET}
  fabrikam:
    tenant_id: 0b1c0000-0000-4000-8000-000000000002
    client_id: 5e6f0000-0000-4000-8000-000000000002
    client_secret: ${FABRIKAM_SECRET:-fallback}
jobs:
  contoso-to-fabrikam:
    source: contoso
    target: fabrikam
    schedule: {interval: 1h30m, full_every: 7d}
    scope:
      users: assigned
      groups: [9a0b0000-0000-4000-8000-00000000a001]
      filters:
        - - {attribute: department, operator: EQUALS, value: Sales}
    mappings:
      - {target: displayName, source: displayName}
      - {target: mail, source: mail, match: 1}
      - {target: showInAddressList, constant: "true"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenant-sync.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={"CONTOSO_SECRET": "s3cret"})

    contoso = config.tenants["contoso"]
    assert contoso.client_secret is not None
    assert contoso.client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(contoso)
    assert contoso.tenant_id == "0b1c0000-0000-4000-8000-000000000001"
    assert config.tenants["fabrikam"].client_secret.get_secret_value() == "fallback"  # type: ignore[union-attr]
    job = config.job("contoso-to-fabrikam")
    assert job.runtime.interval.total_seconds() == 5400
    assert job.scope.assigned_only
    assert [m.target for m in job.match_mappings] == ["mail"]
    assert job.mappings[2].target_type == "Edm.Boolean"
    assert config.state.redis_url == "embedded"


def test_no_mappings_means_the_default_set(tmp_path: Path) -> None:
    text = GOOD.split("    mappings:")[0]
    config = load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    targets = [m.target for m in config.job("contoso-to-fabrikam").mappings]
    assert "employeeId" in targets
    assert "userType" in targets


def test_every_problem_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    text = (
        GOOD.replace("target: fabrikam", "target: nowhere")
        .replace(
            "{attribute: department, operator: EQUALS, value: Sales}",
            "{attribute: department, operator: LIKE, value: Sales}",
        )
        .replace("source: displayName}", "source: dispalyName}")
        + "    colour: blue\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    problems = caught.value.problems
    assert (
        "tenants.contoso.client_secret: environment variable CONTOSO_SECRET is not set" in problems
    )
    assert any(
        p.startswith("jobs.contoso-to-fabrikam.target: unknown tenant 'nowhere'") for p in problems
    )
    assert any(
        p.startswith(
            "jobs.contoso-to-fabrikam.scope.filters[0][0].operator: unknown operator 'LIKE'"
        )
        for p in problems
    )
    assert "jobs.contoso-to-fabrikam.colour: unknown setting" in problems
    # The schema errors above must not hide the job's deeper checks.
    assert (
        "jobs.contoso-to-fabrikam.mappings[0].source: 'dispalyName' is not a property of "
        "microsoft.graph.user" in problems
    )


def test_a_malformed_clause_does_not_hide_the_other_clauses_and_mappings(
    tmp_path: Path,
) -> None:
    filters = """        - - {attribute: department, operator: LIKE, value: x}
        - - {attribute: department, operator: EQUALS}
        - - {attribute: department, operator: REGEX MATCH, value: "([a-"}
        - - {attribute: noSuchAttr, operator: IS NULL}
"""
    text = GOOD.replace(
        "        - - {attribute: department, operator: EQUALS, value: Sales}\n", filters
    ).replace(
        "{target: displayName, source: displayName}",
        "{target: displayName, expression: 'Join(\" \", [givenName], '}",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    at = "jobs.contoso-to-fabrikam"
    assert [p.split(":")[0] for p in caught.value.problems] == [
        f"{at}.scope.filters[0][0].operator",
        f"{at}.scope.filters[1][0]",
        f"{at}.scope.filters[2][0]",
        f"{at}.scope.filters[3][0].attribute",
        f"{at}.mappings[0].expression",
    ]


def test_mapping_problems_name_the_mapping(tmp_path: Path) -> None:
    text = GOOD.replace("source: displayName}", "source: dispalyName}").replace(
        '{target: showInAddressList, constant: "true"}', "{target: createdDateTime, constant: x}"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert caught.value.problems == [
        "jobs.contoso-to-fabrikam.mappings[0].source: 'dispalyName' is not a property of microsoft.graph.user",
        "jobs.contoso-to-fabrikam.mappings[2].target: 'createdDateTime' is read-only in the target tenant",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "tenants: required: at least one tenant"),
        ("tenants: [", "not valid YAML (line 1"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_broken_files_get_one_clear_message(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert any(expected in p for p in caught.value.problems)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_credentials_must_be_exactly_one_kind(tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text("not checked until sign-in")
    text = GOOD.replace(
        "client_secret: ${CONTOSO_SECRET}", f"certificate_path: {pem}\n    client_secret: y"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})
    assert caught.value.problems == [
        "tenants.contoso: give exactly one of client_secret or certificate_path"
    ]
    pem.unlink()
    path = write(
        tmp_path, GOOD.replace("client_secret: ${CONTOSO_SECRET}", f"certificate_path: {pem}")
    )
    with pytest.raises(ConfigError) as missing:
        load_config(path, env={}, strict=True)
    assert missing.value.problems == [f"tenants.contoso.certificate_path: no such file '{pem}'"]


@pytest.mark.parametrize("setting", ["ca_bundle", "certificate_path"])
def test_a_missing_file_stops_only_the_jobs_of_its_tenant(tmp_path: Path, setting: str) -> None:
    """A file named by a tenant and missing on this machine (the sandbox's CA before it first
    ran) is a deployment problem, like an unset variable: `validate` (strict) lists it; other
    commands load the config and refuse only that tenant's jobs, naming the setting and file."""
    missing = tmp_path / "sandbox-tls" / "ca.pem"
    credential = "client_secret: y\n    " if setting == "ca_bundle" else ""
    line = f"{credential}{setting}: {missing}"
    path = write(tmp_path, GOOD.replace("client_secret: ${CONTOSO_SECRET}", line))
    problem = f"tenants.contoso.{setting}: no such file '{missing}'"
    with pytest.raises(ConfigError) as strict:
        load_config(path, env={}, strict=True)
    assert strict.value.problems == [problem]
    config = load_config(path, env={})
    with pytest.raises(ConfigError) as refused:
        config.job("contoso-to-fabrikam")
    assert refused.value.problems == [
        f"jobs.contoso-to-fabrikam: cannot run: its source tenant 'contoso' is unusable: {problem}"
    ]
    missing.parent.mkdir()
    missing.write_text("a CA")
    assert load_config(path, env={}, strict=True).job("contoso-to-fabrikam")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("40m", 2400), ("1h30m", 5400), ("7d", 604800), ("90s", 90), (120, 120), ("2w", 1209600)],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value).total_seconds() == seconds


def test_bad_duration_and_too_short_interval(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
    text = GOOD.replace("interval: 1h30m", "interval: 1s")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert (
        "jobs.contoso-to-fabrikam.schedule.interval: must be at least 10s" in caught.value.problems
    )


def test_select_unique_value_is_only_for_creation(tmp_path: Path) -> None:
    unique = "{target: mailNickname, expression: 'SelectUniqueValue([mailNickname], [givenName])'"
    text = GOOD.replace('{target: showInAddressList, constant: "true"}', unique + "}")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert caught.value.problems == [
        "jobs.contoso-to-fabrikam.mappings[2].apply: SelectUniqueValue needs apply: on_create "
        "(a unique value is chosen once, when the user is created)"
    ]
    fixed = text.replace(unique + "}", unique + ", apply: on_create}")
    assert load_config(write(tmp_path, fixed), env={"CONTOSO_SECRET": "x"}).jobs


def test_a_bad_expression_fails_the_load_with_its_position(tmp_path: Path) -> None:
    text = GOOD.replace(
        '{target: showInAddressList, constant: "true"}',
        "{target: jobTitle, expression: 'Left([jobTitle], 3'}",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    (problem,) = caught.value.problems
    assert problem.startswith("jobs.contoso-to-fabrikam.mappings[2].expression: ")
    assert "position" in problem


def test_only_simple_properties_can_be_mapped(tmp_path: Path) -> None:
    text = GOOD.replace(
        '{target: showInAddressList, constant: "true"}', "{target: passwordProfile, constant: x}"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert caught.value.problems == [
        "jobs.contoso-to-fabrikam.mappings[2].target: 'passwordProfile' has the complex type "
        "graph.passwordProfile; only properties of simple types (and lists of them) can be mapped"
    ]


@pytest.mark.parametrize("name", ["a b", "x" * 101, "-leading", "ünïcode"])
def test_job_names_must_fit_keys_and_columns(tmp_path: Path, name: str) -> None:
    text = GOOD.replace("  contoso-to-fabrikam:\n", f"  '{name}':\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert caught.value.problems[0].startswith(f"jobs.{name}: a job name is 1 to 100 letters")


def test_the_beat_purges_the_provisioning_log_daily(tmp_path: Path) -> None:
    from worker.celery_app import PURGE_LOGS_TASK, beat_schedule

    config = load_config(write(tmp_path, GOOD), env={"CONTOSO_SECRET": "x"})
    schedule = beat_schedule(config)
    assert schedule["tenant-sync:purge-logs"]["task"] == PURGE_LOGS_TASK
    assert schedule["tenant-sync:purge-logs"]["schedule"] == 86400
    assert schedule["tenant-sync:contoso-to-fabrikam"]["schedule"] == 5400
    assert config.state.log_retention.days == 30


def test_the_deletion_window_defaults_to_24h_or_the_interval(tmp_path: Path) -> None:
    from datetime import timedelta

    config = load_config(write(tmp_path, GOOD), env={"CONTOSO_SECRET": "x"})
    threshold = config.job("contoso-to-fabrikam").spec.deletion_threshold
    assert (threshold.count, threshold.percent, threshold.window) == (
        500,
        None,
        timedelta(hours=24),
    )
    daily = GOOD.replace("interval: 1h30m", "interval: 2d")
    config = load_config(write(tmp_path, daily), env={"CONTOSO_SECRET": "x"})
    assert config.job("contoso-to-fabrikam").spec.deletion_threshold.window == timedelta(days=2)
    chosen = GOOD + "    deletion_threshold: {count: 10, window: 3d}\n"
    config = load_config(write(tmp_path, chosen), env={"CONTOSO_SECRET": "x"})
    threshold = config.job("contoso-to-fabrikam").spec.deletion_threshold
    assert (threshold.count, threshold.window) == (10, timedelta(days=3))


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("1h", "deletion_threshold.window: must be at least the schedule's interval (1h30m)"),
        ("45d", "deletion_threshold.window: must be at most state.log_retention (30d)"),
        ("0s", "deletion_threshold.window: must be a positive duration"),
        ("soon", "deletion_threshold.window: not a duration: 'soon'"),
    ],
)
def test_a_bad_deletion_window_is_named(tmp_path: Path, window: str, message: str) -> None:
    text = GOOD + f"    deletion_threshold: {{count: 10, window: {window}}}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert any(f"jobs.contoso-to-fabrikam.{message}" in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_yaml_1_1_booleans_stay_strings(tmp_path: Path) -> None:
    """`NO` is Norway, not false: only true and false are booleans in a config file."""
    text = GOOD.replace(
        "{attribute: department, operator: EQUALS, value: Sales}",
        "{attribute: country, operator: EQUALS, value: NO}",
    ).replace(
        '{target: showInAddressList, constant: "true"}',
        "{target: showInAddressList, constant: true}\n      - {target: employeeId, constant: 0047}",
    )
    job = load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"}).job("contoso-to-fabrikam")
    assert job.scope.filters[0][0].value == "NO"
    assert job.scope.filters[0][0].matches({"country": "NO"})
    assert job.mappings[2].constant is True
    assert job.mappings[3].constant == "0047"


@pytest.mark.parametrize("written", ["yes", "on", "1", "'no'"])
def test_an_on_off_setting_takes_only_true_or_false(tmp_path: Path, written: str) -> None:
    text = GOOD.replace(
        "      users: assigned\n", f"      users: assigned\n      nested_groups: {written}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert "jobs.contoso-to-fabrikam.scope.nested_groups: " in str(caught.value)
    assert "is not a boolean: write true or false" in str(caught.value)


def test_an_on_off_setting_from_the_environment_is_read_as_written(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      users: assigned\n", "      users: assigned\n      nested_groups: ${NESTED}\n"
    )
    for value, expected in (("true", True), ("False", False)):
        config = load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x", "NESTED": value})
        assert config.job("contoso-to-fabrikam").spec.scope.nested_groups is expected


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        (
            "{attribute: country, operator: EQUALS, value: false}",
            "scope.filters[0][0].value: false is a boolean, but country is Edm.String",
        ),
        (
            "{attribute: accountEnabled, operator: EQUALS, value: NO}",
            "scope.filters[0][0].value: 'NO' does not fit accountEnabled (Edm.Boolean)",
        ),
        (
            "{attribute: country, operator: IS IN, value: [SE, true]}",
            "scope.filters[0][0].value: true is a boolean, but country is Edm.String",
        ),
    ],
)
def test_a_value_that_does_not_fit_its_attribute_is_named(
    tmp_path: Path, written: str, problem: str
) -> None:
    text = GOOD.replace("{attribute: department, operator: EQUALS, value: Sales}", written)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert any(
        p.startswith(f"jobs.contoso-to-fabrikam.{problem}") for p in caught.value.problems
    ), caught.value.problems


def test_a_mapping_constant_must_fit_its_target(tmp_path: Path) -> None:
    text = GOOD.replace(
        '{target: showInAddressList, constant: "true"}',
        "{target: showInAddressList, constant: yes}\n      - {target: department, constant: true}",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert caught.value.problems == [
        "jobs.contoso-to-fabrikam.mappings[2].constant: 'yes' does not fit showInAddressList "
        "(Edm.Boolean): use true or false",
        "jobs.contoso-to-fabrikam.mappings[3].constant: true is a boolean, but department is "
        "Edm.String: quote it ('true') if the text is meant",
    ]


def test_nothing_outside_config_reads_the_raw_model() -> None:
    """Config hands out each job's domain spec and runtime part; `.raw` stays inside it."""
    import re

    root = Path(__file__).resolve().parents[2] / "worker"
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "config.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\b(job|config|cfg)(\([^)]*\))?\.raw\b", line)
    ]
    assert offenders == []


def test_a_tenant_with_an_unset_secret_stops_only_the_jobs_that_use_it(tmp_path: Path) -> None:
    text = GOOD.replace(
        "jobs:\n",
        "  northwind:\n"
        "    tenant_id: 0b1c0000-0000-4000-8000-000000000003\n"
        "    client_id: 5e6f0000-0000-4000-8000-000000000003\n"
        "    client_secret: ${NORTHWIND_SECRET}\n"
        "jobs:\n"
        "  contoso-to-northwind: {source: contoso, target: northwind}\n",
        1,
    )
    path = write(tmp_path, text)
    config = load_config(path, env={"CONTOSO_SECRET": "x"})
    assert config.job("contoso-to-fabrikam").target == "fabrikam"
    with pytest.raises(ConfigError) as caught:
        config.job("contoso-to-northwind")
    assert caught.value.problems == [
        "jobs.contoso-to-northwind: cannot run: its target tenant 'northwind' is unusable: "
        "tenants.northwind.client_secret: environment variable NORTHWIND_SECRET is not set"
    ]
    with pytest.raises(ConfigError) as strict:
        load_config(path, env={"CONTOSO_SECRET": "x"}, strict=True)
    assert strict.value.problems == [
        "tenants.northwind.client_secret: environment variable NORTHWIND_SECRET is not set"
    ]


def test_yaml_1_1_dates_and_sexagesimals_stay_the_text_written(tmp_path: Path) -> None:
    """`2024-01-01`, a timestamp, `1:30.5` and `0x1F` are what the user typed, not a date or 90.5."""
    text = GOOD.replace(
        "{attribute: department, operator: EQUALS, value: Sales}",
        "{attribute: employeeHireDate, operator: GREATER_THAN, value: 2024-01-01T10:00:00Z}",
    ).replace(
        '{target: showInAddressList, constant: "true"}',
        "{target: officeLocation, constant: 2024-01-01}\n"
        "      - {target: city, constant: 1:30.5}\n"
        "      - {target: employeeId, constant: 0x1F}\n"
        "      - {target: department, constant: 1.5}",
    )
    job = load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"}).job("contoso-to-fabrikam")
    clause = job.scope.filters[0][0]
    assert clause.value == "2024-01-01T10:00:00Z"
    assert not clause.matches({"employeeHireDate": "2024-01-01T09:00:00Z"})
    assert [m.constant for m in job.mappings[2:]] == ["2024-01-01", "1:30.5", "0x1F", 1.5]


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        (
            "{target: officeLocation, constant: !!timestamp 2024-01-01}",
            "mappings[2].constant: datetime.date(2024, 1, 1) (date) does not fit officeLocation",
        ),
        (
            "{target: city, constant: !!float .nan}",
            "mappings[2].constant: nan (float) does not fit city",
        ),
    ],
)
def test_a_value_json_cannot_carry_is_named(tmp_path: Path, written: str, problem: str) -> None:
    text = GOOD.replace('{target: showInAddressList, constant: "true"}', written)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert any(
        p.startswith(f"jobs.contoso-to-fabrikam.{problem}") for p in caught.value.problems
    ), caught.value.problems


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://h:6379/0"),
        ("redis://h:6379/0?password=pw", "redis://h:6379/0?password=***"),
        (
            "postgresql+psycopg://u:pw@h/db?sslmode=require&sslpassword=a&pwd=b&api_token=c",
            "postgresql+psycopg://u@h/db?sslmode=require&sslpassword=***&pwd=***&api_token=***",
        ),
        ("sqlite:///x/state.db?timeout=3", "sqlite:///x/state.db?timeout=3"),
    ],
)
def test_a_url_is_shown_without_any_password(url: str, shown: str) -> None:
    from worker.urls import redacted_url

    assert redacted_url(url) == shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "postgresql+psycopg2://ts:pw@127.0.0.1:5499/ts",
            "the driver 'postgresql+psycopg2' is not supported: use sqlite:///PATH, "
            "postgresql+psycopg://... or postgresql://... (both psycopg 3)",
        ),
        ("sqlite:///", "an in-memory SQLite database would lose"),
        ("sqlite://", "an in-memory SQLite database would lose"),
        ("sqlite:///:memory:", "an in-memory SQLite database would lose"),
    ],
)
def test_a_database_url_that_cannot_keep_state_is_refused(
    tmp_path: Path, url: str, problem: str
) -> None:
    text = f"state:\n  database_url: {url!r}\n{GOOD}"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"CONTOSO_SECRET": "x"})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"state.database_url: {problem}")


def test_an_unset_variable_outside_tenants_stops_only_the_part_that_needs_it(
    tmp_path: Path,
) -> None:
    text = (
        GOOD
        + """
api:
  auth:
    client_secret: ${CONSOLE_SECRET}
    tokens:
      - {name: ci, sha256: "${CI_TOKEN_SHA}", role: TenantSync.Read}
notifications:
  - {kind: webhook, url: "${NOTIFY_URL}"}
  - {kind: webhook, url: https://hooks.contoso.com/x}
"""
    )
    path = write(tmp_path, text)
    config = load_config(path, env={"CONTOSO_SECRET": "x"})
    assert config.job("contoso-to-fabrikam").target == "fabrikam"
    assert config.unavailable_parts == {
        "api": [
            "api.auth.client_secret: environment variable CONSOLE_SECRET is not set",
            "api.auth.tokens[0].sha256: environment variable CI_TOKEN_SHA is not set",
        ],
        "notifications[0]": ["notifications[0].url: environment variable NOTIFY_URL is not set"],
    }
    # The other notifier keeps its place (and its label, webhook#1).
    assert [(i, n.host) for i, n in config.indexed_notifications()] == [(1, "hooks.contoso.com")]
    with pytest.raises(ConfigError) as strict:
        load_config(path, env={"CONTOSO_SECRET": "x"}, strict=True)
    assert strict.value.problems == [
        *config.unavailable_parts["api"],
        *config.unavailable_parts["notifications[0]"],
    ]


def test_serve_needs_the_ca_file_of_the_tenant_it_signs_people_in_with(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    text = GOOD.replace(
        "client_secret: ${CONTOSO_SECRET}", f"client_secret: y\n    ca_bundle: {missing}"
    )
    api = "api:\n  auth: {tenant: contoso, audience: api://tenant-sync}\n"
    config = load_config(write(tmp_path, text + api), env={})
    problem = f"tenants.contoso.ca_bundle: no such file '{missing}'"
    assert config.unavailable_parts["api"] == [f"api.auth.tenant (contoso): {problem}"]


def test_a_notifier_whose_ca_file_is_missing_is_left_out_like_an_unset_variable(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "smtp-ca.pem"
    text = GOOD + (
        "notifications:\n"
        f"  - {{kind: webhook, url: https://hooks.contoso.com/a, ca_bundle: {missing}}}\n"
        "  - {kind: webhook, url: https://hooks.contoso.com/b}\n"
    )
    path = write(tmp_path, text)
    config = load_config(path, env={"CONTOSO_SECRET": "x"})
    problem = f"notifications[0].ca_bundle: no such file '{missing}'"
    assert config.unavailable_parts == {"notifications[0]": [problem]}
    assert [i for i, _ in config.indexed_notifications()] == [1]
    with pytest.raises(ConfigError) as strict:
        load_config(path, env={"CONTOSO_SECRET": "x"}, strict=True)
    assert strict.value.problems == [problem]
