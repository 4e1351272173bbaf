"""The one reader of configuration files and environment variables.

`load_config` reads the YAML file (docs/contracts.md), replaces `${ENV_VAR}` (and `${VAR:-default}`)
in every string, validates the result and checks what refers to what. It never writes anything.
Every problem is collected and reported at once, each with its path in the file, e.g.
`jobs.a-to-b.target: unknown tenant 'x'`.

This module assembles: `load_config` and `build_config` validate section by section and check
what refers to what, and the `notifications:` list is checked notifier by notifier. The parts
live one idea to a module, and what other code imports is re-exported here: `config_models`
(the pydantic models of the file), `config_source` (the path, YAML, `${VAR}` interpolation,
`ConfigError` and the path of each problem), `config_jobs` (a job's checks against the tenants
and Graph's schema) and `config_runtime` (the result: `Config`, `Job`, `JobRuntime`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from worker.config_jobs import (
    JOB_NAME_RE,
    _build_generated_jobs,
    _build_jobs,
    _check_parts_of_invalid_job,
    _check_tenant_refs,
    _override_only,
    _some,
)
from worker.config_models import (
    ENV_RE,
    GUID_RE,
    NOTIFIER_KINDS,
    PLAIN_DATABASE_URL_RE,
    ROLE_OPERATE,
    ROLE_READ,
    ApiAuthConfig,
    ApiConfig,
    EmailNotification,
    JobConfig,
    LoggingConfig,
    MetricsConfig,
    RawConfig,
    StateConfig,
    TeamsNotification,
    TenantConfig,
    WebhookNotification,
    format_duration,
    notifier_label,
    parse_duration,
)
from worker.config_runtime import Config, Job
from worker.config_source import (
    CONFIG_ENV,
    ConfigError,
    _besides,
    _interpolate,
    _missing_file,
    _missing_files,
    _validate,
    config_path,
    parse_yaml,
)
from worker.domain.organization import SECTION, expand_organization

# What the rest of the worker, the tests and the scripts import from here; each lives in the
# module that owns it (config_models, config_source, config_runtime).
__all__ = [
    "CONFIG_ENV",
    "ENV_RE",
    "GUID_RE",
    "PLAIN_DATABASE_URL_RE",
    "ROLE_OPERATE",
    "ROLE_READ",
    "ApiAuthConfig",
    "Config",
    "ConfigError",
    "EmailNotification",
    "Job",
    "TeamsNotification",
    "TenantConfig",
    "WebhookNotification",
    "build_config",
    "config_path",
    "format_duration",
    "load_config",
    "notifier_label",
    "parse_duration",
    "parse_yaml",
]


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    strict: bool = False,
) -> Config:
    """Read, interpolate and validate a configuration file; raise ConfigError listing problems.

    With `strict`, a tenant with an unset environment variable is a problem too; without, only
    the jobs that use that tenant are refused (see `Config.job`)."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: configuration file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: not valid YAML{where}: {problem}"]) from None
    return build_config(data, env=os.environ if env is None else env, path=file, strict=strict)


