"""The pydantic models of the configuration file (docs/contracts.md), one per section.

`state`, `logging`, `metrics`, `tenants` (and their `limits`), `jobs` (schedule, scope and its
filter clauses, mappings, `groups`, actions, deletion threshold), `api` (and its `auth`) and
`notifications` (webhook, Teams, email), with the value types they share: durations, on/off
flags, GUIDs, the API's roles. Each model checks its own values; what refers to what (a job's
tenants, a mapping's attributes) is checked when the configuration is built (`worker.config`,
`worker.config_jobs`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    field_validator,
    model_validator,
)

from worker.domain.event_kinds import ALL_EVENTS, EventKind
from worker.domain.health import DEFAULT_DELETION_WINDOW
from worker.domain.job import Deprovision
from worker.domain.mapping import Apply
from worker.domain.scope import Operator

GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DURATION_RE = re.compile(
    r"^\s*(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$"
)
MIN_INTERVAL = timedelta(seconds=10)
# Database URLs that surely pass the checks below (a SQLite file without options; PostgreSQL
# through psycopg with at most one "@", ending the user part, and a numeric port): accepted
# without importing SQLAlchemy, which would double `validate`'s start-up. Any other URL is
# checked by SQLAlchemy itself, so its messages are unchanged.
PLAIN_DATABASE_URL_RE = re.compile(
    r"sqlite:///(?!:memory:\Z|file::memory:)[^?@]+"
    r"|postgresql(?:\+psycopg)?://"
    r"(?:[^:/@?]*(?::[^@/?]*)?@)?[\w.-]*(?::[0-9]+)?(?:/[^?@]*)?(?:\?[^@]*)?"
)


def _flag_text(value: Any) -> Any:
    """`true`/`false` written as text (as an interpolated `${VAR}` always is) are booleans;
    anything else is left to StrictBool, which refuses `yes`, `on`, `1` and the like."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


# An on/off setting: true or false, nothing YAML 1.1 or pydantic's lax mode would guess at.
Flag = Annotated[StrictBool, BeforeValidator(_flag_text)]


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
