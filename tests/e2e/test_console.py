"""The web console in a real browser: Debian's Chromium driven by Playwright, against
`tenant-sync serve` running as a process on a sandbox world whose cycles ran first.

Each test signs in as a person would (the sign-in page, a pasted token), clicks what an
operator clicks, and checks both the page and the job's state as the CLI reports it.
Screenshots go to the test's temp dir (and bench-results/console/ when that exists).
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tenant_sync_demo.demo import background, wait_for
from tenant_sync_sandbox import default_seed as apps
from tests.conftest import SyncEnv, sync_world
from tests.support.console import (
    CHROMIUM,
    NO_CHROMIUM,
    ServeHandle,
    chromium,
    running_serve,
    save_screenshot,
    screenshot_dirs,
    with_api,
)
from tests.support.world import SOURCE, TARGET, build_world_seed
from worker.service.logexport import LOG_COLUMNS, LOG_JSON_COLUMNS

pytestmark = pytest.mark.e2e

OPERATE, READ = "TenantSync.Operate", "TenantSync.Read"
DEADLINE_S = 60.0
UI_TIMEOUT_MS = 20_000

if not CHROMIUM.exists():  # pragma: no cover - CI installs it
    pytest.skip(NO_CHROMIUM, allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, expect  # noqa: E402

expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Console:
    """One world's `serve` with an operator and a reader token, and browser contexts on it."""

    def __init__(self, env: SyncEnv, serve: ServeHandle, browser: Browser, shots: list[Path]):
        self.env = env
        self.serve = serve
        self.url = serve.url
        self.browser = browser
        self.shots = shots
        self.contexts: list[BrowserContext] = []
        self.cookies: list[str] = []  # every session cookie the browser was given
        self.callbacks: list[str] = []  # Entra's redirects back to /auth/callback
        self.codes: list[str] = []  # the authorization codes in them

    def context(self) -> BrowserContext:
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 860}, accept_downloads=True
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        self.contexts.append(context)
        return context

    def sign_in(self, token: str) -> Page:
        page = self.context().new_page()
        page.goto(f"{self.url}/")
        expect(page).to_have_url(f"{self.url}/signin?next=%2F")
        page.fill("#token", token)
        page.click("form[action='/signin'] button[type=submit]")
        expect(page).to_have_url(f"{self.url}/")
        return page

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            self.env.cli("status", "sync", "--json", check=True).stdout
        )
        return data

    def shot(self, page: Page, name: str, *, full_page: bool = True) -> None:
        save_screenshot(page, self.shots, name, full_page=full_page)

    def close(self) -> None:
        for context in self.contexts:
            self.cookies += [c["value"] for c in context.cookies()]
            context.close()


TOKENS = {"ops": secrets.token_urlsafe(24), "auditor": secrets.token_urlsafe(24)}


@pytest.fixture
def console(sync_env: SyncEnv, browser: Browser, tmp_path: Path) -> Iterator[Console]:
    """`serve` on the world of sync_env, after a full cycle; log lines at INFO, so the check
    that no secret reaches them has something to look at."""
    sync_env.run_json("--full")
    config = with_api(
        sync_env.config,
        tokens={"ops": (TOKENS["ops"], OPERATE), "auditor": (TOKENS["auditor"], READ)},
    )
    text = config.read_text().replace("level: WARNING", "level: INFO")
    config.write_text(text)
    with running_serve(config, tmp_path / "serve.log") as serve:
        handle = Console(sync_env, serve, browser, screenshot_dirs(tmp_path))
        try:
            yield handle
        finally:
            handle.close()
        output = serve.output()
        assert handle.cookies
        for secret in [*TOKENS.values(), *handle.cookies]:
            assert secret not in output, "a token or session cookie reached the service's log"


def csrf_of(page: Page) -> str:
    value = page.locator("form[action='/signout'] input[name=csrf]").get_attribute("value")
    assert value
    return value