def build_config(
    data: Any, *, env: Mapping[str, str], path: Path | None = None, strict: bool = False
) -> Config:
    """Validate section by section so that one bad part does not hide the problems of another.

    A tenant with an unset environment variable does not fail the whole config (unless
    `strict`, as `validate` asks): only the jobs that use it (`Config.job`)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path or 'config'}: the top level must be a mapping"])
    problems: list[str] = []
    # A tenant whose settings name an unset variable (its secret, most often) makes only the
    # jobs that use it unusable: its problems are kept apart (see Config.job) unless `strict`.
    unavailable: dict[str, list[str]] = {}
    # So do the operator service's settings (only `serve` needs them) and each notifier (only
    # its own deliveries): see Config.unavailable_parts.
    unavailable_parts: dict[str, list[str]] = {}
    tenants_raw = data.get("tenants")
    own_parts = ("tenants", "api", "notifications")
    parts_raw = {k: data[k] for k in ("api", "notifications") if k in data}
    data = _interpolate({k: v for k, v in data.items() if k not in own_parts}, env, (), problems)
    api_unset: list[str] = []
    if "api" in parts_raw:
        data["api"] = _interpolate(parts_raw["api"], env, ("api",), api_unset)
    if "notifications" in parts_raw:
        data["notifications"] = parts_raw["notifications"]  # interpolated notifier by notifier
    if isinstance(tenants_raw, dict):
        interpolated: dict[Any, Any] = {}
        for name, body in tenants_raw.items():
            unset: list[str] = []
            interpolated[name] = _interpolate(body, env, ("tenants", name), unset)
            if unset:
                unavailable[str(name)] = unset
        data["tenants"] = interpolated
    elif tenants_raw is not None:
        data["tenants"] = tenants_raw  # not a mapping: reported below
    for key in data:
        if key not in RawConfig.model_fields and key != SECTION:
            problems.append(f"{key}: unknown setting")
    state = _validate(StateConfig, data.get("state") or {}, ("state",), problems)
    logging = _validate(LoggingConfig, data.get("logging") or {}, ("logging",), problems)
    metrics = _validate(MetricsConfig, data.get("metrics") or {}, ("metrics",), problems)
    api_problems: list[str] = []
    api = _validate(ApiConfig, data.get("api") or {}, ("api",), api_problems)
    (api_unset if api_unset else problems).extend(_besides(api_problems, api_unset))
    if api_unset:
        # With a variable unset, what else is wrong with `api` goes with it; the rest of the
        # configuration works without it (`serve` refuses to start, naming the variable).
        unavailable_parts["api"] = api_unset
        api = api or ApiConfig()
    tenants_data = data.get("tenants")
    tenants: dict[str, TenantConfig] = {}
    if not isinstance(tenants_data, dict) or not tenants_data:
        problems.append("tenants: required: at least one tenant")
        tenants_data = {}
    for name, body in tenants_data.items():
        # With a variable unset, what else is wrong with the tenant goes with it.
        where = unavailable.get(name, problems)
        tenant = _validate(TenantConfig, body, ("tenants", name), where)
        if tenant is not None:
            tenants[name] = tenant
        missing = _missing_files(name, body)
        if missing:
            unavailable.setdefault(str(name), []).extend(missing)
    jobs_data = data.get("jobs") or {}
    raw_jobs: dict[str, JobConfig] = {}
    if not isinstance(jobs_data, dict):
        problems.append("jobs: must be a mapping of job name to job")
        jobs_data = {}
    # An organisation's jobs join the explicit ones before validation (docs/organizations.md).
    expansion = expand_organization(data.get(SECTION), set(tenants_data), jobs_data)
    if SECTION in data:
        problems.extend(expansion.problems)
        jobs_data = {**jobs_data, **expansion.jobs}
    for name, body in jobs_data.items():
        if name in expansion.jobs:
            continue  # validated below, each problem traced to where it was written
        if SECTION in data and expansion.organization is None and _override_only(body):
            continue  # overrides a job of the organisation, whose problems are listed
        if expansion.organization is not None and _override_only(body):
            # Written as an override, of a job the organisation does not make (a topology or
            # direction changed, or a typo): say that, not "source: missing".
            made = expansion.organization.job_names()
            problems.append(
                f"jobs.{name}: has no source or target, so it overrides a job of the "
                f"{SECTION}, which makes no job of that name "
                f"({expansion.organization.describe()}: {_some(made)}); give it a source and "
                "a target, or name one of those jobs"
            )
            continue
        if not isinstance(name, str) or not JOB_NAME_RE.match(name):
            # Job names go into Redis keys, SQL columns and task arguments.
            problems.append(
                f"jobs.{name}: a job name is 1 to 100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
            continue
        job = _validate(JobConfig, body, ("jobs", name), problems)
        if job is not None:
            raw_jobs[name] = job
        elif isinstance(body, dict):
            # The job is invalid anyway; still say what else is wrong in it.
            _check_tenant_refs(
                name, body.get("source"), body.get("target"), set(tenants_data), problems
            )
            _check_parts_of_invalid_job(name, body, problems)
    retention = state.log_retention if state is not None else StateConfig().log_retention
    jobs = _build_jobs(raw_jobs, set(tenants_data), problems, retention)
    if expansion.organization is not None:
        generated = _build_generated_jobs(
            expansion.organization,
            expansion.jobs,
            data.get("jobs") or {},
            set(tenants_data),
            problems,
            retention,
        )
        raw_jobs |= {name: job.raw for name, job in generated.items()}
        jobs |= generated
    indexed = _notifications(
        data.get("notifications"), set(jobs_data), problems, env, unavailable_parts
    )
    notifications = [n for _, n in indexed]
    if api is not None and api.auth.tenant and api.auth.tenant not in tenants_data:
        known = ", ".join(sorted(tenants_data)) or "none"
        where = unavailable_parts.get("api", problems)
        where.append(f"api.auth.tenant: unknown tenant {api.auth.tenant!r} (known: {known})")
    elif api is not None and api.auth.tenant in tenants:
        # `serve` signs people in with that tenant's settings, its CA file included.
        ca_missing = [p for p in unavailable.get(api.auth.tenant, []) if ".ca_bundle:" in p]
        if ca_missing:
            unavailable_parts.setdefault("api", []).extend(
                f"api.auth.tenant ({api.auth.tenant}): {p}" for p in ca_missing
            )
    deferred = [p for name in unavailable for p in unavailable[name]]
    deferred += [p for part in unavailable_parts.values() for p in part]
    if problems or (strict and deferred):
        raise ConfigError(deferred + problems)
    if state is None or logging is None or metrics is None or api is None:
        raise ConfigError(problems)  # not reached: each of them failing is a problem
    # Its parts are validated above: assembled as they are, without building a validator of
    # the whole (about 1 % of `validate`: docs/performance.md, "CLI start-up").
    raw = RawConfig.model_construct(
        state=state,
        logging=logging,
        metrics=metrics,
        tenants=tenants,
        jobs=raw_jobs,
        api=api,
        notifications=notifications,
    )
    return Config(
        raw,
        jobs,
        path,
        unavailable,
        unavailable_parts=unavailable_parts,
        notification_positions=[i for i, _ in indexed],
        organization=expansion.organization,
    )


def _notifications(
    data: Any,
    job_names: set[Any],
    problems: list[str],
    env: Mapping[str, str] | None = None,
    unavailable_parts: dict[str, list[str]] | None = None,
) -> list[tuple[int, Any]]:
    """The `notifications:` list: each item validated by its kind, its `jobs` against the jobs;
    with its position in the list. A notifier naming an unset variable is left out, its
    problems kept in `unavailable_parts` (the others still work)."""
    if data is None:
        return []
    if not isinstance(data, list):
        problems.append("notifications: must be a list of notifiers (each with a kind)")
        return []
    kinds = ", ".join(NOTIFIER_KINDS)
    notifiers: list[tuple[int, Any]] = []
    for index, raw_body in enumerate(data):
        where = f"notifications[{index}]"
        unset: list[str] = []
        body = _interpolate(raw_body, env or {}, ("notifications", index), unset)
        if unset:
            # Its other problems go with it: the notifier is unusable until the variable is set.
            found: list[str] = []
            _notifier(body, index, job_names, found, kinds)
            unset.extend(_besides(found, unset))
            if unavailable_parts is not None:
                unavailable_parts[where] = unset
            continue
        missing = _missing_file(body, "ca_bundle", where)
        if missing is not None:
            # A CA file missing on this machine, like an unset variable: this notifier is left
            # out (a warning names it at each delivery), the others send.
            found = []
            _notifier(body, index, job_names, found, kinds)
            if unavailable_parts is not None:
                unavailable_parts[where] = [missing, *found]
            continue
        notifier = _notifier(body, index, job_names, problems, kinds)
        if notifier is not None:
            notifiers.append((index, notifier))
    return notifiers


def _notifier(
    body: Any, index: int, job_names: set[Any], problems: list[str], kinds: str
) -> Any | None:
    where = f"notifications[{index}]"
    if not isinstance(body, dict):
        problems.append(f"{where}: must be a mapping with a kind ({kinds})")
        return None
    kind = body.get("kind")
    if kind is None:
        problems.append(f"{where}.kind: required setting is missing (one of: {kinds})")
        return None
    model = NOTIFIER_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        problems.append(f"{where}.kind: unknown kind {kind!r} (one of: {kinds})")
        return None
    notifier = _validate(model, body, ("notifications", index), problems)
    if notifier is None:
        return None
    known = ", ".join(sorted(map(str, job_names))) or "none"
    unknown = [(i, name) for i, name in enumerate(notifier.jobs or []) if name not in job_names]
    for i, name in unknown:
        problems.append(f"{where}.jobs[{i}]: unknown job {name!r} (known jobs: {known})")
    return None if unknown else notifier
