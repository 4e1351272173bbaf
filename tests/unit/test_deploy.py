"""Offline checks of the deployment files under deploy/ (and the root .dockerignore).

Nothing here builds an image or talks to a cluster: the files are parsed and validated against
the official schemas that PyPI packages ship (Kubernetes' through kubernetes-validate, the Compose
Specification's through check-jsonschema), then checked for what matters to operators: non-root
everywhere, exactly one beat, health checks on the workers and the operator service, the operator
service on loopback or behind a Service, secrets only from Secrets or env files, pinned images, and
the commands (parsed by the real tenant-sync and celery CLIs), ports, paths, uid and variable names
agreeing across the Dockerfile, compose, Kubernetes, systemd, deploy/README.md and the package.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import posixpath
import re
import shlex
import socket
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
import typer
import typer.core
import typer.exceptions
import yaml
from celery import Celery
from celery.bin.celery import celery as celery_cli
from celery.worker.control import Panel
from kubernetes_validate.utils import all_versions, latest_version

from worker.config import ENV_RE, Config, build_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"

# What every deployment agrees on: the image's user, paths and commands.
UID = 10001
CONFIG_PATH = "/etc/tenant-sync/tenant-sync.yaml"
CONFIG_DIR = str(PurePosixPath(CONFIG_PATH).parent)
STATE_DIR = "/var/lib/tenant-sync"
VENV = "/opt/tenant-sync"
WORKER_CMD = ["celery", "-A", "worker.celery_app", "worker", "--loglevel", "INFO"]
BEAT_CMD = ["celery", "-A", "worker.celery_app", "beat", "--loglevel", "INFO"]
MIGRATE_CMD = ["tenant-sync", "db", "upgrade"]
# The operator service in a container or pod: every interface, the port the image EXPOSEs.
SERVE_PORT = 8080
SERVE_CMD = ["tenant-sync", "serve", "--host", "0.0.0.0", "--port", str(SERVE_PORT)]
HEALTHZ = "/healthz"
PING = ["celery", "-A", "worker.celery_app", "inspect", "ping"]

# The oldest and the newest Kubernetes versions whose schemas kubernetes-validate bundles.
K8S_VERSIONS = (all_versions()[0], latest_version())
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|_KEY$", re.IGNORECASE)
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


# --- loading -------------------------------------------------------------------------------------
def _yaml_files() -> list[Path]:
    files = [
        p
        for p in DEPLOY.rglob("*")
        if p.is_file() and p.name.endswith((".yaml", ".yml", ".yaml.example"))
    ]
    return sorted(files)


@cache
def _docs(path: Path) -> tuple[Any, ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


def _k8s_manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in _docs(path)
    ]


def _k8s(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in _k8s_manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _workloads() -> list[dict[str, Any]]:
    return [d for _, d in _k8s_manifests() if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


@cache
def _compose() -> dict[str, Any]:
    (doc,) = _docs(DEPLOY / "docker-compose.yml")
    return doc


def _compose_tenant_sync_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _compose()["services"].items()
        if "TENANT_SYNC_IMAGE" in service["image"] or service["image"].startswith("tenant-sync:")
    }


@cache
def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _env_example() -> tuple[dict[str, str], set[str]]:
    """The variables set in tenant-sync.env.example, and those only shown commented out."""
    values: dict[str, str] = {}
    optional: set[str] = set()
    for line in (DEPLOY / "tenant-sync.env.example").read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line.strip()):
            values[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"#\s*([A-Z_][A-Z0-9_]*)=\S*", line.strip()):
            optional.add(match.group(1))
    return values, optional


def _unit(name: str) -> configparser.ConfigParser:
    # systemd allows repeated keys; the checks below only read keys given once.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keep the keys' case (systemd's are case-sensitive)
    parser.read_string((SYSTEMD / name).read_text())
    return parser


# --- the example configs -------------------------------------------------------------------------
def _config_sources() -> dict[str, Any]:
    """Every example config shipped for a deployment, parsed, by where it comes from."""
    configmap = _k8s("ConfigMap", "tenant-sync-config")
    return {
        "config/tenant-sync.example.yaml (systemd)": yaml.safe_load(
            (ROOT / "config" / "tenant-sync.example.yaml").read_text()
        ),
        "deploy/config/tenant-sync.yaml.example (compose)": yaml.safe_load(
            (DEPLOY / "config" / "tenant-sync.yaml.example").read_text()
        ),
        "deploy/kubernetes/configmap.yaml": yaml.safe_load(
            configmap["data"][PurePosixPath(CONFIG_PATH).name]
        ),
    }


def _env_refs(value: Any) -> set[str]:
    if isinstance(value, str):
        return {m.group(1) for m in ENV_RE.finditer(value)}
    if isinstance(value, dict):
        return set().union(*(_env_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_env_refs(v) for v in value))
    return set()


def _certificate_paths(config: dict[str, Any]) -> list[str]:
    return [
        tenant["certificate_path"]
        for tenant in (config.get("tenants") or {}).values()
        if tenant.get("certificate_path")
    ]


# --- the Dockerfile ------------------------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@cache
def _dockerfile() -> tuple[Stage, ...]:
    logical: list[str] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        # Comments and blank lines are dropped, also inside a continued instruction (as Docker does).
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for text in logical:
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name, instructions=[]))
            continue
        assert stages, f"{keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return tuple(stages)


def _exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"{instruction.keyword} must use the exec (JSON) form"
    return [str(v) for v in value]


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for word in shlex.split(instruction.args):
            key, sep, value = word.partition("=")
            assert sep, f"write ENV as KEY=value: {instruction.args}"
            env[key] = value
    return env


def _flags_and_words(args: str) -> tuple[list[str], list[str]]:
    words = shlex.split(args)
    return [w for w in words if w.startswith("--")], [w for w in words if not w.startswith("--")]


def _shell_command(script: str) -> list[str]:
    """The first simple command of a shell line (up to a redirection or an operator)."""
    words = []
    for word in shlex.split(script):
        if word in (">", ">>", "2>", "||", "&&", "|", ";") or word.startswith(">"):
            break
        words.append(word)
    return words


def _healthcheck_script(args: str) -> str:
    """The shell line a HEALTHCHECK runs (its CMD, in shell form or as `["sh", "-c", ...]`)."""
    _, sep, command = args.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args}"
    if not command.lstrip().startswith("["):
        return command
    words = [str(w) for w in json.loads(command)]
    if words[:2] == ["sh", "-c"]:
        return words[2]
    return shlex.join(words)


def _healthcheck_command(args: str) -> list[str]:
    return _shell_command(_healthcheck_script(args))


# --- .dockerignore -------------------------------------------------------------------------------
def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    # Docker's syntax (Go's filepath.Match plus `**`): `*` and `?` stay within one path element.
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def _dockerignored(path: str) -> bool:
    """Whether a context path stays out: the last matching pattern wins, and a pattern that
    matches a directory matches everything in it (Docker's rules)."""
    parts = path.split("/")
    excluded = False
    for raw in _dockerignore_patterns():
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        regex = _glob_regex(pattern.strip().strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


# --- the commands --------------------------------------------------------------------------------
def _check_command(argv: list[str]) -> dict[str, Any]:
    """Fail unless `argv` is a command the installed package really has, with valid options;
    return its parsed parameters."""
    program = PurePosixPath(argv[0]).name
    if program == "celery":
        return _check_celery(argv[1:])
    if program == "tenant-sync":
        return _check_tenant_sync(argv[1:])
    pytest.fail(f"not a tenant-sync or celery command: {argv}")


def _check_celery(args: list[str]) -> dict[str, Any]:
    import worker.celery_app as celery_app

    assert args[:2] == ["-A", "worker.celery_app"], f"celery must load worker.celery_app: {args}"
    assert any("-A" in p.opts for p in celery_cli.params)
    # `-A worker.celery_app` finds the app through the module's lazy `app`, built by this factory.
    assert callable(celery_app.create_celery)
    assert callable(celery_app.get_app)
    assert args[2] in celery_cli.commands, f"celery has no command {args[2]!r}"
    command = celery_cli.commands[args[2]]
    # Celery's option callbacks read defaults from the app's conf: a bare app (no broker
    # connection, no config file) is enough to parse.
    obj = SimpleNamespace(app=Celery("tenant_sync", set_as_current=False))
    try:
        ctx = command.make_context(args[2], list(args[3:]), obj=obj)
    except click.UsageError as exc:
        pytest.fail(f"celery {' '.join(args)}: {exc}")
    if args[2] == "inspect":
        assert Panel.meta[ctx.params["command"]].type == "inspect"
    return dict(ctx.params)


# Typer 0.29+ builds its commands on a click of its own (typer._click), not on the click package:
# its groups are not click.Groups and its usage errors are TyperExceptions.
_GROUPS = (click.Group, typer.core.TyperGroup)
_USAGE_ERRORS = (click.UsageError, typer.exceptions.TyperException)


def _check_tenant_sync(args: list[str]) -> dict[str, Any]:
    from worker.cli import app

    # The launcher (worker/__main__.py) runs worker.cli's app, whose commands are checked here.
    assert _project()["project"]["scripts"]["tenant-sync"] == "worker.__main__:run"
    command: Any = typer.main.get_command(app)
    words = list(args)
    while isinstance(command, _GROUPS):
        assert words, f"tenant-sync {' '.join(args)}: a subcommand is missing"
        name = words.pop(0)
        assert name in command.commands, f"tenant-sync has no command {' '.join(args)!r}"
        command = command.commands[name]
    assert isinstance(command, (click.Command, typer.core.TyperCommand)), command
    try:
        ctx = command.make_context(command.name or "tenant-sync", words)
    except _USAGE_ERRORS as exc:
        pytest.fail(f"tenant-sync {' '.join(args)}: {exc}")
    return dict(ctx.params)


def _all_commands() -> list[tuple[str, list[str]]]:
    """Every command line the deployment files run, with where it comes from."""
    found: list[tuple[str, list[str]]] = []
    final = _dockerfile()[-1]
    for instruction in final.all("CMD") + final.all("ENTRYPOINT"):
        args = instruction.args
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        found.append((f"Dockerfile {instruction.keyword}", [str(w) for w in words]))
    for instruction in final.all("HEALTHCHECK"):
        found.append(("Dockerfile HEALTHCHECK", _healthcheck_command(instruction.args)))
    for name, service in _compose_tenant_sync_services().items():
        found.append((f"compose {name}", list(service["command"])))
    for workload in _workloads():
        for container in _containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            found.append((where, [*container.get("command", []), *container.get("args", [])]))
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if "exec" in container.get(probe, {}):
                    found.append((f"{where} {probe}", _probe_command(container[probe])))
    for unit in sorted(SYSTEMD.glob("*.service")):
        found.append((unit.name, shlex.split(_unit(unit.name)["Service"]["ExecStart"])))
    for n, argv in enumerate(_readme_commands(DEPLOY / "README.md"), 1):
        found.append((f"README.md command {n}: {shlex.join(argv)}", argv))
    return found


# Where a documented shell line hands the rest to tenant-sync: compose's `exec SERVICE` and
# `run ... SERVICE`, kubectl's `--`. (Elsewhere the word is a namespace or a user name.)
_HANDS_OVER = ("--", "worker", "serve", "beat")


def _readme_commands(path: Path) -> list[list[str]]:
    """Every `tenant-sync ...` that a README's shell blocks run, as argv up to a pipe or a
    redirection: at the start of a line, through a venv's bin/, or after _HANDS_OVER."""
    commands: list[list[str]] = []
    text = path.read_text()
    for block in re.findall(r"^\s*```(?:sh|bash|shell)\n(.*?)^\s*```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line)
            for i, word in enumerate(words):
                program = word == "tenant-sync" or word.endswith("/bin/tenant-sync")
                if program and (i == 0 or word.startswith("/") or words[i - 1] in _HANDS_OVER):
                    commands.append(_shell_command(shlex.join(words[i:])))
                    break
    return commands


def _probe_command(probe: dict[str, Any]) -> list[str]:
    command = list(probe["exec"]["command"])
    if command[:2] == ["sh", "-c"]:
        return _shell_command(command[2])
    return command


# =================================================================================================
# Every YAML file parses; the schemas.
# =================================================================================================
@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_under_deploy_parses(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} holds no document"
    assert all(isinstance(doc, dict) for doc in docs)


def test_the_yaml_files_found_include_every_deployment_flavour() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in _yaml_files()}
    assert {"docker-compose.yml", "kubernetes/kustomization.yaml"} <= names
    assert "config/tenant-sync.yaml.example" in names


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "manifest",
    _k8s_manifests(),
    ids=lambda m: f"{m[0].name}:{m[1]['kind']}/{m[1]['metadata']['name']}",
)
def test_kubernetes_manifests_match_the_official_schemas(
    manifest: tuple[Path, dict[str, Any]], version: str
) -> None:
    _, doc = manifest
    try:
        # strict: an unknown (say, misspelt) field is an error, not silently ignored.
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(
            f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): {path}: {exc.message}"
        )


