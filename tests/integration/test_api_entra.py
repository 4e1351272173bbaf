"""`serve` with Entra ID access tokens: the sandbox is the sign-in authority of `api.auth.tenant`.

A runbook signs in as an application with azure-identity's ClientSecretCredential (scope
`api://tenant-sync/.default`) and drives the API through Microsoft's Graph SDK; its roles come from
the app-role assignments of the seed. Tokens that are expired, for another audience, unsigned or
tampered with get 401; a token without the role gets 403.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.synchronization_schedule_state import SynchronizationScheduleState

from tests.conftest import SyncEnv, sync_world
from tests.support.serve import ServiceHandle, add_api_section, running_service
from tests.support.world import SOURCE, build_world_seed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]

API = "api://tenant-sync"
OTHER_API = "api://someone-else"
SCOPE = f"{API}/.default"
RUNBOOK, RUNBOOK_SECRET = "7a5c0000-0000-4000-8000-0000000000b1", "runbook-secret"
MONITOR, MONITOR_SECRET = "7a5c0000-0000-4000-8000-0000000000b2", "monitor-secret"
NOBODY, NOBODY_SECRET = "7a5c0000-0000-4000-8000-0000000000b3", "nobody-secret"
JOB = "/v1.0/servicePrincipals/sync/synchronization/jobs/sync"
LEEWAY_S = 5  # api.auth.clock_skew: the clock skew serve allows (60 s unless configured)


@dataclass
class EntraWorld:
    env: SyncEnv
    service: ServiceHandle
    short_lived: str  # an Operate token that expired a second after it was issued
    issued_at: float

    def credential(self, client_id: str, secret: str) -> ClientSecretCredential:
        """What a runbook configures: the authority is the sandbox, trusted through its CA."""
        return ClientSecretCredential(
            tenant_id=SOURCE.tenant_id,
            client_id=client_id,
            client_secret=secret,
            authority=self.env.sandbox.url,
            disable_instance_discovery=True,
            connection_verify=str(self.env.sandbox.ca_path),
        )

    def token(self, client_id: str, secret: str, scope: str = SCOPE) -> str:
        return self.credential(client_id, secret).get_token(scope).token

    def call(self, token: str, path: str = JOB) -> httpx.Response:
        return self.service.client(token).get(path)


def seed_with_api_apps() -> dict[str, Any]:
    seed = build_world_seed()
    contoso = seed["tenants"][0]
    contoso["clients"] += [
        {"client_id": RUNBOOK, "client_secret": RUNBOOK_SECRET, "display_name": "runbook"},
        {"client_id": MONITOR, "client_secret": MONITOR_SECRET, "display_name": "monitor"},
        {"client_id": NOBODY, "client_secret": NOBODY_SECRET, "display_name": "nobody"},
    ]
    contoso["apis"] = [
        {
            "app_id": "7a5c0000-0000-4000-8000-0000000000a0",
            "identifier_uri": API,
            "app_roles": ["TenantSync.Read", "TenantSync.Operate"],
            "assignments": [
                {"principal": RUNBOOK, "role": "TenantSync.Operate"},
                {"principal": MONITOR, "role": "TenantSync.Read"},
            ],
        },
        {
            "app_id": "7a5c0000-0000-4000-8000-0000000000a9",
            "identifier_uri": OTHER_API,
            "app_roles": ["TenantSync.Operate"],
            "assignments": [{"principal": RUNBOOK, "role": "TenantSync.Operate"}],
        },
    ]
    return seed


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraWorld]:
    tmp = tmp_path_factory.mktemp("entra")
    with sync_world(tmp, seed_with_api_apps()) as env:
        add_api_section(env.config, tenant=SOURCE.name, audience=API, clock_skew=f"{LEEWAY_S}s")
        env.run_json("--full")
        # One token that expires at once, taken first so that the clock runs during the module
        sandbox = env.sandbox
        sandbox.admin("PUT", "/_sandbox/auth", {"token_lifetime_s": 1}).raise_for_status()
        issued_at = time.time()
        short_lived = sandbox.msal_app(
            SOURCE.tenant_id, RUNBOOK, RUNBOOK_SECRET
        ).acquire_token_for_client([SCOPE])["access_token"]
        sandbox.admin("PUT", "/_sandbox/auth", {"token_lifetime_s": 3599}).raise_for_status()
        with running_service(env.config, tmp / "serve") as service:
            yield EntraWorld(env, service, short_lived, issued_at)


def test_the_sdk_signs_in_with_client_secret_credential_and_drives_a_job(
    world: EntraWorld,
) -> None:
    async def script() -> None:
        runbook = GraphServiceClient(
            credentials=world.credential(RUNBOOK, RUNBOOK_SECRET), scopes=[SCOPE]
        )
        runbook.request_adapter.base_url = f"{world.service.url}/v1.0"
        job = runbook.service_principals.by_service_principal_id(
            "sync"
        ).synchronization.jobs.by_synchronization_job_id("sync")
        await job.pause.post()
        found = await job.get()
        assert found is not None
        assert found.schedule is not None
        assert found.schedule.state == SynchronizationScheduleState.Paused
        await job.start.post()
        found = await job.get()
        assert found is not None
        assert found.schedule is not None
        assert found.schedule.state == SynchronizationScheduleState.Active

        monitor = GraphServiceClient(
            credentials=world.credential(MONITOR, MONITOR_SECRET), scopes=[SCOPE]
        )
        monitor.request_adapter.base_url = f"{world.service.url}/v1.0"
        watched = monitor.service_principals.by_service_principal_id(
            "sync"
        ).synchronization.jobs.by_synchronization_job_id("sync")
        assert (await watched.get()) is not None  # TenantSync.Read reads
        with pytest.raises(ODataError) as refused:
            await watched.pause.post()
        assert refused.value.response_status_code == 403
        assert refused.value.error is not None
        assert refused.value.error.code == "Authorization_RequestDenied"
        assert (
            refused.value.error.message
            == f"app:{MONITOR} does not have the TenantSync.Operate role"
        )

    asyncio.run(script())
    trail = world.service.client(world.token(MONITOR, MONITOR_SECRET)).get("/api/audit").json()
    by_apps = [(e["actor"], e["action"], e["result"]) for e in trail["value"]]
    assert (f"app:{RUNBOOK}", "pause", "success") in by_apps
    assert (f"app:{RUNBOOK}", "start", "success") in by_apps


def test_a_token_without_a_role_is_403(world: EntraWorld) -> None:
    response = world.call(world.token(NOBODY, NOBODY_SECRET))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        f"app:{NOBODY} does not have the TenantSync.Read role "
        "(the token carries no tenant-sync role)"
    )


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def test_tokens_for_another_audience_unsigned_or_tampered_are_401(world: EntraWorld) -> None:
    monitor = world.token(MONITOR, MONITOR_SECRET)
    assert world.call(monitor).status_code == 200
    header, _, signature = monitor.split(".")
    claims = _claims(monitor)

    def refused(token: str) -> str:
        response = world.call(token)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        error = response.json()["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        message: str = error["message"]
        assert token not in message  # tokens never go back out
        return message

    other = world.token(RUNBOOK, RUNBOOK_SECRET, f"{OTHER_API}/.default")
    assert _claims(other)["aud"] == OTHER_API
    assert "invalid audience (expected api://tenant-sync)" in refused(other)

    promoted = claims | {"roles": ["TenantSync.Operate"]}  # a reader makes itself an operator
    assert "Signature verification failed" in refused(f"{header}.{_b64(promoted)}.{signature}")
    unsigned = _b64(
        {
            "alg": "none",
            "typ": "JWT",
            "kid": json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"],
        }
    )
    assert "validation failure" in refused(f"{unsigned}.{_b64(promoted)}.")
    assert "validation failure" in refused(f"{header}.{_b64(claims)}.")  # signature cut off
    reader_paused = world.service.client(f"{header}.{_b64(promoted)}.{signature}").post(
        f"{JOB}/pause"
    )
    assert reader_paused.status_code == 401
    assert world.call(monitor).json()["schedule"]["state"] == "Active"  # nothing changed


def test_an_expired_token_is_401_once_past_the_clock_skew(world: EntraWorld) -> None:
    token = world.short_lived
    expires = _claims(token)["exp"]
    assert expires <= world.issued_at + 5
    deadline = expires + LEEWAY_S + 30
    while True:
        response = world.call(token)
        if response.status_code == 401:
            break
        assert response.status_code == 200, response.text
        # accepted only within the allowed clock skew
        assert time.time() <= expires + LEEWAY_S + 2
        assert time.time() < deadline, "the expired token was still accepted"
        time.sleep(1)
    assert time.time() >= expires + LEEWAY_S - 2
    assert response.json()["error"]["message"] == "Access token has expired or is not yet valid."
