"""The sandbox: a Microsoft Graph v1.0 + Entra token endpoint emulator for demos and tests.

A development tool beside the worker, not part of its runtime (the production image does not hold
it). It stands alone: of the worker it reads only Graph's published schema (`worker.schema`), so
it answers as Graph would, not as the worker expects. Entry points:
`tenant_sync_sandbox.server.serve()`, `python -m tenant_sync_sandbox` and, in a development
install, `tenant-sync sandbox serve`.
"""