def test_the_schema_validation_catches_mistakes() -> None:
    """The validator is really strict and offline (a guard against a silently passing setup)."""
    doc = json.loads(json.dumps(_k8s("Deployment", "tenant-sync-beat")))
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "IfNotPresent"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, latest_version(), strict=True)
    doc = json.loads(json.dumps(_k8s("Deployment", "tenant-sync-beat")))
    doc["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, latest_version(), strict=True)


@cache
def _compose_validator() -> jsonschema.protocols.Validator:
    # check-jsonschema vendors the Compose Specification's schema (compose-spec/compose-spec).
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text(encoding="utf-8")
    )
    schema = json.loads(text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_docker_compose_matches_the_compose_specification() -> None:
    errors = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in _compose_validator().iter_errors(_compose())
    ]
    assert not errors, "\n".join(errors)


def test_the_compose_schema_catches_mistakes() -> None:
    doc = json.loads(json.dumps(_compose()))
    doc["services"]["worker"]["depends_on"]["redis"]["condition"] = "service_happy"
    doc["services"]["beat"]["restartt"] = "no"
    assert len(list(_compose_validator().iter_errors(doc))) >= 2


# =================================================================================================
# The Dockerfile and .dockerignore.
# =================================================================================================
def test_dockerfile_builds_a_wheel_on_python_311_slim_and_installs_it_into_a_venv() -> None:
    stages = _dockerfile()
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    assert all(stage.base == "python:3.11-slim" for stage in stages)
    build, final = stages[0], stages[-1]
    assert any("pip wheel" in run.args for run in build.all("RUN"))
    installs = [run.args for run in final.all("RUN") if "pip install" in run.args]
    assert len(installs) == 1
    install = installs[0]
    assert f"-m venv {VENV}" in install
    assert f"{VENV}/bin/pip install" in install
    # Only what the build stage built, nothing fetched at this point.
    assert "--no-index" in install
    assert f"from={build.name}" in install
    assert re.search(r"\btenant-sync\b\s*$", install), "it installs the tenant-sync package"


