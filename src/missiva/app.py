"""FastAPI factory: mounts every router and the shared plumbing, nothing else."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from missiva import __version__, runtime
from missiva.audience import api as audience_api
from missiva.audience import pages as audience_pages
from missiva.compat.mailup import frontend as mailup_frontend
from missiva.config import Settings
from missiva.delivery import api as delivery_api
from missiva.delivery.sms import api as sms_api
from missiva.events import api as events_api
from missiva.inbound.providers import api as inbound_api
from missiva.messages import api as messages_api
from missiva.reports import api as reports_api
from missiva.reports import endpoints as tracking_endpoints
from missiva.sync import api as sync_api
from missiva.tenancy import api as tenancy_api
from missiva.web import problems
from missiva.web.idempotency import IdempotencyMiddleware

_FRONTEND = re.compile(r"^/+frontend/", re.IGNORECASE)


class FrontendPathMiddleware:
    """MailUp clients write `//frontend/...` or `/Frontend/...`; route them all to `/frontend/`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if _FRONTEND.match(path):
                scope = dict(scope, path=_FRONTEND.sub("/frontend/", path, count=1))
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The Missiva web application for `settings` (default: the environment's)."""
    if settings is not None:
        runtime.configure(settings)
    import missiva.jobs  # noqa: F401  - registers the listeners that queue background work

    app = FastAPI(
        title="Missiva API",
        version=__version__,
        description="Self-hosted email and SMS marketing built around integration. "
        "Native REST API under /api/v1; MailUp frontend calls under /frontend.",
    )
    problems.install(app)
    app.include_router(tenancy_api.router)
    app.include_router(audience_api.router)
    app.include_router(audience_pages.router)
    app.include_router(mailup_frontend.router)
    app.include_router(tracking_endpoints.router)
    app.include_router(reports_api.router)
    app.include_router(messages_api.router)
    app.include_router(delivery_api.router)
    app.include_router(delivery_api.pages)
    app.include_router(events_api.router)
    app.include_router(sms_api.router)
    app.include_router(sms_api.public)
    app.include_router(inbound_api.router)
    app.include_router(inbound_api.public)
    app.include_router(sync_api.router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """200 when the database answers, 503 otherwise."""
        try:
            with runtime.database().engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ok"})

    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(FrontendPathMiddleware)
    return app
