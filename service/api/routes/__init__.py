"""The API's routers, one module per resource; each may import api.deps, api.schemas, api.errors
and the service packages below api (never cli)."""
