"""Console sessions on a real Redis server, and what a session cookie is worth to the API.

The session id lives only in the browser's cookie; Redis keys and values hold its SHA-256 and
who signed in. The API's `principal` takes a session for reads, and for writes only together
with the session's CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.console import with_api
from tests.support.world import write_config
from worker.api.app import Operator, Reader, create_app
from worker.api.auth import Principal
from worker.api.console.sessions import SessionStore, digest
from worker.bootstrap import Runtime, open_runtime
from worker.config import load_config

pytestmark = pytest.mark.integration

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about httpx's successor
    from fastapi.testclient import TestClient

OPERATOR = Principal("olivia@contoso.com", "user", frozenset({"TenantSync.Operate"}))
READER = Principal("rita@contoso.com", "user", frozenset({"TenantSync.Read"}))
COOKIE = "tenant-sync-session"  # a console reached over plain http on a non-loopback host


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    ca = tmp_path / "ca.pem"
    ca.write_text("unused")
    sandbox = SimpleNamespace(url="https://127.0.0.1:9", ca_path=ca)  # never called here
    config_path = write_config(tmp_path / "tenant-sync.yaml", sandbox, tmp_path / "state")
    with_api(config_path, tokens={"ci": ("ci-token", "TenantSync.Read")}, session_ttl="30m")
    opened = open_runtime(load_config(config_path))
    try:
        yield opened
    finally:
        opened.close()
        from worker.adapters.state.embedded_redis import EmbeddedRedis

        EmbeddedRedis(tmp_path / "state").stop()


def keys_and_values(runtime: Runtime) -> str:
    found = []
    for key in runtime.redis.scan_iter("tenant-sync:console:*"):
        found.append(key.decode())
        value = runtime.redis.get(key)
        found.append(value.decode() if value else "")
    return "\n".join(found)


def test_a_session_is_stored_under_its_ids_digest_and_expires_with_session_ttl(
    runtime: Runtime,
) -> None:
    store = SessionStore(runtime.redis, runtime.config.api.session_ttl)
    session_id, csrf = store.create(OPERATOR, "entra")
    stored = keys_and_values(runtime)
    assert f"tenant-sync:console:session:{digest(session_id)}" in stored
    assert session_id not in stored
    ttl = runtime.redis.ttl(f"tenant-sync:console:session:{digest(session_id)}")
    assert 30 * 60 - 5 <= ttl <= 30 * 60
    found = store.get(session_id)
    assert found is not None
    assert (found.principal.name, found.principal.roles) == (OPERATOR.name, OPERATOR.roles)
    assert (found.csrf, found.via) == (csrf, "entra")
    assert found.principal.via == "console"  # its actions are audited as the console's
    assert store.get(session_id + "x") is None
    assert store.get(None) is None

    store.flash(found, "ok", "done")
    popped = store.pop_flash(found)
    assert popped is not None
    assert popped.text == "done"
    assert store.pop_flash(found) is None  # one page only

    store.delete(found)
    assert store.get(session_id) is None
    assert keys_and_values(runtime) == ""


def test_a_sign_in_in_progress_is_good_for_one_try(runtime: Runtime) -> None:
    store = SessionStore(runtime.redis, runtime.config.api.session_ttl)
    flow = {"state": "s", "code_verifier": "v", "auth_uri": "https://login.example/authorize"}
    pending_id, csrf = store.begin_signin("/jobs/sync", flow)
    assert pending_id not in keys_and_values(runtime)
    assert 0 < runtime.redis.ttl(f"tenant-sync:console:signin:{digest(pending_id)}") <= 600
    taken = store.take_signin(pending_id)
    assert taken is not None
    assert (taken.next_path, taken.flow, taken.csrf) == ("/jobs/sync", flow, csrf)
    assert store.take_signin(pending_id) is None


@pytest.fixture
def client(runtime: Runtime) -> Iterator[tuple[TestClient, SessionStore]]:
    app: FastAPI = create_app(runtime.config, runtime)

    # Two routes the way the API declares them, to see what a session gives them.
    @app.get("/probe")
    def read(who: Any = Reader) -> dict[str, str]:
        return {"name": who.name}

    @app.post("/probe")
    def write(who: Any = Operator) -> dict[str, str]:
        return {"name": who.name}

    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client, SessionStore(runtime.redis, runtime.config.api.session_ttl)


def test_the_api_takes_a_session_for_reads_and_for_writes_only_with_its_csrf_header(
    client: tuple[TestClient, SessionStore],
) -> None:
    http, store = client
    session_id, csrf = store.create(OPERATOR, "entra")
    assert http.get("/probe").status_code == 401
    http.cookies.set(COOKIE, session_id)
    assert http.get("/probe").json() == {"name": OPERATOR.name}
    assert http.post("/probe").status_code == 401  # a cookie alone: no
    assert http.post("/probe", headers={"X-CSRF-Token": "nope"}).status_code == 401
    good = http.post("/probe", headers={"X-CSRF-Token": csrf})
    assert good.json() == {"name": OPERATOR.name}
    # a bearer token still wins over a session
    bearer = http.get("/probe", headers={"Authorization": "Bearer ci-token"})
    assert bearer.json() == {"name": "ci"}
    reader_id, reader_csrf = store.create(READER, "token")
    http.cookies.set(COOKIE, reader_id)
    weak = http.post("/probe", headers={"X-CSRF-Token": reader_csrf})
    assert weak.status_code == 403
    assert weak.json()["error"]["code"] == "Authorization_RequestDenied"


def test_pages_send_strangers_to_sign_in_and_refuse_forms_without_a_session(
    client: tuple[TestClient, SessionStore],
) -> None:
    http, store = client
    page = http.get("/jobs/sync/logs?action=update")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=%2Fjobs%2Fsync%2Flogs%3Faction%3Dupdate"
    signin = http.get("/signin")
    assert signin.status_code == 200
    assert "Content-Security-Policy" in signin.headers
    assert "not protected in transit" in signin.text  # plain http to a non-loopback host
    assert http.post("/jobs/sync/pause", data={"csrf": "x"}).headers["location"] == (
        "/signin?next=%2F"
    )
    session_id, csrf = store.create(OPERATOR, "token")
    http.cookies.set(COOKIE, session_id)
    assert http.get("/jobs/sync").status_code == 200
    assert http.get("/jobs/missing").status_code == 404
    bad = http.post("/jobs/sync/trigger", data={"csrf": csrf, "mode": "sometimes"})
    assert bad.status_code == 400
    assert "mode must be incremental or full" in bad.text


def test_without_redis_a_page_says_so(
    client: tuple[TestClient, SessionStore], tmp_path: Path
) -> None:
    from worker.adapters.state.embedded_redis import EmbeddedRedis

    http, store = client
    session_id, _ = store.create(OPERATOR, "token")
    http.cookies.set(COOKIE, session_id)
    assert http.get("/jobs/sync").status_code == 200
    EmbeddedRedis(tmp_path / "state").stop()
    page = http.get("/jobs/sync")
    assert page.status_code == 503
    assert "cannot reach its Redis server" in page.text
