"""How the configuration's text becomes data, and how its problems are named.

The file's path (`--config`, `TENANT_SYNC_CONFIG` or the default), the YAML dialect
(`ConfigLoader`: only JSON-like scalars are anything but text), `${ENV_VAR}` interpolation,
the files a setting names (a tenant's certificate, a CA bundle), and `ConfigError` with the
path in the file of each problem (`jobs.a-to-b.target: ...`), pydantic's errors included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from worker.config_models import ENV_RE

DEFAULT_CONFIG_PATH = Path("config/tenant-sync.yaml")
CONFIG_ENV = "TENANT_SYNC_CONFIG"


M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` lists every reason with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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


def _quietly(model: type[M], data: Any) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
