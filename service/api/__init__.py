"""The REST API (FastAPI) under /api: problems, runs, programs, lineage, analytics, events."""

from service.api.app import create_app

__all__ = ["create_app"]
