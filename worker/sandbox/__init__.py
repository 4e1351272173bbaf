"""The sandbox: a Microsoft Graph v1.0 + Entra token endpoint emulator for demos and tests.

It stands alone (no imports from the worker's domain, service or adapters). Entry points:
`worker.sandbox.server.serve()` and `python -m worker.sandbox`.
"""