def test_dockerfile_runs_as_a_fixed_non_root_user_in_a_writable_workdir() -> None:
    final = _dockerfile()[-1]
    users = final.all("USER")
    assert users, "the final stage must switch to a non-root USER"
    user, _, group = users[-1].args.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user.isdigit()
    assert int(user) == UID
    assert group == "" or (group.isdigit() and int(group) == UID)
    after_user = final.instructions[final.instructions.index(users[-1]) :]
    assert not [i for i in after_user if i.keyword == "RUN"], "nothing runs as root after USER"
    runs = " ".join(run.args for run in final.all("RUN"))
    assert f"--uid {UID}" in runs
    assert f"--gid {UID}" in runs
    assert re.search(rf"install -d -o {UID} -g {UID} -m 07[0-7]0 {STATE_DIR}\b", runs)
    (workdir,) = final.all("WORKDIR")
    assert workdir.args == STATE_DIR


def test_dockerfile_has_a_healthcheck_that_pings_this_containers_worker() -> None:
    final = _dockerfile()[-1]
    (healthcheck,) = final.all("HEALTHCHECK")
    assert healthcheck.args.strip().upper() != "NONE"
    command = _healthcheck_command(healthcheck.args)
    assert command[:5] == PING
    params = _check_command(command)
    assert params["destination"] == ["celery@$HOSTNAME"]
    assert params["timeout"] < _seconds(re.search(r"--timeout=(\S+)", healthcheck.args))
    # Docker reads exit status 1 as unhealthy; celery exits 69 when nobody answers.
    assert _healthcheck_script(healthcheck.args).rstrip().endswith("|| exit 1")


def _seconds(match: re.Match[str] | None) -> float:
    assert match, "give the HEALTHCHECK an explicit --timeout"
    return _duration(match.group(1))


def _duration(text: str) -> float:
    parsed = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert parsed, f"not a Docker duration: {text}"
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return float(parsed.group(1)) * units[parsed.group(2)]


def test_dockerfile_default_command_is_the_worker_of_the_installed_package() -> None:
    final = _dockerfile()[-1]
    assert not final.all("ENTRYPOINT"), "the image's commands are plain: no wrapper ENTRYPOINT"
    (cmd,) = final.all("CMD")
    assert _exec_form(cmd) == WORKER_CMD
    env = _env(final)
    # `celery` and `tenant-sync` resolve to the venv the wheel was installed into.
    assert env["PATH"].split(":")[0] == f"{VENV}/bin"
    assert env["TENANT_SYNC_CONFIG"] == CONFIG_PATH


