"""The one reader of configuration files and environment variables.

`load_config` reads the YAML file (docs/contracts.md), replaces `${ENV_VAR}` (and `${VAR:-default}`)
in every string, validates the result and checks what refers to what. It never writes anything.
Every problem is collected and reported at once, each with its path in the file, e.g.
`jobs.a-to-b.target: unknown tenant 'x'`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.domain import extension_attributes as ext
from worker.domain.event_kinds import ALL_EVENTS, EventKind
from worker.domain.groups import GroupProvisioning
from worker.domain.health import DEFAULT_DELETION_WINDOW, DeletionThreshold
from worker.domain.job import Deprovision, JobPolicy, JobSpec
from worker.domain.mapping import Apply, MappingSpec, default_mappings
from worker.domain.model import MANAGER
from worker.domain.organization import (
    SECTION,
    Organization,
    expand_organization,
    inherits_value,
    locate_problem,
)
from worker.domain.scope import VALUELESS_OPERATORS, Clause, Operator, ScopeError, ScopeSpec
from worker.group_config import build_group_provisioning
from worker.schema import entity_properties, user_property_types, writable_user_properties

DEFAULT_CONFIG_PATH = Path("config/tenant-sync.yaml")
DEFAULTS_PREFIX = f"{SECTION}.job_defaults"  # where a problem of the organisation's defaults is
CONFIG_ENV = "TENANT_SYNC_CONFIG"
GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DURATION_RE = re.compile(
    r"^\s*(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$"
)
MIN_INTERVAL = timedelta(seconds=10)
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Database URLs that surely pass the checks below (a SQLite file without options; PostgreSQL
# through psycopg with at most one "@", ending the user part, and a numeric port): accepted
# without importing SQLAlchemy, which would double `validate`'s start-up. Any other URL is
# checked by SQLAlchemy itself, so its messages are unchanged.
PLAIN_DATABASE_URL_RE = re.compile(
    r"sqlite:///(?!:memory:\Z|file::memory:)[^?@]+"
    r"|postgresql(?:\+psycopg)?://"
    r"(?:[^:/@?]*(?::[^@/?]*)?@)?[\w.-]*(?::[0-9]+)?(?:/[^?@]*)?(?:\?[^@]*)?"
)

M = TypeVar("M", bound=BaseModel)


def _flag_text(value: Any) -> Any:
    """`true`/`false` written as text (as an interpolated `${VAR}` always is) are booleans;
    anything else is left to StrictBool, which refuses `yes`, `on`, `1` and the like."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


