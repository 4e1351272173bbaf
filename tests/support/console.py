"""Test harness for the console: `tenant-sync serve` as a real process, and Debian's Chromium
driven by Playwright (never a downloaded browser).

    config = with_api(env.config, tokens={"ops": (OPERATOR_TOKEN, "TenantSync.Operate")})
    with running_serve(config, tmp_path / "serve.log") as serve:   # serve.url, serve.output()
        page = browser.new_context().new_page()

Each browser test module takes its `browser` from `chromium()` (module-scoped: Playwright's
sync API keeps an event loop in the thread while it runs, which other tests must not inherit).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tenant_sync_demo.demo import background

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_CHROMIUM = (
    "Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium "
    "(.ci/run does; Playwright's own browser downloads are never used)"
)
REPO_ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 60.0
LISTENING_RE = re.compile(r"listening on (http://\S+?:\d+)")


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, closed after the block (a playwright Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def with_api(config: Path, *, tokens: dict[str, tuple[str, str]], **api: Any) -> Path:
    """The config file with an `api:` section: static tokens (name -> (token, role)), stored
    as their SHA-256, and any other api keys."""
    data = yaml.safe_load(config.read_text())
    data["api"] = {
        **api,
        "auth": {
            **api.pop("auth", {}),
            "tokens": [
                {"name": name, "sha256": sha256(token), "role": role}
                for name, (token, role) in tokens.items()
            ],
        },
    }
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@dataclass
class ServeHandle:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        """Everything the service printed and logged so far."""
        return self.log.read_text("utf-8", errors="replace")


@contextmanager
def running_serve(config: Path, log: Path) -> Iterator[ServeHandle]:
    """`tenant-sync serve --port 0` on loopback; its URL is read from what it prints."""
    command = [sys.executable, "-m", "worker", "serve", "--port", "0", "--config", str(config)]
    with background(command, log, env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        deadline = time.monotonic() + START_DEADLINE_S
        url = None
        while url is None:
            found = LISTENING_RE.search(log.read_text("utf-8", errors="replace"))
            if found:
                url = found.group(1)
                break
            if process.poll() is not None:
                raise AssertionError(f"serve exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        while httpx.get(f"{url}/healthz", timeout=5).status_code != 200:
            time.sleep(0.1)  # pragma: no cover - it listens before it prints
        yield ServeHandle(url=url, log=log, process=process)


def screenshot_dirs(tmp_path: Path) -> list[Path]:
    """Where screenshots go: the test's temp dir, and bench-results/console/ when the
    repository has a bench-results/ directory."""
    dirs = [tmp_path / "screenshots"]
    bench = REPO_ROOT / "bench-results"
    if bench.is_dir():
        dirs.append(bench / "console")
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    return dirs


def save_screenshot(page: Any, dirs: list[Path], name: str, *, full_page: bool = True) -> Path:
    first = dirs[0] / f"{name}.png"
    page.screenshot(path=str(first), full_page=full_page)
    for directory in dirs[1:]:
        shutil.copyfile(first, directory / first.name)
    return first