def test_dockerfile_bakes_in_no_config_and_no_secret() -> None:
    for stage in _dockerfile():
        for instruction in stage.all("ADD"):
            _, words = _flags_and_words(instruction.args)
            assert not [w for w in words if re.match(r"^(https?|git)://|^git@", w)], (
                f"ADD of a URL: {instruction.args}"
            )
        for instruction in stage.all("COPY") + stage.all("ADD"):
            flags, words = _flags_and_words(instruction.args)
            if any(f.startswith("--from") for f in flags):
                continue
            for source in words[:-1]:
                clean = posixpath.normpath(source)
                assert clean != ".", f"copy named files, not the whole context: {instruction.args}"
                assert not clean.startswith(("config", "deploy", "tests", ".")), instruction.args
                assert not re.search(r"\.(env|pem|key|crt|p12|pfx)$|tenant-sync\.ya?ml", clean)
                assert (ROOT / clean).exists(), f"COPY of a missing path: {source}"
                assert not _dockerignored(clean.rstrip("/")), f".dockerignore leaves out {source}"
        for instruction in stage.all("ENV") + stage.all("ARG") + stage.all("LABEL"):
            for word in shlex.split(instruction.args):
                name = word.partition("=")[0]
                assert not SECRET_NAME.search(name), f"a secret in the image: {instruction.args}"


def test_the_image_holds_the_worker_but_neither_the_sandbox_nor_the_demo() -> None:
    # Development tools beside the worker: pyproject packages them for development installs, the
    # image builds its wheel from what it copies, and `tenant-sync demo` there says they are absent.
    copied = [
        posixpath.normpath(source).rstrip("/")
        for stage in _dockerfile()
        for instruction in stage.all("COPY") + stage.all("ADD")
        if not any(f.startswith("--from") for f in _flags_and_words(instruction.args)[0])
        for source in _flags_and_words(instruction.args)[1][:-1]
    ]
    assert "worker" in copied
    for tool in ("tenant_sync_sandbox", "tenant_sync_demo"):
        assert (ROOT / tool / "__init__.py").is_file()
        assert not [c for c in copied if c == tool or c.startswith(f"{tool}/")]
        assert _dockerignored(f"{tool}/__init__.py")


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".tenant-sync/state.db",
        ".tenant-sync-demo/redis/appendonly.aof",
        "config/tenant-sync.yaml",
        "deploy/.env",
        "deploy/config/tenant-sync.yaml",
        "deploy/config/contoso.pem",
        ".git/config",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/worker/cli.meta.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "tests/unit/test_deploy.py",
        "tenant_sync.egg-info/PKG-INFO",
        "bench-results/speed.json",
        "worker/__pycache__/cli.cpython-311.pyc",
        "worker/domain/__pycache__/scope.cpython-311.pyc",
    ],
)
def test_dockerignore_keeps_local_state_secrets_and_caches_out(path: str) -> None:
    assert _dockerignored(path)


def test_dockerignore_lets_in_every_source_file_the_build_needs() -> None:
    needed = ["pyproject.toml", "README.md"] + [
        str(p.relative_to(ROOT))
        for p in (ROOT / "worker").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert "worker/migrations/env.py" in needed
    left_out = [path for path in needed if _dockerignored(path)]
    assert not left_out


# =================================================================================================
# docker-compose.yml
# =================================================================================================
def test_compose_has_the_services_and_only_flower_is_optional() -> None:
    services = _compose()["services"]
    assert set(services) == {"redis", "postgres", "migrate", "worker", "beat", "serve", "flower"}
    assert services["flower"]["profiles"] == ["flower"]
    assert [name for name, s in services.items() if s.get("profiles")] == ["flower"]
    assert set(_compose_tenant_sync_services()) == {"migrate", "worker", "beat", "serve"}


def test_compose_images_are_pinned_and_tenant_sync_is_this_version() -> None:
    version = _project()["project"]["version"]
    for name, service in _compose()["services"].items():
        image = str(service["image"])
        if name in _compose_tenant_sync_services():
            # ${TENANT_SYNC_IMAGE:-tenant-sync:<version>}: the default is this tree's build.
            match = re.fullmatch(r"\$\{TENANT_SYNC_IMAGE:-(.+)\}", image)
            assert match, image
            image = match.group(1)
            assert image == f"tenant-sync:{version}"
            assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert _pinned(image), f"{name}: pin a tag, not {image}"


def _pinned(image: str) -> bool:
    _, sep, tag = image.rpartition(":")
    return bool(sep) and "/" not in tag and tag not in ("", "latest")


def test_compose_redis_persists_and_reports_health() -> None:
    redis = _compose()["services"]["redis"]
    assert redis["image"].startswith("redis:")
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_compose_postgres_persists_reports_health_and_takes_its_password_from_env() -> None:
    postgres = _compose()["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    env = postgres["environment"]
    assert re.fullmatch(r"\$\{DB_PASSWORD(:\?[^}]*)?\}", env["POSTGRES_PASSWORD"])
    # The database and role the example config's database_url uses.
    url = _config_sources()["deploy/config/tenant-sync.yaml.example (compose)"]["state"][
        "database_url"
    ]
    assert url == (
        f"postgresql+psycopg://{env['POSTGRES_USER']}:${{DB_PASSWORD}}@postgres/{env['POSTGRES_DB']}"
    )


def test_compose_migrate_runs_once_after_postgres_and_gates_worker_and_beat() -> None:
    services = _compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == MIGRATE_CMD
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "beat", "serve"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_compose_worker_scales_and_beat_cannot() -> None:
    services = _compose()["services"]
    worker, beat = services["worker"], services["beat"]
    assert worker["command"] == WORKER_CMD
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "healthcheck" not in worker, "the worker keeps the image's HEALTHCHECK"
    assert beat["command"] == BEAT_CMD
    # A fixed container name makes `--scale beat=2` fail.
    assert beat.get("container_name")
    assert beat.get("scale", 1) == 1
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    for name in ("beat", "migrate"):
        assert services[name]["healthcheck"] == {"disable": True}, f"{name} answers no ping"


def test_compose_passes_config_read_only_and_secrets_only_through_the_env_file() -> None:
    for name, service in _compose_tenant_sync_services().items():
        assert service["env_file"] == ".env", name
        assert service["environment"] == {"TENANT_SYNC_CONFIG": CONFIG_PATH}, name
        assert service["volumes"] == [f"./config:{CONFIG_DIR}:ro"], name
    assert (DEPLOY / "config" / "tenant-sync.yaml.example").is_file()
    for name, service in _compose()["services"].items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: write environment as a mapping"
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:[-?][^}]*)?\}", str(value)), (
                    f"{name}.{key} must come from .env, not be written here"
                )


