"""FastAPI app: routers under /api, OpenAPI at /docs, one error body, the web UI at / if built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.routing import Match, Mount
from starlette.types import Scope

from service.api import errors
from service.api.policy import config_schemas
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
from service.db import Database
from service.settings import Settings

WEB = Path(__file__).resolve().parents[1] / "web"


class WebUI(Mount):
    """The UI's static files at /, leaving /api paths to the API: an API path asked with a method
    it lacks is a 405 naming the ones it has, an unknown one a 404 (the mount matches every path,
    and a full match would win over the API route's partial one)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Returns no match for /api paths, else what Mount returns."""
        if scope.get("path", "").startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)


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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_config(FastAPI.openapi(app), settings)  # FastAPI keeps it for next time
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if web_dir is not None and web_dir.is_dir():
        app.router.routes.append(WebUI("/", StaticFiles(directory=web_dir, html=True), name="web"))
    return app


def _document_config(openapi: dict[str, Any], settings: Settings) -> None:
    """Gives the run bodies' free-form `config` the schema of what this server accepts there."""
    components = openapi["components"]["schemas"]
    config = config_schemas(settings)
    if clash := set(config) & set(components):
        raise RuntimeError(f"OpenAPI components {sorted(clash)} are defined twice")
    components.update(config)
    for body in ("RunCreate", "RunResume"):
        components[body]["properties"]["config"] = {
            "$ref": "#/components/schemas/RunConfig",
            "description": "Config sections; they override the problem's [run] table."}
