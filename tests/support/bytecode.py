"""Bytecode for the project's own sources, written once before the tests start their processes.

The tests start hundreds of Python processes from this checkout: the sandbox for every test
world, `tenant-sync` for every CLI call, `serve`, Celery workers. Where PYTHONDONTWRITEBYTECODE
is set (CI's containers set it) no process ever caches what it compiled, so each one compiled
`worker/` or `tenant_sync_sandbox/` from source again: about 0.1-0.2 s of CPU a process on a
2-core runner. The flag only stops writing; an up-to-date `__pycache__` is still read. So the
test session compiles the packages once (a second, on a clean clone; nothing when they are
current), and every process it starts reads the result.
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("worker", "tenant_sync_sandbox", "tenant_sync_demo")


def compile_packages() -> None:
    """Write the packages' missing or stale `.pyc` files (when Python would not do it itself)."""
    if not sys.dont_write_bytecode:
        return  # every process caches what it compiles on its own
    for package in PACKAGES:
        compileall.compile_dir(REPO_ROOT / package, quiet=2)
