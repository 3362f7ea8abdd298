"""The FastAPI app: routers under /api, OpenAPI at /docs, one error body, the web UI at / if built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from service.api import errors
from service.api.routes import (
    analytics,
    auth,
    events,
    lineage,
    models,
    ops,
    problems,
    programs,
    runs,
    ui_extra,
)
from service.api.uploads import MAX_UPLOAD_BYTES
from service.config import Settings
from service.db import Database

WEB = Path(__file__).resolve().parents[1] / "web"


def create_app(db: Database, settings: Settings,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, web_dir: Path | None = WEB) -> FastAPI:
    """Returns the API app over db; serves web_dir at / when that folder exists (the UI hook)."""
    app = FastAPI(title="evoforge", version="0.1.0", docs_url="/docs",
                  openapi_url="/api/openapi.json",
                  description="LLM-driven evolutionary program search as a service. Send "
                  "`Authorization: Bearer <token>`; tokens come from `evoforge tokens create`.")
    app.state.db = db
    app.state.settings = settings
    app.state.max_upload_bytes = max_upload_bytes
    errors.install(app)
    for module in (problems, runs, programs, lineage, analytics, events, auth, models, ui_extra):
        app.include_router(module.router, prefix="/api")
    ops.install(app, db, settings)
    app.include_router(ops.router)  # /metrics, /api/ready, /api/fleet

    @app.get("/api/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Returns ok when the database answers (no token needed)."""
        with db.session() as s:
            s.execute(text("SELECT 1"))
        return {"status": "ok"}

    if web_dir is not None and web_dir.is_dir():
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app
