"""Test harness for the Graph sandbox: run it as a real HTTPS process and talk to it.

    with running_sandbox(seed, tmp_path / "sandbox") as sb:
        client = sb.graph(tenant_id, client_id, secret)      # httpx.Client on {url}/v1.0
        client.get("/users").json()
        sb.users(tenant_id, include_deleted=True)           # full dump for assertions
        sb.admin("POST", "/_sandbox/reset")                  # -> httpx.Response
        sb.set_faults(error_rate=0.5, seed=7)                # also set_limits, set_delta

Tokens come from real MSAL (`SandboxHandle.token`), configured the way the worker does it:
`instance_discovery=False` and a `requests.Session` that trusts only the sandbox CA.

Signing a user in through the sandbox's page, as a browser would (HTTP only, no JavaScript):

    flow = app.initiate_auth_code_flow(["api://tenant-sync/.default"], redirect_uri=...)
    answer = sb.sign_in(flow["auth_uri"], "operator@contoso.onmicrosoft.com", "pw")
    result = app.acquire_token_by_auth_code_flow(flow, auth_response(answer))
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import jwt
import msal
import requests

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
REPO_ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 10.0

Credential = str | dict[str, str]


@dataclass
class SandboxHandle:
    url: str
    ca_path: Path
    process: subprocess.Popen[bytes]
    workdir: Path
    seed_path: Path
    stdout_path: Path
    stderr_path: Path
    _clients: list[httpx.Client] = field(default_factory=list)
    _apps: dict[tuple[str, str, str], msal.ConfidentialClientApplication] = field(
        default_factory=dict
    )

    # ---------------------------------------------------------------- plumbing

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def http(self, **kwargs: Any) -> httpx.Client:
        """An httpx client that trusts the sandbox CA (closed when the sandbox stops)."""
        client = httpx.Client(verify=self.ssl_context(), trust_env=False, timeout=30.0, **kwargs)
        self._clients.append(client)
        return client

    def requests_session(self) -> requests.Session:
        session = requests.Session()
        session.verify = str(self.ca_path)
        session.trust_env = False  # or REQUESTS_CA_BUNDLE would override verify
        return session

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", errors="replace")

    # ---------------------------------------------------------------- admin API

    def admin(
        self, method: str, path: str, json: Any = None, timeout: float = 30.0
    ) -> httpx.Response:
        """Call the /_sandbox admin API; `path` starts with /_sandbox/."""
        with httpx.Client(verify=self.ssl_context(), trust_env=False, timeout=timeout) as client:
            return client.request(method, f"{self.url}{path}", json=json)

    def users(
        self, tenant_id: str, include_deleted: bool = False, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Every user of a tenant (a scale benchmark's dump of 200,000 takes minutes)."""
        query = "?include_deleted=true" if include_deleted else ""
        resp = self.admin("GET", f"/_sandbox/tenants/{tenant_id}/users{query}", timeout=timeout)
        resp.raise_for_status()
        data: list[dict[str, Any]] = resp.json()
        return data

    def groups(self, tenant_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        query = "?include_deleted=true" if include_deleted else ""
        resp = self.admin("GET", f"/_sandbox/tenants/{tenant_id}/groups{query}")
        resp.raise_for_status()
        data: list[dict[str, Any]] = resp.json()
        return data

    def stats(self) -> dict[str, Any]:
        resp = self.admin("GET", "/_sandbox/stats")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def reset(self) -> None:
        """Back to the seed: data, limits, faults (RNG re-seeded) and delta settings."""
        self.admin("POST", "/_sandbox/reset").raise_for_status()

    def _put(self, path: str, settings: dict[str, Any]) -> dict[str, Any]:
        resp = self.admin("PUT", path, json=settings)
        if resp.status_code != 200:
            raise AssertionError(f"PUT {path} {settings}: {resp.status_code} {resp.text}")
        data: dict[str, Any] = resp.json()
        return data

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Merge into the fault settings, e.g. `set_faults(drop_rate=1.0, seed=7)` (knobs:
        tenant_sync_sandbox/seed.py); returns them all."""
        return self._put("/_sandbox/faults", faults)

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        """Merge into the throttling limits, e.g. `set_limits(write_per_150s=2, window_scale=0.01)`."""
        return self._put("/_sandbox/limits", limits)

    def set_delta(self, **settings: Any) -> dict[str, Any]:
        """Delta settings, e.g. `set_delta(token_max_age_s=60)`."""
        return self._put("/_sandbox/delta", settings)

    # ---------------------------------------------------------------- auth + Graph

    def msal_app(
        self, tenant_id: str, client_id: str, credential: Credential
    ) -> msal.ConfidentialClientApplication:
        key = (tenant_id, client_id, json.dumps(credential, sort_keys=True))
        app = self._apps.get(key)
        if app is None:
            app = msal.ConfidentialClientApplication(
                client_id,
                client_credential=credential,
                authority=f"{self.url}/{tenant_id}",
                instance_discovery=False,
                http_client=self.requests_session(),
            )
            self._apps[key] = app
        return app

    def token_result(
        self, tenant_id: str, client_id: str, credential: Credential
    ) -> dict[str, Any]:
        """MSAL's raw answer (with `error`/`error_description` on failure)."""
        app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=credential,
            authority=f"{self.url}/{tenant_id}",
            instance_discovery=False,
            http_client=self.requests_session(),
        )
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        return result

    def token(self, tenant_id: str, client_id: str, secret: Credential) -> str:
        """An access token from real MSAL; `secret` may also be a certificate credential dict."""
        result = self.msal_app(tenant_id, client_id, secret).acquire_token_for_client(
            scopes=[GRAPH_SCOPE]
        )
        if "access_token" not in result:
            raise AssertionError(f"MSAL could not get a token: {result}")
        token: str = result["access_token"]
        return token

    def graph_with_token(self, token: str) -> httpx.Client:
        return self.http(base_url=f"{self.url}/v1.0", headers={"Authorization": f"Bearer {token}"})

    def graph(self, tenant_id: str, client_id: str, secret: Credential) -> httpx.Client:
        """An httpx client on `{url}/v1.0` with a bearer token of that tenant's client."""
        return self.graph_with_token(self.token(tenant_id, client_id, secret))

    # ---------------------------------------------------------------- sign-in (users)

    def jwks_client(self, tenant_id: str) -> jwt.PyJWKClient:
        """PyJWT's JWKS client on the tenant's `jwks_uri` (from its discovery document)."""
        doc = self.http().get(f"{self.url}/{tenant_id}/v2.0/.well-known/openid-configuration")
        doc.raise_for_status()
        return jwt.PyJWKClient(doc.json()["jwks_uri"], ssl_context=self.ssl_context())

    def sign_in(self, auth_uri: str, login: str, password: str = "") -> httpx.Response:
        """Open the authorize URL, fill in the sign-in form and submit it, as a browser would;
        the answer is the redirect to the app (or the page shown instead)."""
        client = self.http(follow_redirects=False)
        page = client.get(auth_uri)
        if page.status_code != 200:
            return page
        action, fields = read_form(page.text)
        fields.update(login=login, passwd=password)
        return client.post(urljoin(str(page.url), action), data=fields)

    # ---------------------------------------------------------------- lifecycle

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()

    def stop(self, timeout: float = STOP_DEADLINE_S, *, graceful: bool = True) -> int:
        """SIGTERM, wait, SIGKILL on timeout; returns the exit status. Not `graceful`: SIGKILL
        at once (a world being thrown away)."""
        self.close_clients()
        if not graceful and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=timeout)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return int(self.process.returncode)


