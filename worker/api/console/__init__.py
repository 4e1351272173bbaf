"""The web console of `tenant-sync serve` (docs/console.md).

Server-rendered pages (Jinja2 templates, one CSS file, a few lines of script for the progress
bars; nothing from a CDN) over the same `Operations` as the API. People sign in with Entra ID or,
with static tokens only, by pasting a token; a server-side session in Redis remembers them.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .web import HERE


def mount(app: FastAPI) -> None:
    """Add the console's pages, forms, sign-in and static files to `app`, and let the API's
    `principal` accept a console session (reads; writes only with its CSRF token)."""
    from . import access, actions, onboarding, pages
    from .web import console

    app.include_router(access.router)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(onboarding.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.state.session_principal = lambda request: console(request).principal(request)