def test_compose_flower_is_only_on_the_loopback_interface() -> None:
    flower = _compose()["services"]["flower"]
    assert all(str(port).startswith("127.0.0.1:") for port in flower["ports"])
    assert flower["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"


def _published(port: str) -> tuple[str, int, int]:
    """Host address, host port and container port of a compose `ports:` entry, with any
    ${VAR:-default} replaced by its default (what runs when .env leaves it unset)."""
    text = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", port)
    match = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+):(\d+):(\d+)", text)
    assert match, f"publish as ADDRESS:HOST_PORT:CONTAINER_PORT, not {port}"
    return match.group(1), int(match.group(2)), int(match.group(3))


def test_compose_serve_listens_in_its_container_and_is_published_on_loopback_only() -> None:
    serve = _compose()["services"]["serve"]
    assert serve["command"] == SERVE_CMD
    params = _check_command(serve["command"])
    # Every interface of the container (the published port reaches it there), on the image's port.
    assert (params["host"], params["port"]) == ("0.0.0.0", SERVE_PORT)
    (port,) = serve["ports"]
    address, host_port, container_port = _published(str(port))
    assert address == "127.0.0.1", "plain HTTP: only a TLS proxy on the host may reach it"
    assert (host_port, container_port) == (SERVE_PORT, params["port"])
    # Stateless: it may be scaled (no fixed name), unlike beat.
    assert "container_name" not in serve


def _healthz_script(test: list[str]) -> str:
    """The Python program of a `["CMD", "python", "-c", PROGRAM]` healthcheck."""
    assert test[:3] == ["CMD", "python", "-c"], f"python -c (no curl in the image): {test}"
    (program,) = test[3:]
    compile(program, "healthcheck", "exec")  # a syntax error would read as "unhealthy" forever
    return program


def test_compose_serve_replaces_the_images_celery_healthcheck_with_healthz() -> None:
    serve = _compose()["services"]["serve"]
    healthcheck = serve["healthcheck"]
    assert not healthcheck.get("disable")
    program = _healthz_script(healthcheck["test"])
    assert "celery" not in program
    # It asks this container's serve, on the port the command binds, for the unauthenticated path.
    (url,) = re.findall(r"[\"'](https?://[^\"']+)[\"']", program)
    assert url == f"http://127.0.0.1:{_check_command(serve['command'])['port']}{HEALTHZ}"
    # Any failure (refused, timeout, 5xx) must be exit status 1, Docker's "unhealthy".
    assert "urllib.request.urlopen(" in program
    assert re.search(r"except OSError\b", program)
    assert "sys.exit(" in program
    timeout = re.search(r"timeout=(\d+(?:\.\d+)?)", program)
    assert timeout, "give urlopen a timeout below the healthcheck's"
    assert float(timeout.group(1)) < _duration(str(healthcheck["timeout"]))
    # The image's python: the venv's, first on PATH.
    assert _env(_dockerfile()[-1])["PATH"].startswith(f"{VENV}/bin:")


