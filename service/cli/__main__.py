"""`python -m service.cli` runs the evoforge command."""

from service.cli.app import app

app()
