"""Onboarding a tenant pair from the console's job page (docs/onboarding.md), in Debian's
Chromium driven by Playwright, against `tenant-sync serve` on a sandbox over HTTPS.

One world, one `serve`, one browser: a reader sees the plan and no button; an app without
`Policy.ReadWrite.CrossTenantAccess` is named and nothing is written; a plan changed under the
operator is shown again instead of written; the confirmed plan is written, read back through
Graph, and the checks pass; a second visit has nothing to do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tenant_sync_sandbox.seed_apps import DEFAULT_ROLES
from tests.conftest import SyncEnv, sync_world
from tests.support.console import (
    CHROMIUM,
    NO_CHROMIUM,
    chromium,
    running_serve,
    save_screenshot,
    screenshot_dirs,
    with_api,
)
from tests.support.world import SOURCE, TARGET, TenantInfo, build_world_seed, tenant_block

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():  # pragma: no cover - CI installs it
    pytest.skip(NO_CHROMIUM, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

WRITE = "Policy.ReadWrite.CrossTenantAccess"
PARTNERS = "/policies/crossTenantAccessPolicy/partners"
TOKENS = {"ops": secrets.token_urlsafe(24), "auditor": secrets.token_urlsafe(24)}
# The target tenant again, through a second app registration that lacks the write permission.
LIMITED = TenantInfo(
    "fabrikam-limited",
    TARGET.tenant_id,
    TARGET.domain,
    "aaaaaaaa-0000-4000-8000-0000000000f3",
    "limited-secret",
)
# ... and through a third that may not even read the policies.
BLIND = TenantInfo(
    "fabrikam-blind",
    TARGET.tenant_id,
    TARGET.domain,
    "aaaaaaaa-0000-4000-8000-0000000000f4",
    "blind-secret",
)
UI_TIMEOUT_MS = 20_000
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def policy(env: SyncEnv, tenant: TenantInfo, partner: TenantInfo, sync: bool = False) -> Any:
    """What Graph says of the tenant's partner entry (or its identitySynchronization); None: 404."""
    graph = env.sandbox.graph(tenant.tenant_id, tenant.client_id, tenant.secret)
    path = f"{PARTNERS}/{partner.tenant_id}" + ("/identitySynchronization" if sync else "")
    answer = graph.get(path)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return answer.json()


def writes(env: SyncEnv) -> dict[str, int]:
    return dict(env.sandbox.stats()["writes"])