# An on/off setting: true or false, nothing YAML 1.1 or pydantic's lax mode would guess at.
Flag = Annotated[StrictBool, BeforeValidator(_flag_text)]


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` lists every reason with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(value: Any) -> timedelta:
    """`40m`, `1h30m`, `7d`, `2w`, `90s` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return timedelta(seconds=int(text))
        match = DURATION_RE.match(text)
        if match and any(match.groups()):
            w, d, h, m, s = (int(g) if g else 0 for g in match.groups())
            return timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    raise ValueError(f"not a duration: {value!r} (use e.g. 40m, 1h30m, 7d, 90s)")


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


class Strict(BaseModel):
    # Validators are built on first use, not at import: a command starts faster, and models a
    # config does not use (a notifier kind, say) are never built.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# What `make_engine` can open: SQLite, and PostgreSQL through psycopg 3 (the driver installed;
# a bare postgresql:// is mapped to it).
SUPPORTED_DATABASE_DRIVERS = frozenset({"sqlite", "postgresql", "postgresql+psycopg"})
DATABASE_URL_FORMS = "sqlite:///PATH, postgresql+psycopg://... or postgresql://... (both psycopg 3)"


class StateConfig(Strict):
    redis_url: str = "embedded"
    database_url: str = "sqlite:///.tenant-sync/state.db"
    state_dir: Path = Path(".tenant-sync")
    # How long a job's lock outlives a holder that died (it is renewed while the cycle runs).
    lock_ttl: timedelta = timedelta(seconds=60)
    # How long provisioning-log rows are kept (purged daily; also `tenant-sync db purge-logs`).
    log_retention: timedelta = timedelta(days=30)

    @field_validator("log_retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> Any:
        kept = parse_duration(value)
        if kept < timedelta(days=1):
            raise ValueError("must be at least 1d")
        return kept

    @field_validator("lock_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        ttl = parse_duration(value)
        if ttl < timedelta(seconds=3):
            raise ValueError("must be at least 3s")
        return ttl

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'embedded' or a redis://, rediss:// or unix:// URL")
        if value.startswith(("redis://", "rediss://")):
            # Checked here so that a typo is a bad setting (exit 2), not an unreachable server.
            parts = urlsplit(value)
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise ValueError("has an invalid port (e.g. redis://host:6379/0)") from None
            if not parts.hostname:
                raise ValueError("needs a host (e.g. redis://host:6379/0)")
            db = parts.path.strip("/")
            if db and not db.isdigit():
                raise ValueError(f"the database after the host must be a number, not {db!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(f"must be {DATABASE_URL_FORMS}")
        if PLAIN_DATABASE_URL_RE.fullmatch(value):
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("is not a valid database URL") from None
        if url.drivername not in SUPPORTED_DATABASE_DRIVERS:
            # Checked here: another driver would pass, then fail every command on its import.
            raise ValueError(
                f"the driver {url.drivername!r} is not supported: use {DATABASE_URL_FORMS}"
            )
        if url.drivername.startswith("sqlite") and (
            not url.database
            or url.database == ":memory:"
            or url.database.startswith("file::memory:")
            or url.query.get("mode") == "memory"
        ):
            raise ValueError(
                "an in-memory SQLite database would lose the links, logs and audit trail when "
                "the command ends: state must persist; give a file (sqlite:///PATH)"
            )
        return value


class MetricsConfig(Strict):
    """The worker's Prometheus endpoint (http://host:port/metrics); port 0 turns it off."""

    port: int = Field(default=9464, ge=0, le=65535)
    host: str = "0.0.0.0"  # noqa: S104 - Prometheus scrapes it from another host


class LoggingConfig(Strict):
    format: Literal["auto", "console", "json"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class LimitsConfig(Strict):
    """The tenant's Graph write quotas (by default Graph's published numbers) and their use."""

    write_per_150s: int = Field(default=3000, ge=1)  # per app and tenant
    invitations_per_5s: int = Field(default=150, ge=1)  # per tenant
    pace: float = Field(default=0.95, gt=0, le=1)  # the fraction of the quotas to use
    concurrency: int = Field(default=4, ge=1, le=32)  # $batch requests in flight per cycle
    # How long one cycle may wait in all to retry this tenant's failed requests (docs/retries.md).
    retry_budget: timedelta = timedelta(minutes=15)

    @field_validator("retry_budget", mode="before")
    @classmethod
    def _retry_budget(cls, value: Any) -> Any:
        budget = parse_duration(value)
        if not timedelta(0) <= budget <= timedelta(hours=24):
            raise ValueError("must be between 0s (no retries) and 24h")
        return budget


class TenantConfig(Strict):
    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = None
    certificate_path: Path | None = None
    domain: str | None = None
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    ca_bundle: Path | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @field_validator("tenant_id", "client_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not GUID_RE.match(value):
            raise ValueError(f"must be a GUID, got {value!r}")
        return value.lower()

    @field_validator("authority_host", "graph_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"must be an https:// URL, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_credential(self) -> TenantConfig:
        has_secret = self.client_secret is not None and self.client_secret.get_secret_value()
        if bool(has_secret) == bool(self.certificate_path):
            raise ValueError("give exactly one of client_secret or certificate_path")
        return self


class ScheduleConfig(Strict):
    interval: timedelta = timedelta(minutes=40)
    full_every: timedelta | None = None

    @field_validator("interval", "full_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("interval")
    @classmethod
    def _minimum(cls, value: timedelta) -> timedelta:
        if value < MIN_INTERVAL:
            raise ValueError(f"must be at least {format_duration(MIN_INTERVAL)}")
        return value


class ClauseConfig(Strict):
    attribute: str
    operator: Operator
    value: Any = None

    @field_validator("operator", mode="before")
    @classmethod
    def _operator(cls, value: Any) -> Any:
        if isinstance(value, str):
            normalized = " ".join(value.strip().upper().split())
            for op in Operator:
                if normalized in (op.value, op.value.replace("_", " "), op.name):
                    return op
            choices = ", ".join(op.value for op in Operator)
            raise ValueError(f"unknown operator {value!r} (one of: {choices})")
        return value


class ScopeConfig(Strict):
    users: Literal["all", "assigned"] = "all"
    user_ids: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    nested_groups: Flag = False
    filters: list[list[ClauseConfig]] = Field(default_factory=list)

    @field_validator("user_ids", "groups")
    @classmethod
    def _guids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not GUID_RE.match(v)]
        if bad:
            raise ValueError(f"must be object ids (GUIDs): {', '.join(map(repr, bad))}")
        return [v.lower() for v in values]


class MappingConfig(Strict):
    target: str
    source: str | None = None
    constant: Any = None
    expression: str | None = None
    default: Any = None
    apply: Apply = Apply.ALWAYS
    match: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for alias, name in (("target_attribute", "target"), ("source_attribute", "source")):
                if alias in data and name not in data:
                    data[name] = data.pop(alias)
        return data

    @model_validator(mode="after")
    def _one_source(self) -> MappingConfig:
        given = [
            name for name in ("source", "constant", "expression") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of source, constant or expression"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class GroupsConfig(Strict):
    """Group provisioning (docs/groups.md)."""

    provision: Flag = False
    nested: Literal["flatten", "skip"] | None = None  # default: flatten with nested_groups
    mappings: list[MappingConfig] = Field(default_factory=list)


class ActionsConfig(Strict):
    create: Flag = True
    update: Flag = True
    delete: Flag = True


class DeletionThresholdConfig(Strict):
    count: int | None = Field(default=500, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)
    # How far back the job's own deletions count against the threshold (rolling); None: 24 h,
    # or the schedule's interval when that is longer.
    window: timedelta | None = None

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if value is None:
            return None
        window = parse_duration(value)
        if window <= timedelta(0):
            raise ValueError("must be a positive duration (e.g. 24h)")
        return window

    def window_for(self, interval: timedelta) -> timedelta:
        """The window in force: the configured one, else 24 h or the interval if longer."""
        return self.window if self.window is not None else max(DEFAULT_DELETION_WINDOW, interval)


class JobConfig(Strict):
    source: str
    target: str
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    scope: ScopeConfig = Field(default_factory=ScopeConfig)
    groups: GroupsConfig = Field(default_factory=GroupsConfig)
    user_type: Literal["Member", "Guest"] = "Member"
    mappings: list[MappingConfig] = Field(default_factory=list)
    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    deprovision: Deprovision = Deprovision.SOFT_DELETE
    skip_out_of_scope_deletions: Flag = False
    deletion_threshold: DeletionThresholdConfig = Field(default_factory=DeletionThresholdConfig)
    invite_redirect_url: str = "https://myapplications.microsoft.com"
    # Under Celery: pages of a cycle exported by other workers, this many at a time (0: none).
    fan_out: int = Field(default=0, ge=0, le=64)


ROLE_READ = "TenantSync.Read"
ROLE_OPERATE = "TenantSync.Operate"
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class StaticTokenConfig(Strict):
    """A bearer token for automation; the config holds only its SHA-256, never the token."""

    name: str = Field(min_length=1, max_length=100)
    sha256: str
    role: Literal["TenantSync.Read", "TenantSync.Operate"]

    @field_validator("sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not SHA256_RE.match(value):
            raise ValueError(
                "must be the token's SHA-256 as 64 hex digits "
                '(e.g. printf %s "$TOKEN" | sha256sum)'
            )
        return value.lower()


class ApiAuthConfig(Strict):
    """Who may call `serve`: Entra ID tokens of one tenant, static tokens, or both."""

    tenant: str | None = None  # a tenant of `tenants:` whose Entra tokens are accepted
    audience: str | None = None  # the API's app id URI (what tokens for it are asked with)
    # The API's application (client) id: Entra's v2.0 access tokens name it as their audience
    # where v1.0 ones name the app id URI; give it and both are accepted.
    app_id: str | None = None
    client_id: str | None = None  # the console's app registration, for sign-in
    client_secret: SecretStr | None = None
    tokens: list[StaticTokenConfig] = Field(default_factory=list)
    # How far this host's clock may be from Entra's when a token's expiry is checked.
    clock_skew: timedelta = timedelta(seconds=60)

    @field_validator("clock_skew", mode="before")
    @classmethod
    def _skew(cls, value: Any) -> Any:
        skew = parse_duration(value)
        if skew > timedelta(minutes=10):
            raise ValueError("must be at most 10m")
        return skew

    @field_validator("client_id", "app_id")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        if value is not None and not GUID_RE.match(value):
            raise ValueError(f"must be a GUID, got {value!r}")
        return None if value is None else value.lower()

    @property
    def audiences(self) -> list[str]:
        return [a for a in (self.audience, self.app_id) if a]

    @model_validator(mode="after")
    def _consistent(self) -> ApiAuthConfig:
        if bool(self.tenant) != bool(self.audience):
            raise ValueError("tenant and audience go together (both or neither)")
        if self.client_id and not self.tenant:
            raise ValueError("client_id (console sign-in with Entra ID) needs tenant and audience")
        names = [t.name for t in self.tokens]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"token names must be unique: {', '.join(doubled)}")
        digests = [t.sha256 for t in self.tokens]
        if len(set(digests)) != len(digests):
            raise ValueError("two tokens have the same sha256")
        return self

    @property
    def entra(self) -> bool:
        return bool(self.tenant and self.audience)

    @property
    def configured(self) -> bool:
        """At least one way in: `serve` refuses to start without."""
        return self.entra or bool(self.tokens)


class ApiConfig(Strict):
    """The operator service (`tenant-sync serve`): console, HTTP API, /healthz."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None  # where people reach it, for sign-in redirects
    session_ttl: timedelta = timedelta(hours=8)  # a console sign-in lasts this long
    auth: ApiAuthConfig = Field(default_factory=ApiAuthConfig)

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"must be an https:// (or http:// for loopback) URL, got {value!r}")
        return None if value is None else value.rstrip("/")

    @field_validator("session_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        ttl = parse_duration(value)
        if ttl < timedelta(minutes=5):
            raise ValueError("must be at least 5m")
        return ttl


# notifications (docs/notifications.md) ----------------------------------------------------------
def _event_kind(value: Any) -> Any:
    if isinstance(value, str) and value in EventKind.__members__.values():
        return EventKind(value)
    if isinstance(value, EventKind):
        return value
    choices = ", ".join(e.value for e in EventKind)
    raise ValueError(f"unknown event {value!r} (one of: {choices})")


NotificationEvent = Annotated[EventKind, BeforeValidator(_event_kind)]
SMTP_SCHEMES = {"smtp": ("none", 25), "smtp+starttls": ("starttls", 587), "smtps": ("ssl", 465)}
ADDRESS_RE = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+$")


class NotifierConfig(Strict):
    """What every notifier has: the events it wants (default: all) and, optionally, the jobs."""

    events: list[NotificationEvent] = Field(default_factory=lambda: list(ALL_EVENTS))
    jobs: list[str] | None = None  # only these jobs' events (default: every job)
    ca_bundle: Path | None = None  # a CA file to trust for the receiver's TLS (default: system)

    @field_validator("events")
    @classmethod
    def _some_events(cls, values: list[EventKind]) -> list[EventKind]:
        if not values:
            raise ValueError("needs at least one event (or leave it out for all of them)")
        return list(dict.fromkeys(values))


def _http_url(value: Any) -> Any:
    # Never quote the value: a webhook's URL is its credential.
    if isinstance(value, str):
        if ENV_RE.fullmatch(value.strip()):
            return value  # an unset variable, reported as such
        parts = urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// or http:// URL")
        return value.strip()
    return value


class WebhookNotification(NotifierConfig):
    """POSTs each event as JSON to `url`."""

    kind: Literal["webhook"]
    url: SecretStr

    _url = field_validator("url", mode="before")(_http_url)

    @property
    def host(self) -> str:
        return urlsplit(self.url.get_secret_value()).hostname or "?"


class TeamsNotification(WebhookNotification):
    """POSTs each event as an Adaptive Card to a Teams incoming (or Workflows) webhook."""

    kind: Literal["teams"]  # type: ignore[assignment]


class EmailNotification(NotifierConfig):
    """Mails each event through an SMTP relay: smtp:// (plain), smtp+starttls:// or smtps://."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    kind: Literal["email"]
    smtp_url: str
    sender: str = Field(alias="from")
    to: list[str]
    user: str | None = None
    password: SecretStr | None = None

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in SMTP_SCHEMES:
            raise ValueError(
                "must be an smtp://, smtp+starttls:// or smtps:// URL "
                "(e.g. smtp+starttls://relay.contoso.com:587)"
            )
        if not parts.hostname:
            raise ValueError("needs a host (e.g. smtp://relay.contoso.com:25)")
        if parts.username or parts.password:
            raise ValueError("must not hold a user or password: give them as user and password")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value.strip()

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not ADDRESS_RE.match(value.strip()):
            raise ValueError(f"must be a mail address, got {value!r}")
        return value.strip()

    @field_validator("to")
    @classmethod
    def _to(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("needs at least one address")
        bad = [v for v in values if not ADDRESS_RE.match(v.strip())]
        if bad:
            raise ValueError(f"must be mail addresses: {', '.join(map(repr, bad))}")
        return [v.strip() for v in values]

    @model_validator(mode="after")
    def _login(self) -> EmailNotification:
        has_password = self.password is not None and self.password.get_secret_value()
        if bool(self.user) != bool(has_password):
            raise ValueError("give both user and password, or neither")
        if self.user and self.security == "none":
            raise ValueError(
                "user and password need smtp+starttls:// or smtps:// (never sent in clear)"
            )
        return self

    @property
    def security(self) -> str:
        return SMTP_SCHEMES[urlsplit(self.smtp_url).scheme][0]

    @property
    def host(self) -> str:
        return urlsplit(self.smtp_url).hostname or "?"

    @property
    def port(self) -> int:
        parts = urlsplit(self.smtp_url)
        return parts.port or SMTP_SCHEMES[parts.scheme][1]


NotificationConfig = Annotated[
    WebhookNotification | TeamsNotification | EmailNotification, Field(discriminator="kind")
]
NOTIFIER_KINDS: dict[str, type[NotifierConfig]] = {
    "webhook": WebhookNotification,
    "teams": TeamsNotification,
    "email": EmailNotification,
}


def notifier_label(index: int, notifier: NotifierConfig) -> str:
    """How logs and `validate` name a notifier: kind, position and host, never its secret."""
    host = getattr(notifier, "host", "?")
    if isinstance(notifier, EmailNotification):
        host = f"{notifier.host}:{notifier.port}"
    return f"{getattr(notifier, 'kind', '?')}#{index} ({host})"


class RawConfig(Strict):
    state: StateConfig = Field(default_factory=StateConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tenants: dict[str, TenantConfig]
    jobs: dict[str, JobConfig] = Field(default_factory=dict)
    api: ApiConfig = Field(default_factory=ApiConfig)
    notifications: list[NotificationConfig] = Field(default_factory=list)


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
    (`spec`) and the runtime part (`runtime`). Nothing outside this module reads `raw`."""

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


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


class ConfigLoader(yaml.SafeLoader):
    """YAML as people mean it in a config file: only JSON-like scalars are anything but text.

    PyYAML follows YAML 1.1, where `NO` (Norway), `yes`, `on` and `off` are booleans, `0047` is
    an octal number, `1:30` is 90, `0x1F` is 31 and `2024-01-01` is a date. Here the only
    scalars that are not strings are `true`/`false`, `null`/`~` (and an empty value), and
    integers and floats written in decimal (`42`, `-7`, `1.5`, `2e3`), as in JSON; everything
    else stays the string that was written, so an id such as `0047` keeps its zeros and a
    date stays the text Graph is sent.
    """


_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_DROPPED_TAGS = (_BOOL_TAG, _INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG)
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ConfigLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
ConfigLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """Parse configuration YAML with `ConfigLoader` (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


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


TENANT_FILES = ("certificate_path", "ca_bundle")


def _missing_files(name: Any, body: Any) -> list[str]:
    """Problems of the files a tenant names (`certificate_path`, `ca_bundle`) on this machine:
    a deployment problem, like an unset variable, that stops only this tenant's jobs from
    talking to Graph (`validate` lists it). A relative path is from the current directory."""
    found = (_missing_file(body, setting, f"tenants.{name}") for setting in TENANT_FILES)
    return [problem for problem in found if problem is not None]


def _missing_file(body: Any, setting: str, where: str) -> str | None:
    """The problem of the file `body[setting]` names, if it is missing or unreadable here."""
    value = body.get(setting) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        return None  # unset, or not text (reported by the part's own validation)
    if not Path(value).is_file():
        return f"{where}.{setting}: no such file '{value}'"
    if not os.access(value, os.R_OK):
        return f"{where}.{setting}: cannot read '{value}'"
    return None


def _validate(model: type[M], data: Any, loc: tuple[Any, ...], problems: list[str]) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_format_validation_error(exc, loc))
        return None


def _interpolate(
    value: Any, env: Mapping[str, str], loc: tuple[Any, ...], problems: list[str]
) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, fallback = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if fallback is not None:
                return fallback
            problems.append(f"{_path(loc)}: environment variable {name} is not set")
            return match.group(0)  # keep the placeholder so later checks do not pile up

        return ENV_RE.sub(replace, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*loc, i), problems) for i, v in enumerate(value)]
    return value


def _besides(found: list[str], unset: list[str]) -> list[str]:
    """`found` without the problems of the settings whose variable is unset (their placeholder
    fails their checks, which says nothing more)."""
    paths = {p.partition(": ")[0] for p in unset}
    return [p for p in found if p.partition(": ")[0] not in paths]


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "config"


def _format_validation_error(exc: ValidationError, prefix: tuple[Any, ...]) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = prefix + tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        elif error["type"] == "missing":
            message = "required setting is missing"
        elif error["type"] == "bool_type":
            # Only YAML's true and false are booleans here (yes, on, 1 stay what they are).
            message = f"{error['input']!r} is not a boolean: write true or false"
        problems.append(f"{_path(loc)}: {message}")
    return problems


def _check_deletion_window(
    job: JobConfig, where: str, log_retention: timedelta, problems: list[str]
) -> None:
    window = job.deletion_threshold.window
    if window is None:
        return
    interval = job.schedule.interval
    if window < interval:
        problems.append(
            f"{where}.deletion_threshold.window: must be at least the schedule's interval "
            f"({format_duration(interval)}), or deletions of one cycle could slip out of it"
        )
    if window > log_retention:
        problems.append(
            f"{where}.deletion_threshold.window: must be at most state.log_retention "
            f"({format_duration(log_retention)}): the window is counted from the provisioning log"
        )


def _build_jobs(
    raw_jobs: Mapping[str, JobConfig],
    tenant_names: set[str],
    problems: list[str],
    log_retention: timedelta = timedelta(days=30),
) -> dict[str, Job]:
    types, writable = _attribute_types()
    jobs: dict[str, Job] = {}
    for name, job in raw_jobs.items():
        where = f"jobs.{name}"
        _check_tenant_refs(name, job.source, job.target, tenant_names, problems)
        _check_deletion_window(job, where, log_retention, problems)
        if job.scope.users == "assigned" and not (job.scope.user_ids or job.scope.groups):
            problems.append(f"{where}.scope: users: assigned needs user_ids or groups")
        scope = _build_scope(job, where, types, problems)
        mappings = _build_mappings(job, where, types, writable, problems)
        groups = build_group_provisioning(
            provision=job.groups.provision,
            nested=job.groups.nested,
            mappings=job.groups.mappings,
            scope_groups=job.scope.groups,
            nested_groups=job.scope.nested_groups,
            where=where,
            problems=problems,
        )
        if scope is not None and mappings is not None and groups is not None:
            jobs[name] = Job(name, job, scope, mappings, groups)
    return jobs


def _some(names: list[str], shown: int = 4) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _override_only(body: Any) -> bool:
    """A `jobs:` entry without source and target: it can only override an organisation's job."""
    return isinstance(body, dict) and "source" not in body and "target" not in body


def _build_generated_jobs(
    organization: Organization,
    bodies: Mapping[str, Any],
    explicit: Any,
    tenant_names: set[str],
    problems: list[str],
    log_retention: timedelta,
) -> dict[str, Job]:
    """An organisation's jobs, checked like hand-written ones; each problem is reported where
    its value was written: the explicit `jobs.NAME` entry, `organization.job_defaults` (once, when
    every generated job has it), or the generated job itself."""
    defaults = organization.job_defaults
    explicit = explicit if isinstance(explicit, dict) else {}
    jobs: dict[str, Job] = {}
    # A problem placed at `job_defaults`, with the jobs that have it, in the order first met,
    # and the jobs that take its value from `job_defaults` unchanged.
    shared: dict[str, list[str]] = {}
    inheriting: dict[str, set[str]] = {}
    ordered: list[str] = []
    for name, body in bodies.items():
        found: list[str] = []
        if not JOB_NAME_RE.match(name):
            found.append(
                f"jobs.{name}: a job name is 1 to 100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (rename the tenants it is made of)"
            )
        elif (job := _validate(JobConfig, body, ("jobs", name), found)) is not None:
            built = _build_jobs({name: job}, tenant_names, found, log_retention)
            for job_built in built.values():
                job_built.origin = SECTION
            jobs |= built
        elif isinstance(body, dict):
            _check_parts_of_invalid_job(name, body, found)
        override = explicit.get(name)
        for problem in found:
            located = problem  # an explicit entry that is not a mapping: named as written
            if override is None or isinstance(override, dict):
                located = locate_problem(problem, name, defaults, override)
            if located.startswith(DEFAULTS_PREFIX):
                shared.setdefault(located, []).append(name)
                if located not in inheriting:
                    inheriting[located] = {
                        other
                        for other in bodies
                        if isinstance(explicit.get(other), dict | None)
                        and inherits_value(
                            problem.replace(f"jobs.{name}", f"jobs.{other}", 1),
                            other,
                            defaults,
                            explicit.get(other),
                        )
                    }
            if located not in ordered:
                ordered.append(located)
    for located in ordered:
        having = shared.get(located)
        if (
            having is None
            or len(having) == len(bodies)
            or (inheriting[located] and inheriting[located] <= set(having))
        ):
            if located not in problems:
                problems.append(located)
            continue
        # Only some jobs have it, though others take the same value from `job_defaults` (or it
        # is about a section both sides write): the others set what it needs themselves, so
        # the problem is each of these merged jobs' (docs/organizations.md), and naming them
        # is what lets the operator find them. A bad value every job that takes it has (the
        # others override it) stays one line at `job_defaults` (above).
        rest = located[len(DEFAULTS_PREFIX) :]
        problems.extend(f"jobs.{name} (from {SECTION}){rest}" for name in having)
    return jobs


def _check_tenant_refs(
    name: str, source: Any, target: Any, tenant_names: set[str], problems: list[str]
) -> None:
    known = ", ".join(sorted(tenant_names)) or "none"
    for role, tenant in (("source", source), ("target", target)):
        if isinstance(tenant, str) and tenant not in tenant_names:
            problems.append(f"jobs.{name}.{role}: unknown tenant {tenant!r} (known: {known})")
    if isinstance(source, str) and source == target:
        problems.append(f"jobs.{name}.target: must differ from the source tenant")


def _build_scope(
    job: JobConfig, where: str, types: Mapping[str, str], problems: list[str]
) -> ScopeSpec | None:
    groups: list[tuple[Clause, ...]] = []
    ok = True
    for gi, group in enumerate(job.scope.filters):
        clauses = []
        if not group:
            problems.append(
                f"{where}.scope.filters[{gi}]: a clause group needs at least one clause"
            )
            ok = False
        for ci, clause in enumerate(group):
            built = _clause(f"{where}.scope.filters[{gi}][{ci}]", clause, types, problems)
            if built is None:
                ok = False
            else:
                clauses.append(built)
        groups.append(tuple(clauses))
    if not ok:
        return None
    return ScopeSpec(
        assigned_only=job.scope.users == "assigned",
        user_ids=frozenset(job.scope.user_ids),
        group_ids=tuple(job.scope.groups),
        nested_groups=job.scope.nested_groups,
        filters=tuple(groups),
    )


def _clause(
    at: str, clause: ClauseConfig, types: Mapping[str, str], problems: list[str]
) -> Clause | None:
    attribute = ext.canonical_name(clause.attribute)
    if not _known(attribute, types):
        problems.append(
            f"{at}.attribute: {_unknown(clause.attribute, attribute, 'a user property')}"
        )
        return None
    # A directory extension's type is the app's to define: any scalar value fits.
    edm = types.get(attribute, "Edm.Untyped")
    if clause.operator not in VALUELESS_OPERATORS and clause.value is not None:
        listed = clause.operator in (Operator.IS_IN, Operator.IS_NOT_IN)
        values = clause.value if listed and isinstance(clause.value, list) else [clause.value]
        for value in values:
            misfit = value_misfit(value, edm, attribute)
            if misfit:
                problems.append(f"{at}.value: {misfit}")
                return None
    try:
        return Clause(attribute, clause.operator, clause.value)
    except ScopeError as exc:
        problems.append(f"{at}: {exc}")
        return None


_NUMERIC_EDM = frozenset({"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Decimal"})


def value_misfit(value: Any, edm: str, attribute: str) -> str | None:
    """Why a configured value does not fit the attribute's Graph type, or None if it does.

    Values are compared as Entra does (numbers as their text), so a number fits a string
    attribute; a boolean fits only a boolean one, and a number attribute needs a number.
    """
    if edm.startswith("Collection("):
        edm = edm.removeprefix("Collection(").removesuffix(")")
        items = value if isinstance(value, list) else [value]
        return next((m for v in items if (m := value_misfit(v, edm, attribute))), None)
    if isinstance(value, list | dict):
        kind = "a list" if isinstance(value, list) else "a mapping"
        return f"{kind} does not fit {attribute} ({edm}): give one value"
    if edm == "Edm.Untyped" and isinstance(value, bool):
        return None
    if not isinstance(value, str | int | float) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        # Only JSON's scalars reach Graph and the log (an explicit tag such as !!timestamp or
        # !!binary makes something else): the text is what is meant.
        return (
            f"{value!r} ({type(value).__name__}) does not fit {attribute} ({edm}): "
            "quote the value to give it as text"
        )
    if edm == "Edm.Boolean":
        if isinstance(value, bool) or (
            isinstance(value, str) and value.strip().lower() in ("true", "false")
        ):
            return None
        return f"{value!r} does not fit {attribute} (Edm.Boolean): use true or false"
    if isinstance(value, bool):
        text = "true" if value else "false"
        return (
            f"{text} is a boolean, but {attribute} is {edm}: quote it ('{text}') if the text "
            "is meant"
        )
    if edm in _NUMERIC_EDM:
        if isinstance(value, int | float):
            return None
        try:
            float(str(value))
        except ValueError:
            return f"{value!r} does not fit {attribute} ({edm}): give a number"
    return None


def _build_mappings(
    job: JobConfig,
    where: str,
    types: Mapping[str, str],
    writable: Mapping[str, str],
    problems: list[str],
) -> list[MappingSpec] | None:
    if not job.mappings or all(_is_manager_reference(m) for m in job.mappings):
        # The manager reference alone adds to the default set (docs/manager.md).
        return default_mappings(job.user_type, types)
    specs: list[MappingSpec] = []
    seen: dict[str, int] = {}
    matches: dict[int, int] = {}
    ok = True
    for index, mapping in enumerate(job.mappings):
        at = f"{where}.mappings[{index}]"
        target = ext.canonical_name(mapping.target)
        if target in seen:
            problems.append(
                f"{at}.target: {mapping.target!r} is already mapped by mappings[{seen[target]}]"
            )
            ok = False
        seen.setdefault(target, index)
        if mapping.match is not None:
            if mapping.match in matches:
                problems.append(
                    f"{at}.match: precedence {mapping.match} is already used by "
                    f"mappings[{matches[mapping.match]}]"
                )
                ok = False
            matches.setdefault(mapping.match, index)
        if _is_manager_reference(mapping):
            continue  # not an attribute: JobSpec.manager
        spec = _mapping(at, mapping, types, writable, problems)
        if spec is None:
            ok = False
        else:
            specs.append(spec)
    return specs if ok else None


def _mapping(
    at: str,
    mapping: MappingConfig,
    types: Mapping[str, str],
    writable: Mapping[str, str],
    problems: list[str],
) -> MappingSpec | None:
    """One mapping's own checks (target, source, expression), and its spec if they pass."""
    target = ext.canonical_name(mapping.target)
    if MANAGER in (target, mapping.source):
        problems.append(_manager_misuse(at, mapping))
        return None
    if not _known(target, types):
        problems.append(f"{at}.target: {_unknown(mapping.target, target, _PROPERTY)}")
        return None
    if target not in writable and not ext.is_directory_extension(target):
        problems.append(f"{at}.target: {target!r} is read-only in the target tenant")
        return None
    if mapping.match is not None and ext.is_extension_attribute(target):
        problems.append(
            f"{at}.match: {mapping.target!r} cannot be a matching attribute (Graph filters on "
            "onPremisesExtensionAttributes only as an advanced query); match on a directory "
            "extension or another attribute"
        )
        return None
    target_type = types.get(target, "Edm.Untyped")
    edm = target_type.removeprefix("Collection(").removesuffix(")")
    if not edm.startswith("Edm."):
        problems.append(
            f"{at}.target: {target!r} has the complex type {types[target]}; "
            "only properties of simple types (and lists of them) can be mapped"
        )
        return None
    source = None if mapping.source is None else ext.canonical_name(mapping.source)
    if source is not None and not _known(source, types):
        problems.append(f"{at}.source: {_unknown(mapping.source or '', source, _PROPERTY)}")
        return None
    for name, value in (("constant", mapping.constant), ("default", mapping.default)):
        misfit = None if value is None else value_misfit(value, target_type, target)
        if misfit:
            problems.append(f"{at}.{name}: {misfit}")
            return None
    expression = None
    if mapping.expression is not None:
        # The expression engine loads only for a config that has expressions (start-up time).
        from worker.domain.expressions import ExpressionError, parse

        try:
            expression = parse(ext.canonical_expression(mapping.expression))
        except ExpressionError as exc:
            problems.append(f"{at}.expression: {exc}")
            return None
        if mapping.expression.lstrip().startswith("SelectUniqueValue") and (
            mapping.apply is not Apply.ON_CREATE
        ):
            problems.append(
                f"{at}.apply: SelectUniqueValue needs apply: on_create "
                "(a unique value is chosen once, when the user is created)"
            )
            return None
        if MANAGER in expression.source_attributes:
            problems.append(
                f"{at}.expression: manager is a reference to another user, not an attribute: "
                "an expression cannot read it; sync it with {target: manager, source: manager}"
            )
            return None
        unknown = sorted(a for a in expression.source_attributes if not _known(a, types))
        if unknown:
            problems.append(
                f"{at}.expression: {_unknown(', '.join(unknown), unknown[0], _PROPERTY)}"
            )
            return None
    return MappingSpec(
        target=target,
        source=source,
        constant=mapping.constant,
        expression=expression,
        expression_text=mapping.expression or "",
        default=mapping.default,
        apply=mapping.apply,
        match=mapping.match,
        target_type=target_type,
    )


def _attribute_types() -> tuple[dict[str, str], dict[str, str]]:
    """What a filter or mapping may name, and what a mapping may write: the user's properties
    plus the fifteen on-premises extension attributes by their own names
    (docs/extension-attributes.md; directory extensions are checked by their name pattern)."""
    extension = entity_properties(ext.CONTAINER)
    return {**user_property_types(), **extension}, {**writable_user_properties(), **extension}


_PROPERTY = "a property of microsoft.graph.user"


def _known(name: str, types: Mapping[str, str]) -> bool:
    """A name a filter or mapping may use (the extension attributes' container is not: its
    fifteen attributes are, by name)."""
    return (name in types and name != ext.CONTAINER) or ext.is_directory_extension(name)


def _unknown(written: str, name: str, what: str) -> str:
    """Why `written` (engine name `name`) is refused, with the valid forms when it tried to be
    an extension attribute."""
    quoted = ", ".join(repr(part) for part in written.split(", "))
    if name == ext.CONTAINER:
        return f"{quoted} holds fifteen attributes: name one ({ext.VALID_FORMS})"
    if ext.looks_like_extension(name):
        return f"{quoted} is not {what} (valid forms: {ext.VALID_FORMS})"
    return f"{quoted} is not {what}"


def _is_manager_reference(mapping: MappingConfig) -> bool:
    """`{target: manager, source: manager}` and nothing else: the manager reference."""
    return (
        mapping.target == MANAGER
        and mapping.source == MANAGER
        and mapping.default is None
        and mapping.match is None
        and mapping.apply is Apply.ALWAYS
    )


def _manager_misuse(at: str, mapping: MappingConfig) -> str:
    """Why a mapping naming `manager` other than as the reference is refused."""
    form = "map it only as {target: manager, source: manager}"
    if mapping.target != MANAGER:
        return (
            f"{at}.source: manager is a reference to another user, not an attribute: it cannot "
            f"be mapped to {mapping.target!r}; {form}"
        )
    return (
        f"{at}.target: manager is a reference to another user (its linked target user), not an "
        f"attribute: {form}, without expression, constant, default, match or apply"
    )


def _check_parts_of_invalid_job(name: str, body: Mapping[str, Any], problems: list[str]) -> None:
    """The clause and mapping checks for a job whose schema failed elsewhere.

    Each clause and mapping that is well-formed on its own still gets its deeper checks (a bad
    regex, an unknown attribute, an expression that does not parse), so one mistake does not
    hide the others; the malformed ones were reported by the schema already.
    """
    types, writable = _attribute_types()
    where = f"jobs.{name}"
    scope = body.get("scope")
    filters = scope.get("filters") if isinstance(scope, dict) else None
    for gi, group in enumerate(filters if isinstance(filters, list) else []):
        for ci, raw_clause in enumerate(group if isinstance(group, list) else []):
            clause = _quietly(ClauseConfig, raw_clause)
            if clause is not None:
                _clause(f"{where}.scope.filters[{gi}][{ci}]", clause, types, problems)
    mappings = body.get("mappings")
    for index, raw_mapping in enumerate(mappings if isinstance(mappings, list) else []):
        mapping = _quietly(MappingConfig, raw_mapping)
        if mapping is not None and not _is_manager_reference(mapping):
            _mapping(f"{where}.mappings[{index}]", mapping, types, writable, problems)


def _quietly(model: type[M], data: Any) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


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