@pytest.mark.world(users=30, prior_b2b=False, job={"deletion_threshold": {"count": 5}})
def test_operator_pauses_resumes_and_allows_the_held_deletions(console: Console) -> None:
    env = console.env
    members = env.seed["tenants"][0]["users"][:26]
    doomed = members[:8]
    graph = env.source()
    for user in doomed:
        graph.delete(f"/users/{user['id']}").raise_for_status()
    assert env.run_json()["counts"]["staged_delete"] == 8

    # a wrong token is refused on the sign-in page, the right one signs in
    page = console.context().new_page()
    page.goto(f"{console.url}/jobs/sync")
    expect(page).to_have_url(f"{console.url}/signin?next=%2Fjobs%2Fsync")
    console.shot(page, "signin", full_page=False)
    page.fill("#token", "not-a-token")
    page.click("form[action='/signin'] button[type=submit]")
    expect(page.get_by_test_id("signin-error")).to_contain_text("not accepted")
    page.fill("#token", TOKENS["ops"])
    page.click("form[action='/signin'] button[type=submit]")
    expect(page).to_have_url(f"{console.url}/jobs/sync")  # back where they were going
    expect(page.get_by_test_id("signed-in-user")).to_have_text("ops")
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "__Host-tenant-sync-session"
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Lax")
    assert cookie["value"] not in page.content()
    assert TOKENS["ops"] not in page.content()

    page.goto(f"{console.url}/")
    card = page.locator("[data-job=sync]")
    expect(card.get_by_test_id("state")).to_have_text("in quarantine")
    expect(card.get_by_test_id("quarantine")).to_contain_text("TooManyDeletes")
    console.shot(page, "overview")

    # pause, a refused cycle with its reason, resume
    page.goto(f"{console.url}/jobs/sync")
    page.get_by_test_id("pause").click()
    expect(page.get_by_test_id("flash")).to_contain_text("sync is paused")
    expect(page.get_by_test_id("state")).to_have_text("paused")
    assert console.status()["code"] == "Paused"
    page.get_by_test_id("trigger-incremental").click()
    expect(page.get_by_test_id("flash")).to_have_text(
        "No cycle was queued: sync is paused: resume it (or start it) first."
    )
    page.get_by_test_id("resume").click()
    expect(page.get_by_test_id("flash")).to_contain_text("sync is resumed")
    expect(page.get_by_test_id("state")).to_have_text("in quarantine")
    assert console.status()["code"] == "Quarantine"
    page.reload()  # the message was for one page only
    expect(page.get_by_test_id("flash")).to_have_count(0)
    console.shot(page, "job")

    # the held deletions are listed, by name, before they are allowed
    page.get_by_test_id("review-deletes").click()
    listed = page.get_by_test_id("held-deletions").locator("tbody tr")
    expect(listed).to_have_count(8)
    cells = [row.split("\t") for row in listed.all_inner_texts()]
    assert {c[0] for c in cells} == {"user"}  # the object type: users' and groups' are listed
    assert {c[1] for c in cells} == {u["userPrincipalName"] for u in doomed}
    console.shot(page, "held-deletions")
    page.get_by_test_id("allow-deletes").click()  # the box is not ticked: the browser refuses
    expect(page).to_have_url(f"{console.url}/jobs/sync/deletes")
    assert console.status()["allowDeletes"] is False
    page.get_by_test_id("confirm-deletes").check()
    page.get_by_test_id("allow-deletes").click()
    expect(page).to_have_url(f"{console.url}/jobs/sync")
    expect(page.get_by_test_id("flash")).to_contain_text("deletes the 8 held users")
    assert console.status()["allowDeletes"] is True

    released = env.run_json()
    assert released["counts"]["delete"] == 8
    live = [u for u in env.target_users() if not u.get("deletedDateTime")]
    assert len(live) == 26 - 8
    page.reload()
    expect(page.get_by_test_id("staged-count")).to_have_text("0")
    expect(page.get_by_test_id("state")).to_have_text("active")
    assert page.locator("svg.chart a.bar").count() == 3  # the chart has the three cycles

    # restart with a scope
    page.locator("input[name=scope][value=watermark]").check()
    page.get_by_test_id("restart").click()
    expect(page.get_by_test_id("flash")).to_contain_text("watermark cleared")
    assert console.status()["watermark"] is None

    # every action is in the audit trail, as the token's name, through the console
    page.goto(f"{console.url}/audit")
    audit = page.get_by_test_id("audit-rows").locator("tbody tr")
    trail = [row.split("\t") for row in audit.all_inner_texts()]
    ours = [(r[1].split()[0], r[2], r[3], r[5]) for r in trail if r[2] == "console"]
    assert ours == [
        ("ops", "console", "restart", "success"),
        ("ops", "console", "allow-deletes", "success"),
        ("ops", "console", "resume", "success"),
        ("ops", "console", "trigger", "refused"),
        ("ops", "console", "pause", "success"),
    ]
    console.shot(page, "audit")

    # sign out: the session is gone from the server, its cookie worth nothing
    old = page.context.cookies()[0]
    page.locator("form[action='/signout'] button").click()
    expect(page).to_have_url(f"{console.url}/signin?signed_out=true")
    page.goto(f"{console.url}/")
    expect(page).to_have_url(f"{console.url}/signin?next=%2F")
    replay = console.context()
    replay.add_cookies(
        [
            {
                "name": old["name"],
                "value": old["value"],
                "domain": "127.0.0.1",
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    replayed = replay.new_page()
    replayed.goto(f"{console.url}/")
    expect(replayed).to_have_url(f"{console.url}/signin?next=%2F")
    assert "console sign-in" in console.serve.output()


def test_logs_filter_show_one_row_and_download_csv_and_json(console: Console) -> None:
    env = console.env
    renamed = env.seed["tenants"][0]["users"][5]
    env.source().patch(
        f"/users/{renamed['id']}", json={"jobTitle": "Principal Engineer"}
    ).raise_for_status()
    incremental = env.run_json()
    assert incremental["counts"]["update"] == 1
    page = console.sign_in(TOKENS["auditor"])  # reading logs needs no more than Read

    page.goto(f"{console.url}/jobs/sync/logs")
    rows = page.get_by_test_id("log-rows").locator("tbody tr")
    expect(rows.first).to_contain_text(renamed["userPrincipalName"])  # newest first
    filters = page.get_by_test_id("log-filters")
    filters.locator("select[name=action]").select_option("update")
    filters.locator("select[name=cycle]").select_option(incremental["run_id"])
    filters.locator("button[type=submit]").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("jobTitle")
    console.shot(page, "logs")
    rows.first.locator("a").first.click()
    expect(page.get_by_test_id("steps")).to_contain_text("export")
    modified = page.get_by_test_id("modified")
    expect(modified).to_contain_text("jobTitle")
    expect(modified).to_contain_text("Principal Engineer")
    console.shot(page, "log-row")
    page.go_back()

    # downloads carry every row the filters select, as the CLI writes them
    with page.expect_download() as csv_download:
        page.get_by_test_id("download-csv").click()
    text = Path(csv_download.value.path()).read_text("utf-8")
    assert csv_download.value.suggested_filename.endswith(".csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == [*LOG_COLUMNS, *LOG_JSON_COLUMNS]
    assert [(r["action"], r["sourceId"], r["cycleId"]) for r in table] == [
        ("update", renamed["id"], incremental["run_id"])
    ]
    assert json.loads(table[0]["modifiedProperties"])["jobTitle"]["new"] == "Principal Engineer"

    page.goto(f"{console.url}/jobs/sync/logs?action=skip")
    expect(rows.first).to_be_visible()
    with page.expect_download() as json_download:
        page.get_by_test_id("download-json").click()
    listed = json.loads(Path(json_download.value.path()).read_text("utf-8"))
    cli = json.loads(env.cli("logs", "sync", "--action", "skip", "--json", check=True).stdout)
    assert {r["changeId"] for r in listed} == {r["changeId"] for r in cli}
    assert len(listed) == rows.count() > 0
    assert {r["action"] for r in listed} == {"skip"}

    # a bad filter or an unknown job is a readable message, not a stack trace
    page.goto(f"{console.url}/jobs/sync/logs?cycle=yesterday")
    expect(page.get_by_test_id("filter-error")).to_contain_text("cycle: must be a cycle id (a GUID")
    response = page.goto(f"{console.url}/jobs/nope")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_test_id("error-message")).to_have_text("Job 'nope' does not exist.")


def test_reader_sees_no_operate_buttons_and_forged_posts_change_nothing(console: Console) -> None:
    reader = console.sign_in(TOKENS["auditor"])
    expect(reader.locator(".role")).to_have_text("Read only")
    reader.goto(f"{console.url}/jobs/sync")
    expect(reader.get_by_test_id("state")).to_have_text("active")
    for action in ("operate", "pause", "resume", "trigger-incremental", "restart"):
        expect(reader.get_by_test_id(action)).to_have_count(0)
    console.shot(reader, "job-read-only")
    reader.goto(f"{console.url}/jobs/sync/provision?q=User")
    expect(reader.get_by_test_id("search-results")).to_be_visible()
    expect(reader.get_by_test_id("provision")).to_have_count(0)

    # the reader's own, valid CSRF token does not give them the operator's role
    refused = reader.request.post(
        f"{console.url}/jobs/sync/pause", form={"csrf": csrf_of(reader)}, max_redirects=0
    )
    assert refused.status == 403
    assert "TenantSync.Operate" in refused.text()

    # an operator's session without the form's token (a forged request) is refused too
    operator = console.sign_in(TOKENS["ops"])
    for form in ({}, {"csrf": "x" * 43}, {"csrf": csrf_of(reader)}):
        forged = operator.request.post(f"{console.url}/jobs/sync/pause", form=form, max_redirects=0)
        assert forged.status == 403, form
        assert "CSRF token is missing or wrong" in forged.text()
    forged_out = operator.request.post(f"{console.url}/signout", form={}, max_redirects=0)
    assert forged_out.status == 403
    assert console.status()["code"] == "Active"  # nothing was paused
    operator.reload()
    expect(operator.get_by_test_id("signed-in-user")).to_have_text("ops")  # still signed in
    # with the token, the same request works
    done = operator.request.post(
        f"{console.url}/jobs/sync/pause", form={"csrf": csrf_of(operator)}, max_redirects=0
    )
    assert done.status == 303
    assert console.status()["code"] == "Paused"


def test_provision_on_demand_finds_a_user_and_shows_the_steps(console: Console) -> None:
    env = console.env
    newcomer = {
        "userPrincipalName": "newcomer@contoso.onmicrosoft.com",
        "mail": "newcomer@contoso.com",
        "mailNickname": "newcomer",
        "displayName": "Nadia Newcomer",
        "accountEnabled": True,
        "passwordProfile": {"password": "Passw0rd!x", "forceChangePasswordNextSignIn": False},
    }
    graph = env.source()
    created = graph.post("/users", json=newcomer)
    created.raise_for_status()
    user_id = created.json()["id"]
    group = env.seed["tenants"][0]["groups"][0]["id"]
    graph.post(
        f"/groups/{group}/members/$ref",
        json={"@odata.id": f"{env.sandbox.url}/v1.0/directoryObjects/{user_id}"},
    ).raise_for_status()

    page = console.sign_in(TOKENS["ops"])
    page.goto(f"{console.url}/provision")
    expect(page).to_have_url(f"{console.url}/jobs/sync/provision")
    for query in ("Nadia", "newcomer@contoso.com", "NEWCOMER@contoso.onmicrosoft", user_id):
        page.fill("#q", query)
        page.click("form[role=search] button")
        expect(page.get_by_test_id("search-results").locator("tbody tr")).to_have_count(1)
    page.fill("#q", "nobody-by-that-name")
    page.click("form[role=search] button")
    expect(page.get_by_test_id("no-match")).to_be_visible()
    page.fill("#q", "Nadia")
    page.click("form[role=search] button")
    page.get_by_test_id("provision").click()
    result = page.get_by_test_id("provision-result")
    expect(result).to_contain_text("create")
    expect(result).to_contain_text("success")
    console.shot(page, "provisioned")
    steps = [s.split()[1] for s in page.get_by_test_id("steps").locator("li").all_inner_texts()]
    assert steps[:4] == ["import", "scoping", "matching", "processing"], steps
    assert "export" in steps[4:], steps
    invited = [u for u in env.target_users() if u.get("mail") == newcomer["mail"]]
    assert len(invited) == 1
    assert invited[0]["userPrincipalName"].endswith(f"#EXT#@{TARGET.domain}")


@pytest.mark.world(users=60)
def test_the_overview_shows_a_running_cycle_live(console: Console, tmp_path: Path) -> None:
    env = console.env
    page = console.sign_in(TOKENS["auditor"])
    bar = page.locator("[data-progress-job=sync]")
    expect(bar).to_be_hidden()
    env.sandbox.set_faults(latency_ms=1000)  # each Graph call takes a second: the cycle, seconds
    command = [sys.executable, "-m", "worker", "run", "sync", "--full", "--config", str(env.config)]
    with background(command, tmp_path / "run.log") as cycle:
        # the page is not reloaded: its script finds the cycle and shows its progress
        expect(bar).to_be_visible(timeout=30_000)
        expect(bar.get_by_test_id("progress-text")).to_contain_text("objects read")
        expect(bar.locator(".phases li.now")).to_have_count(1)
        console.shot(page, "overview-running", full_page=False)
        wait_for(lambda: cycle.poll() is not None, "the cycle to finish", DEADLINE_S)
        assert cycle.returncode == 0, (tmp_path / "run.log").read_text()
    env.sandbox.set_faults(latency_ms=0)
    # when it ends, the page reloads itself with the cycle's result
    expect(bar).to_be_hidden(timeout=30_000)
    expect(page.locator("[data-job=sync]")).to_contain_text("full ·")


# Entra ID sign-in, with the sandbox playing Entra ------------------------------------------------


def entra_world_seed() -> dict[str, Any]:
    """The usual world, whose source tenant also holds the operator service's apps: the API
    (api://tenant-sync, app roles assigned to an operator and a reader), the console's app
    registration (a secret, loopback redirect URIs) and the two people."""
    seed = build_world_seed(users=12)
    contoso = seed["tenants"][0]
    extra = apps.operator_service_apps(SOURCE.domain)
    contoso["clients"] += extra["clients"]
    contoso["users"] += extra["users"]
    contoso["apis"] = extra["apis"]
    return seed


def entra_sign_in(console: Console, login: str, password: str | None) -> Page:
    # The sandbox's TLS certificate comes from its own CA, which this browser does not know.
    context = console.browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(UI_TIMEOUT_MS)
    console.contexts.append(context)
    context.on(
        "request",
        lambda r: console.callbacks.append(r.url) if "/auth/callback?" in r.url else None,
    )
    page = context.new_page()
    page.goto(f"{console.url}/jobs/sync")
    expect(page).to_have_url(f"{console.url}/signin?next=%2Fjobs%2Fsync")
    expect(page.locator("#token")).to_have_count(0)  # no token to paste: Entra ID only
    page.get_by_test_id("entra-signin").click()
    authorize = f"{console.env.sandbox.url}/{SOURCE.tenant_id}/oauth2/v2.0/authorize"
    expect(page).to_have_url(re.compile("^" + re.escape(authorize)))
    page.fill("#login", login)
    if password is not None:
        page.fill("#passwd", password)
    page.click("#submit")
    return page


@pytest.fixture
def entra_console(browser: Browser, tmp_path: Path) -> Iterator[Console]:
    with sync_world(tmp_path, entra_world_seed()) as env:
        env.run_json("--full")
        config = with_api(
            env.config,
            tokens={},
            auth={
                "tenant": SOURCE.name,
                "audience": apps.API_AUDIENCE,
                "app_id": apps.API_APP_ID,
                "client_id": apps.CONSOLE_CLIENT,
                "client_secret": apps.CONSOLE_SECRET,
            },
        )
        config.write_text(config.read_text().replace("level: WARNING", "level: INFO"))
        with running_serve(config, tmp_path / "serve.log") as serve:
            handle = Console(env, serve, browser, screenshot_dirs(tmp_path))
            try:
                yield handle
            finally:
                handle.close()
            output = serve.output()
            assert handle.cookies
            for secret in [*handle.cookies, *handle.codes, apps.CONSOLE_SECRET]:
                assert secret not in output, "a code, secret or session cookie was logged"


def test_people_sign_in_with_entra_id_and_act_under_their_upn(entra_console: Console) -> None:
    console = entra_console
    operator_upn = f"operator@{SOURCE.domain}"
    page = entra_sign_in(console, operator_upn, apps.OPERATOR_PASSWORD)
    # back on the page first asked for, signed in as the operator
    expect(page).to_have_url(f"{console.url}/jobs/sync")
    expect(page.get_by_test_id("signed-in-user")).to_have_text(operator_upn)
    expect(page.locator(".role")).to_have_text("Operator")
    (cookie,) = page.context.cookies(console.url)
    assert (cookie["name"], cookie["secure"], cookie["httpOnly"]) == (
        "__Host-tenant-sync-session",
        True,
        True,
    )
    page.get_by_test_id("pause").click()
    expect(page.get_by_test_id("state")).to_have_text("paused")
    page.get_by_test_id("resume").click()
    expect(page.get_by_test_id("state")).to_have_text("active")
    page.goto(f"{console.url}/")
    console.shot(page, "overview-entra", full_page=False)
    page.goto(f"{console.url}/audit?job=sync")
    trail = page.get_by_test_id("audit-rows").locator("tbody tr").all_inner_texts()
    assert [row.split("\t")[1:4] for row in trail[:2]] == [
        [f"{operator_upn} user", "console", "resume"],
        [f"{operator_upn} user", "console", "pause"],
    ]

    # the authorization code was good for one sign-in: its callback again signs nobody in
    (callback,) = console.callbacks
    console.codes.append(parse_qs(urlsplit(callback).query)["code"][0])
    stranger = console.context().new_page()
    again = stranger.goto(callback)
    assert again is not None
    assert again.status == 400
    expect(stranger.get_by_test_id("signin-error")).to_contain_text("sign in again")
    assert stranger.context.cookies() == []

    # the reader signs in too, and sees no operate buttons
    reader = entra_sign_in(console, f"reader@{SOURCE.domain}", apps.READER_PASSWORD)
    expect(reader.get_by_test_id("signed-in-user")).to_have_text(f"reader@{SOURCE.domain}")
    expect(reader.locator(".role")).to_have_text("Read only")
    expect(reader.get_by_test_id("pause")).to_have_count(0)

    # someone of the tenant with neither role is told so, and gets no session
    nobody = entra_sign_in(console, f"user3@{SOURCE.domain}", None)
    expect(nobody.get_by_test_id("error-message")).to_contain_text(
        f"You are signed in as user3@{SOURCE.domain}, who has no tenant-sync role"
    )
    assert not [c for c in nobody.context.cookies() if c["name"].endswith("session")]
    console.codes += [parse_qs(urlsplit(url).query)["code"][0] for url in console.callbacks[1:]]
