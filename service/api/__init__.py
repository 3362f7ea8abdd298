"""The REST API (FastAPI) under /api: problems, runs, programs, lineage, analytics, events.

The top layer beside cli/: may import runs, controller and everything below; nothing but cli/
imports it. app.create_app builds the application."""