# =================================================================================================
# Kubernetes
# =================================================================================================
def test_kustomization_applies_every_manifest_except_the_examples() -> None:
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    resources_ = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources_)
    # The examples hold placeholders (credentials, a host name) that are the operator's to fill.
    examples = {p.name for p in K8S.glob("*.example.yaml")}
    assert examples == {"secret.example.yaml", "ingress.example.yaml"}
    expected = {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"} - examples
    assert set(resources_) == expected
    # Placeholders must never overwrite real credentials on `apply -k`.
    for name in resources_:
        assert all(doc["kind"] != "Secret" for doc in _docs(K8S / name))
    namespace = _k8s("Namespace", kustomization["namespace"])
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kubernetes_images_are_pinned_to_this_version() -> None:
    version = _project()["project"]["version"]
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    assert kustomization["images"] == [{"name": "tenant-sync", "newTag": version}]
    for workload in _workloads():
        for container in _containers(workload):
            assert container["image"] == f"tenant-sync:{version}", container["name"]


def test_kubernetes_beat_is_a_single_replica_that_is_recreated() -> None:
    beat = _k8s("Deployment", "tenant-sync-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = beat["spec"]["template"]["spec"]["containers"]
    assert container["command"] == BEAT_CMD
    beats = [
        w
        for w in _workloads()
        for c in _containers(w)
        if [*c.get("command", []), *c.get("args", [])][3:4] == ["beat"]
    ]
    assert beats == [beat], "exactly one workload runs beat"


def test_kubernetes_workers_are_several_with_probes_and_resources() -> None:
    worker = _k8s("Deployment", "tenant-sync-worker")
    assert worker["spec"]["replicas"] >= 2
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[: len(WORKER_CMD)] == WORKER_CMD
    params = _check_command(command)
    # Without it Celery forks one process per CPU of the node, whatever the limits say.
    assert params["concurrency"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in container, probe
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe not in container:
            continue
        ping = _probe_command(container[probe])
        assert ping[:5] == PING
        ping_params = _check_command(ping)
        assert ping_params["destination"] == ["celery@$HOSTNAME"]
        # `sh -c` expands $HOSTNAME; Kubernetes itself would not.
        assert container[probe]["exec"]["command"][:2] == ["sh", "-c"]
        assert container[probe]["timeoutSeconds"] > ping_params["timeout"]
    resources_ = container["resources"]
    assert {"cpu", "memory"} <= set(resources_["requests"])
    assert "memory" in resources_["limits"]


def test_image_and_worker_pods_declare_the_configured_metrics_port(tmp_path: Path) -> None:
    worker = _k8s("Deployment", "tenant-sync-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = _loaded("deploy/kubernetes/configmap.yaml", tmp_path)
    assert ports == {"metrics": config.metrics.port}
    compose = _loaded("deploy/config/tenant-sync.yaml.example (compose)", tmp_path)
    # The worker's metrics and the operator service's port: nothing else.
    exposed = [word for e in _dockerfile()[-1].all("EXPOSE") for word in e.args.split()]
    assert sorted(exposed) == sorted([str(compose.metrics.port), str(SERVE_PORT)])


def _serve_container() -> dict[str, Any]:
    serve = _k8s("Deployment", "tenant-sync-serve")
    (container,) = serve["spec"]["template"]["spec"]["containers"]
    return container


def test_kubernetes_serve_runs_replicas_of_the_operator_service_with_resources() -> None:
    serve = _k8s("Deployment", "tenant-sync-serve")
    # Stateless (sessions in Redis): two, so a rollout or a node drain keeps it up.
    assert serve["spec"]["replicas"] >= 2
    assert serve["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = _serve_container()
    assert container["command"] == SERVE_CMD
    params = _check_command(container["command"])
    # The Service reaches the pod's IP, not its loopback.
    assert params["host"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": params["port"]}
    resources_ = container["resources"]
    assert {"cpu", "memory"} <= set(resources_["requests"])
    assert "memory" in resources_["limits"]


def test_kubernetes_serve_pods_are_locked_down_like_the_workers() -> None:
    serve = _k8s("Deployment", "tenant-sync-serve")["spec"]["template"]["spec"]
    worker = _k8s("Deployment", "tenant-sync-worker")["spec"]["template"]["spec"]
    assert serve["securityContext"] == worker["securityContext"]
    assert serve["automountServiceAccountToken"] is worker["automountServiceAccountToken"] is False
    assert _serve_container()["securityContext"] == worker["containers"][0]["securityContext"]
    assert serve["volumes"][0] == worker["volumes"][0], "the same config and certificates"


def _container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or a Service's port (a number or a port's name) as the container's number."""
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if isinstance(port, str):
        assert port in ports, f"the container has no port named {port!r}"
        return ports[port]
    assert port in ports.values(), f"the container does not declare port {port}"
    return port


def test_kubernetes_serve_probes_get_healthz_without_credentials() -> None:
    container = _serve_container()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in container, probe
        get = container[probe]["httpGet"]
        assert get["path"] == HEALTHZ
        assert _container_port(container, get["port"]) == SERVE_PORT
        assert get.get("scheme", "HTTP") == "HTTP"
        # /healthz needs no token; one written here would sit in the manifest in clear.
        assert "httpHeaders" not in get
        assert container[probe]["timeoutSeconds"] >= 1
    # It listens only once Redis and SQL answer and migrations ran: give that time, as workers get.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_kubernetes_service_targets_the_serve_pods_port() -> None:
    service = _k8s("Service", "tenant-sync-serve")
    spec = service["spec"]
    assert spec.get("type", "ClusterIP") == "ClusterIP", "plain HTTP: expose it through TLS"
    (port,) = spec["ports"]
    assert port["port"] == 80
    assert port.get("protocol", "TCP") == "TCP"
    serve = _k8s("Deployment", "tenant-sync-serve")
    # The selector picks the serve pods and no other workload's.
    selector = spec["selector"]
    for workload in _workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selected = selector.items() <= labels.items()
        assert selected == (workload is serve), workload["metadata"]["name"]
    assert _container_port(_serve_container(), port["targetPort"]) == SERVE_PORT


def test_kubernetes_ingress_example_sends_tls_traffic_for_public_url_to_the_service() -> None:
    ingress = _k8s("Ingress", "tenant-sync-serve")
    service = _k8s("Service", "tenant-sync-serve")
    (rule,) = ingress["spec"]["rules"]
    (tls,) = ingress["spec"]["tls"]
    assert rule["host"] in tls["hosts"]
    assert tls["secretName"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert backend["port"].get("name") in service_ports or (
        backend["port"].get("number") in service_ports.values()
    )
    # Sign-in redirects go to api.public_url: the address the Ingress serves.
    configmap = _config_sources()["deploy/kubernetes/configmap.yaml"]
    assert configmap["api"]["public_url"] == f"https://{rule['host']}"


def test_kubernetes_migrate_job_runs_db_upgrade_with_a_bounded_retry() -> None:
    (job,) = [w for w in _workloads() if w["kind"] == "Job"]
    spec = job["spec"]
    assert 1 <= spec["backoffLimit"] <= 6
    # It deletes itself once done, so the next `apply -k` can create it again.
    assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    (container,) = pod["containers"]
    assert container["command"] == MIGRATE_CMD


@pytest.mark.parametrize("workload", _workloads(), ids=lambda w: w["metadata"]["name"])
def test_kubernetes_pods_are_non_root_and_locked_down(workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == UID
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in _containers(workload):
        security = container["securityContext"]
        assert security.get("runAsNonRoot", pod_security["runAsNonRoot"]) is True
        assert security.get("runAsUser", UID) == UID
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("workload", _workloads(), ids=lambda w: w["metadata"]["name"])
def test_kubernetes_pods_mount_the_config_and_writable_scratch(workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = _k8s("ConfigMap", "tenant-sync-config")
    assert PurePosixPath(CONFIG_PATH).name in configmap["data"]
    for container in _containers(workload):
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("TENANT_SYNC_CONFIG") == CONFIG_PATH
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        config = mounts[CONFIG_DIR]
        assert config.get("readOnly") is True
        sources = volumes[config["name"]]["projected"]["sources"]
        assert {"configMap": {"name": "tenant-sync-config"}} in sources
        # With a read-only root, the state_dir and /tmp must be volumes of their own.
        for path in (STATE_DIR, "/tmp"):
            assert "emptyDir" in volumes[mounts[path]["name"]], path


@pytest.mark.parametrize("workload", _workloads(), ids=lambda w: w["metadata"]["name"])
def test_kubernetes_secrets_come_only_from_secret_references(workload: dict[str, Any]) -> None:
    secrets = {d["metadata"]["name"]: d for _, d in _k8s_manifests() if d["kind"] == "Secret"}
    for container in _containers(workload):
        for entry in container.get("env", []):
            if "value" in entry:
                assert not SECRET_NAME.search(entry["name"]), (
                    f"{entry['name']} must come from a Secret (valueFrom.secretKeyRef)"
                )
            else:
                assert set(entry["valueFrom"]) <= {"secretKeyRef", "configMapKeyRef", "fieldRef"}
        for source in container.get("envFrom", []):
            assert set(source) == {"secretRef"}, "environment only from Secrets"
            assert source["secretRef"]["name"] in secrets
    pod = workload["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                assert source["secret"]["name"] in secrets


# =================================================================================================
# The example configs, the env example and the Secret example agree.
# =================================================================================================
def _loaded(source: str, tmp_path: Path) -> Config:
    data = json.loads(json.dumps(_config_sources()[source]))
    # The certificate files live on the deployment's hosts; the loader checks they are readable.
    for tenant in data["tenants"].values():
        if tenant.get("certificate_path"):
            (tmp_path / "cert.pem").write_text("placeholder")
            tenant["certificate_path"] = str(tmp_path / "cert.pem")
    # A variable named *_URL holds a URL (a webhook's, whose token makes it a secret).
    env = {
        name: "https://hooks.example.com/x" if name.endswith("_URL") else "value"
        for name in _env_refs(data)
    }
    return build_config(data, env=env)


@pytest.mark.parametrize("source", list(_config_sources()))
def test_example_configs_load_as_tenant_sync_configs(source: str, tmp_path: Path) -> None:
    config = _loaded(source, tmp_path)
    assert config.jobs
    assert str(config.state.state_dir) == STATE_DIR


@pytest.mark.parametrize("source", list(_config_sources()))
def test_example_configs_write_no_secret_themselves(source: str) -> None:
    config = _config_sources()[source]
    for name, tenant in config["tenants"].items():
        secret = tenant.get("client_secret")
        assert secret is None or re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", secret), name
    console_secret = config["api"]["auth"].get("client_secret")
    assert console_secret is None or re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", console_secret)
    url = config["state"]["database_url"]
    password = re.match(r"^[^:]+://[^:/@]+:([^@]*)@", url)
    assert password is None or re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", password.group(1)), url


@pytest.mark.parametrize("source", list(_config_sources()))
def test_example_configs_let_serve_start_with_entra_id_and_a_static_token(
    source: str, tmp_path: Path
) -> None:
    """`serve` refuses to start without api.auth: every deployment's example has both ways in."""
    api = _loaded(source, tmp_path).api
    assert api.auth.configured
    assert api.auth.entra
    assert api.auth.client_id, "the console's app registration (sign-in)"
    assert api.auth.tenant in _config_sources()[source]["tenants"]
    assert api.auth.tokens
    assert api.public_url is not None
    assert api.public_url.startswith("https://")
    # Only digests in the file, and none whose token anyone knows: not the digest of a
    # placeholder value of the examples, of the empty string or of a token's own name.
    values, _ = _env_example()
    known = {*values.values(), "", "change-me", "token", "secret"}
    known |= {t.name for t in api.auth.tokens}
    for token in api.auth.tokens:
        assert token.sha256 not in {hashlib.sha256(k.encode()).hexdigest() for k in known}


def test_systemd_example_config_keeps_serve_on_loopback(tmp_path: Path) -> None:
    """The unit runs `tenant-sync serve` without --host: the config's address is what binds,
    and plain HTTP must stay on the host, behind the TLS proxy."""
    api = _loaded("config/tenant-sync.example.yaml (systemd)", tmp_path).api
    assert api.host in ("127.0.0.1", "::1", "localhost")
    assert api.port == SERVE_PORT


def test_deployment_configs_point_at_the_deployments_services_and_files() -> None:
    sources = _config_sources()
    compose = sources["deploy/config/tenant-sync.yaml.example (compose)"]
    assert compose["state"]["redis_url"] == "redis://redis:6379/0"
    assert "@postgres/" in compose["state"]["database_url"]
    for path in _certificate_paths(compose):
        # deploy/config/ is mounted at the config's directory.
        assert str(PurePosixPath(path).parent) == CONFIG_DIR, path
    k8s = sources["deploy/kubernetes/configmap.yaml"]
    certificates = _k8s("Secret", "tenant-sync-certificates")
    for path in _certificate_paths(k8s):
        # The certificates Secret is projected into the config's directory.
        assert str(PurePosixPath(path).parent) == CONFIG_DIR, path
        assert PurePosixPath(path).name in certificates["stringData"]


def test_env_example_defines_exactly_the_variables_the_configs_use() -> None:
    values, optional = _env_example()
    used = set().union(*(_env_refs(config) for config in _config_sources().values()))
    assert set(values) == used
    # Compose's own ${...}: the ones it needs are set, the optional ones shown.
    compose_vars = set(INTERPOLATION.findall((DEPLOY / "docker-compose.yml").read_text()))
    assert compose_vars <= set(values) | optional
    assert optional <= compose_vars
    for name, value in values.items():
        assert not value.startswith(("'", '"')), f"{name}: quotes would be kept by Kubernetes"


def test_kubernetes_secret_example_holds_the_variables_the_configmap_uses() -> None:
    env_secret = _k8s("Secret", "tenant-sync-env")
    used = _env_refs(_config_sources()["deploy/kubernetes/configmap.yaml"])
    assert set(env_secret["stringData"]) == used
    values, _ = _env_example()
    assert set(env_secret["stringData"]) <= set(values)


# =================================================================================================
# The commands exist in the package; everyone agrees on the worker's name.
# =================================================================================================
@pytest.mark.parametrize("where_argv", _all_commands(), ids=lambda c: c[0])
def test_every_command_the_deployments_run_exists_in_the_package(
    where_argv: tuple[str, list[str]],
) -> None:
    _, argv = where_argv
    _check_command(argv)


def test_the_command_check_catches_mistakes() -> None:
    """The parser really descends into subcommands and rejects what the CLI would (a guard
    against a check that silently parses only the top level)."""
    assert _check_command(SERVE_CMD)["port"] == SERVE_PORT
    assert "as_json" in _check_command(["tenant-sync", "db", "upgrade"])  # db upgrade's own option
    for wrong in (
        ["tenant-sync", "serve", "--hots", "0.0.0.0"],
        ["tenant-sync", "serve", "--port", "http"],
        ["tenant-sync", "db", "upgrade", "--revision", "head"],
        ["tenant-sync", "no-such-command"],
        ["tenant-sync", "db"],
        ["celery", "-A", "worker.celery_app", "worker", "--concurency", "2"],
    ):
        with pytest.raises((pytest.fail.Exception, AssertionError)):
            _check_command(wrong)


def test_the_deploy_readme_commands_are_found() -> None:
    """The README's commands are in the set checked above (a guard for its line parser)."""
    commands = [shlex.join(argv) for argv in _readme_commands(DEPLOY / "README.md")]
    assert "tenant-sync status" in commands
    assert "/opt/tenant-sync/bin/tenant-sync status" in commands
    assert "tenant-sync logs contoso-to-fabrikam --format csv" in commands
    # Namespaces and user names spelt tenant-sync are not commands.
    assert not [c for c in commands if c in ("tenant-sync", "tenant-sync-env")]


def test_the_worker_is_named_as_the_health_checks_expect() -> None:
    """The checks ask celery@$HOSTNAME; a worker started without -n names itself
    celery@<gethostname()>, which is $HOSTNAME in a container or pod."""
    for where, argv in _all_commands():
        if argv[3:4] == ["worker"]:
            assert not {"-n", "--hostname"} & set(argv), where
            params = _check_command(argv)
            assert params["hostname"] == f"celery@{socket.gethostname()}", where


def test_every_deployment_uses_the_same_config_path() -> None:
    assert _env(_dockerfile()[-1])["TENANT_SYNC_CONFIG"] == CONFIG_PATH
    for unit in sorted(SYSTEMD.glob("*.service")):
        service = _unit(unit.name)["Service"]
        assert service["Environment"] == f"TENANT_SYNC_CONFIG={CONFIG_PATH}", unit.name


# =================================================================================================
# systemd
# =================================================================================================
def test_systemd_units_run_the_venv_as_the_service_user() -> None:
    expected = {
        "tenant-sync-worker.service": WORKER_CMD,
        "tenant-sync-beat.service": BEAT_CMD,
        "tenant-sync-migrate.service": MIGRATE_CMD,
        # Where the config says (api.host, api.port: loopback, behind the host's TLS proxy).
        "tenant-sync-serve.service": ["tenant-sync", "serve"],
    }
    assert {p.name for p in SYSTEMD.glob("*.service")} == set(expected)
    for name, command in expected.items():
        service = _unit(name)["Service"]
        argv = shlex.split(service["ExecStart"])
        assert argv[0] == f"{VENV}/bin/{command[0]}", name
        assert argv[1:] == command[1:], name
        assert service["User"] == "tenant-sync"
        assert service["Group"] == "tenant-sync"
        assert service["EnvironmentFile"] in ("/etc/tenant-sync/env", "-/etc/tenant-sync/env")
        assert service["WorkingDirectory"] == STATE_DIR
        assert service["ReadWritePaths"] == STATE_DIR
        assert service["ProtectSystem"] == "strict"


@pytest.mark.parametrize("name", ["tenant-sync-worker.service", "tenant-sync-serve.service"])
def test_systemd_worker_and_serve_require_the_migrations_first(name: str) -> None:
    unit = _unit(name)
    assert "tenant-sync-migrate.service" in unit["Unit"]["Requires"].split()
    assert "tenant-sync-migrate.service" in unit["Unit"]["After"].split()
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_serve_is_not_restarted_over_bad_input() -> None:
    """Exit status 2 is bad input (say, no api.auth): restarting every 10 s would not fix it."""
    service = _unit("tenant-sync-serve.service")["Service"]
    assert service["RestartPreventExitStatus"].split() == ["2"]


def test_systemd_migrations_run_when_the_worker_starts_and_the_worker_stops_warm() -> None:
    migrate = _unit("tenant-sync-migrate.service")
    assert migrate["Service"]["Type"] == "oneshot"
    assert "Install" not in migrate, "it runs when the worker starts, not on its own"
    # Warm shutdown: only Celery's main process gets SIGTERM.
    assert _unit("tenant-sync-worker.service")["Service"]["KillMode"] == "mixed"


def _operator_file(path: Path) -> bool:
    """What an operator creates in a checkout (never committed): the secrets, the real config."""
    return (
        path.name == ".env"
        or path.suffix in (".pem", ".key")
        or path == Path("config/tenant-sync.yaml")
    )


# =================================================================================================
# The operator's guide covers every file.
# =================================================================================================
def test_deploy_readme_mentions_every_deployment_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    files = [
        str(p.relative_to(DEPLOY))
        for p in DEPLOY.rglob("*")
        if p.is_file() and p.name != "README.md" and not _operator_file(p.relative_to(DEPLOY))
    ]
    missing = [f for f in files if f"`{f}`" not in readme]
    assert not missing, f"deploy/README.md does not mention {missing}"