def sign_in(browser: Browser, url: str, token: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{url}/signin")
    page.fill("#token", token)
    page.click("form[action='/signin'] button[type=submit]")
    expect(page).to_have_url(f"{url}/")
    return page


def csrf_of(page: Page) -> str:
    value = page.locator("form[action='/signout'] input[name=csrf]").get_attribute("value")
    assert value
    return value


def test_an_operator_onboards_the_pair_from_the_job_page(tmp_path: Path, browser: Browser) -> None:
    seed = build_world_seed()
    roles = [r for r in DEFAULT_ROLES if r != WRITE]
    blind = [r for r in roles if r != "Policy.Read.All"]
    seed["tenants"][1]["clients"] += [
        {"client_id": LIMITED.client_id, "client_secret": LIMITED.secret, "roles": roles},
        {"client_id": BLIND.client_id, "client_secret": BLIND.secret, "roles": blind},
    ]
    with sync_world(tmp_path, seed) as env:
        data = yaml.safe_load(env.config.read_text())
        data["tenants"][LIMITED.name] = tenant_block(
            LIMITED, env.sandbox.url, Path(env.sandbox.ca_path)
        )
        data["tenants"][BLIND.name] = tenant_block(
            BLIND, env.sandbox.url, Path(env.sandbox.ca_path)
        )
        data["jobs"]["limited"] = {**data["jobs"]["sync"], "target": LIMITED.name}
        data["jobs"]["blind"] = {**data["jobs"]["sync"], "target": BLIND.name}
        data["logging"]["level"] = "INFO"  # so that the no-secret check has lines to look at
        env.config.write_text(yaml.safe_dump(data, sort_keys=False))
        config = with_api(
            env.config,
            tokens={
                "ops": (TOKENS["ops"], "TenantSync.Operate"),
                "auditor": (TOKENS["auditor"], "TenantSync.Read"),
            },
        )
        shots = screenshot_dirs(tmp_path)
        with running_serve(config, tmp_path / "serve.log") as serve:
            url = serve.url

            # A reader sees what the pair needs, and no way to write it.
            reader = sign_in(browser, url, TOKENS["auditor"])
            reader.goto(f"{url}/jobs/sync")
            plan = reader.get_by_test_id("onboarding-plan")
            expect(plan.locator("tbody tr")).to_have_count(3)
            expect(plan).to_contain_text("automaticUserConsentSettings.outboundAllowed")
            expect(plan).to_contain_text("userSyncInbound.isSyncAllowed")
            expect(plan).to_contain_text("(not set) → true")
            expect(reader.get_by_test_id("onboarding-read-only")).to_be_visible()
            expect(reader.get_by_test_id("review-onboarding")).to_have_count(0)
            reader.goto(f"{url}/jobs/sync/onboarding")
            expect(reader.get_by_test_id("onboarding-plan")).to_be_visible()
            expect(reader.get_by_test_id("write-onboarding")).to_have_count(0)
            refused = reader.request.post(
                f"{url}/jobs/sync/onboarding",
                form={"csrf": csrf_of(reader), "seen": "x", "confirm": "yes"},
            )
            assert refused.status == 403
            assert "TenantSync.Operate" in refused.text()
            reader.context.close()

            # An app without the write permission: named on the page, and nothing is written,
            # even when the plan it shows is posted.
            ops = sign_in(browser, url, TOKENS["ops"])
            before = writes(env)
            ops.goto(f"{url}/jobs/limited")
            lacking = ops.get_by_test_id("onboarding-lacking")
            expect(lacking).to_contain_text(
                f"tenant fabrikam-limited's app ({LIMITED.client_id}) lacks {WRITE}"
            )
            expect(ops.get_by_test_id("review-onboarding")).to_have_count(0)
            save_screenshot(ops, shots, "onboarding-lacking")
            shown = ops.get_by_test_id("onboarding-plan").get_attribute("data-plan")
            assert shown
            denied = ops.request.post(
                f"{url}/jobs/limited/onboarding",
                form={"csrf": csrf_of(ops), "seen": shown, "confirm": "yes"},
            )
            assert denied.status == 409
            assert f"lacks {WRITE}" in denied.text()
            assert "Traceback" not in denied.text()
            assert writes(env) == before
            assert policy(env, SOURCE, TARGET) is None

            # A policy that cannot be read: said, with the permission reading needs.
            ops.goto(f"{url}/jobs/blind")
            error = ops.get_by_test_id("onboarding-error")
            expect(error).to_contain_text(
                "cannot read tenant fabrikam-blind's cross-tenant access policy"
            )
            expect(error).to_contain_text("Policy.Read.All")
            expect(ops.get_by_test_id("onboarding-plan")).to_have_count(0)
            expect(ops.get_by_test_id("review-onboarding")).to_have_count(0)
            assert writes(env) == before

            # The operator reviews the plan; meanwhile someone turns the source's side on.
            ops.goto(f"{url}/jobs/sync")
            ops.get_by_test_id("review-onboarding").click()
            expect(ops).to_have_url(f"{url}/jobs/sync/onboarding")
            expect(ops.get_by_test_id("onboarding-plan").locator("tbody tr")).to_have_count(3)
            graph = env.sandbox.graph(SOURCE.tenant_id, SOURCE.client_id, SOURCE.secret)
            entry = {
                "tenantId": TARGET.tenant_id,
                "automaticUserConsentSettings": {"inboundAllowed": False, "outboundAllowed": True},
            }
            assert graph.post(PARTNERS, json=entry).status_code == 201
            before = writes(env)
            ops.get_by_test_id("confirm-onboarding").check()
            ops.get_by_test_id("write-onboarding").click()
            expect(ops.get_by_test_id("onboarding-message")).to_contain_text(
                "The plan changed since you reviewed it"
            )
            expect(ops.get_by_test_id("onboarding-plan").locator("tbody tr")).to_have_count(2)
            assert writes(env) == before

            # Confirmed again: written, as Graph would have it, and the checks pass.
            ops.get_by_test_id("confirm-onboarding").check()
            ops.get_by_test_id("write-onboarding").click()
            expect(ops.get_by_test_id("onboarding-summary")).to_have_text("2 of 2 write(s) made.")
            outcomes = ops.get_by_test_id("onboarding-outcomes").locator("li")
            expect(outcomes).to_have_count(2)
            expect(outcomes.first).to_contain_text(
                f"✓ written: tenant fabrikam: partner entry for contoso ({SOURCE.tenant_id})"
            )
            expect(ops.get_by_test_id("onboarding-checks")).to_contain_text(
                f"target: user sync allowed from {SOURCE.tenant_id}"
            )
            expect(ops.get_by_test_id("onboarding-checks").locator("li.c-fail")).to_have_count(0)
            save_screenshot(ops, shots, "onboarding-written")
            assert policy(env, TARGET, SOURCE)["automaticUserConsentSettings"] == {
                "inboundAllowed": True,
                "outboundAllowed": False,
            }
            synced = policy(env, TARGET, SOURCE, sync=True)
            assert synced["userSyncInbound"] == {"isSyncAllowed": True}

            # A second visit: nothing to do; the actions are in the job's audit trail.
            ops.goto(f"{url}/jobs/sync")
            expect(ops.get_by_test_id("onboarding-nothing")).to_be_visible()
            expect(ops.get_by_test_id("review-onboarding")).to_have_count(0)
            recent = ops.get_by_test_id("recent-actions")
            expect(recent.locator("tr", has_text="onboard")).to_have_count(2)
            expect(recent.locator("tr", has_text="onboard").first).to_contain_text("success")
            ops.context.close()
        output = serve.output()
        for secret in [*TOKENS.values(), *(t.secret for t in (SOURCE, TARGET, LIMITED, BLIND))]:
            assert secret not in output, "a token or secret reached the service's log"
        assert '"action": "onboard"' in output
