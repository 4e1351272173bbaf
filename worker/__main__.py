"""`python -m worker` is the `tenant-sync` command; `run` is also the console script's entry.

It launches the CLI (worker/cli.py) the quick way (docs/performance.md, "CLI start-up"): no
cyclic garbage collection while the CLI's modules load (they make many objects and free none:
every pass finds nothing), and what they made is then frozen out of the collector's sight for
the rest of the process; a command that only reads and prints (`cli_common.quick_exit`) ends its
process as soon as its output is flushed, without Python's teardown of every module loaded.
"""

from __future__ import annotations

import gc
import os
import sys


def run() -> None:
    gc.disable()
    try:
        from worker import cli, cli_common
    finally:
        # What the CLI's modules made lives as long as the process: frozen, the collections the
        # command's own objects trigger do not walk all of it again (docs/performance.md).
        gc.freeze()
        gc.enable()
    try:
        cli.main()
    except SystemExit as exc:
        if cli_common.quick_exit and (exc.code is None or isinstance(exc.code, int)):
            _exit_now(exc.code or 0)
        raise


def _exit_now(code: int) -> None:
    """End the process with `code` once its output is out; if it cannot be flushed (a closed
    pipe), return and let the usual exit deal with it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


if __name__ == "__main__":
    run()