def start_sandbox_process(
    seed_path: Path | None, workdir: Path, *extra_args: str
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """Start `python -m tenant_sync_sandbox` with output going to files in workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path = workdir / "sandbox.stdout"
    stderr_path = workdir / "sandbox.stderr"
    args = [
        sys.executable,
        "-m",
        "tenant_sync_sandbox",
        "--port",
        "0",
        "--tls-dir",
        str(workdir / "tls"),
    ]
    if seed_path is not None:
        args += ["--seed", str(seed_path)]
    args += list(extra_args)
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            args,
            stdout=out,
            stderr=err,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return process, stdout_path, stderr_path


def wait_until_ready(
    process: subprocess.Popen[bytes], tls_dir: Path, stderr_path: Path
) -> tuple[str, Path]:
    """Poll (deadline START_DEADLINE_S) for sandbox.json of this process and a healthy server."""
    deadline = time.monotonic() + START_DEADLINE_S
    info_path = tls_dir / "sandbox.json"
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"the sandbox exited with status {process.returncode} while starting:\n"
                + stderr_path.read_text("utf-8", errors="replace")
            )
        info: dict[str, Any] | None = None
        try:
            info = json.loads(info_path.read_text("utf-8"))
        except (OSError, ValueError):
            info = None
        if info is not None and info.get("pid") == process.pid:
            url, ca = str(info["url"]), Path(info["ca"])
            try:
                ctx = ssl.create_default_context(cafile=str(ca))
                resp = httpx.get(f"{url}/_sandbox/health", verify=ctx, trust_env=False, timeout=2)
                if resp.status_code == 200:
                    return url, ca
            except httpx.HTTPError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the sandbox did not become ready within {START_DEADLINE_S:.0f} s:\n"
                + stderr_path.read_text("utf-8", errors="replace")
            )
        time.sleep(0.05)


@contextmanager
def running_sandbox(seed: dict[str, Any] | Path, workdir: Path) -> Iterator[SandboxHandle]:
    """Run the sandbox with this seed (or the seed file at this path) for the duration of the
    block."""
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(seed, Path):
        seed_path = seed
    else:
        seed_path = workdir / "seed.json"
        seed_path.write_text(json.dumps(seed, indent=1), "utf-8")
    process, stdout_path, stderr_path = start_sandbox_process(seed_path, workdir)
    try:
        url, ca = wait_until_ready(process, workdir / "tls", stderr_path)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    handle = SandboxHandle(url, ca, process, workdir, seed_path, stdout_path, stderr_path)
    failed = False
    try:
        yield handle
    except BaseException as exc:
        failed = True
        if process.poll() is not None:
            exc.add_note(f"the sandbox had exited ({process.returncode}):\n{handle.stderr()}")
        raise
    finally:
        # A test may stop the sandbox itself (status 0); any other exit before ours is a crash.
        crashed = process.poll() is not None and process.returncode != 0
        # The world is thrown away: nothing it would do on a graceful stop is looked at after, and
        # that stop (SIGTERM: idle connections closed, exit 0, sandbox.json removed) takes about
        # half a second, for every test world. It has tests of its own: test_sandbox_process.py.
        status = handle.stop(graceful=False)
        if crashed and not failed:
            raise RuntimeError(
                f"the sandbox crashed (status {status}) during the test:\n{handle.stderr()}"
            )


# ---------------------------------------------------------------- seed builders


def new_id() -> str:
    return str(uuid.uuid4())


def make_user(name: str, domain: str, **props: Any) -> dict[str, Any]:
    """A member user `name@domain` with an id, display name and mail (override with props)."""
    user: dict[str, Any] = {
        "id": new_id(),
        "userPrincipalName": f"{name}@{domain}",
        "displayName": name.capitalize(),
        "mail": f"{name}@{domain.split('.')[0]}.com",
        "accountEnabled": True,
        "userType": "Member",
    }
    user.update(props)
    return user


def make_tenant(
    domain: str,
    *,
    tenant_id: str | None = None,
    client_id: str | None = None,
    secret: str = "s3cret",
    users: list[dict[str, Any]] | None = None,
    groups: list[dict[str, Any]] | None = None,
    partners: list[dict[str, Any]] | None = None,
    certificate: str | None = None,
) -> dict[str, Any]:
    client: dict[str, Any] = {"client_id": client_id or new_id(), "client_secret": secret}
    clients = [client]
    if certificate is not None:
        clients.append({"client_id": new_id(), "certificate": certificate})
    return {
        "tenant_id": tenant_id or new_id(),
        "domain": domain,
        "clients": clients,
        "users": users or [],
        "groups": groups or [],
        "cross_tenant_access": {"partners": partners or []},
    }


def partner(tenant_id: str, *, auto_redeem: bool = True, sync: bool = True) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "inbound_auto_redeem": auto_redeem,
        "outbound_auto_redeem": auto_redeem,
        "is_sync_allowed": sync,
    }


def make_seed(*tenants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A seed of these tenants; `limits=` / `faults=` go through as given."""
    return {"tenants": list(tenants), **extra}


def client_of(tenant: dict[str, Any]) -> tuple[str, str, str]:
    """(tenant_id, client_id, secret) of a make_tenant() tenant's secret client."""
    client = tenant["clients"][0]
    return tenant["tenant_id"], client["client_id"], client["client_secret"]


# ---------------------------------------------------------------- sign-in pages


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.error: list[str] = []
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((attr.get("action", ""), {}))
        elif tag == "input" and self.forms and attr.get("name"):
            self.forms[-1][1][attr["name"]] = attr.get("value", "")
        elif attr.get("id") == "error":
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error.append(data)


def read_form(page: str) -> tuple[str, dict[str, str]]:
    """The action and the input fields (name -> value) of the page's first form."""
    parser = _Forms()
    parser.feed(page)
    if not parser.forms:
        raise AssertionError(f"no form on the page:\n{page}")
    return parser.forms[0]


def page_error(page: str) -> str:
    """The text of the page's error message (`id="error"`), "" if it has none."""
    parser = _Forms()
    parser.feed(page)
    return "".join(parser.error)


def auth_response(answer: httpx.Response) -> dict[str, str]:
    """What reaches the redirect URI: the query (or fragment) of the 302, or the form_post
    page's fields."""
    if answer.status_code == 302:
        parts = urlsplit(answer.headers["location"])
        return dict(parse_qsl(parts.query or parts.fragment))
    if answer.status_code == 200:
        return read_form(answer.text)[1]
    raise AssertionError(f"sign-in did not redirect: {answer.status_code}\n{answer.text}")


def error_of(resp: httpx.Response) -> dict[str, Any]:
    """The OData error of a refused request (and that it was refused)."""
    assert resp.status_code >= 400, resp.text
    error: dict[str, Any] = resp.json()["error"]
    return error


def ids(resp: httpx.Response) -> list[str]:
    """The ids of a collection page (and that it was answered)."""
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["value"]]
