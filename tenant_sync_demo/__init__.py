"""The demo (`tenant-sync demo`, `make demo`) and the `demo`/`sandbox` CLI commands.

A development tool beside the worker, not part of its runtime: it may import `worker` and the
sandbox (`tenant_sync_sandbox`); `worker` imports neither (pyproject's import contracts), and the
production image (deploy/Dockerfile) holds only `worker/`.
"""
