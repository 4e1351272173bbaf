"""The operator service (`tenant-sync serve`): web console, Graph-shaped HTTP API, /healthz.

One ASGI process. It reads the same configuration as the workers, shows state straight from
SQL and Redis (no Celery worker needed for that) and sends cycles to Celery like `trigger`.
"""
