"""Schemathesis against the app's own OpenAPI: no generated request may cause a server error."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.service.api.conftest import Api

EXAMPLES = 12


def test_no_generated_request_causes_a_server_error(api: Api) -> None:
    run_id = api.run(iterations=2)
    api.drive(run_id)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", api.client.app) \
        .exclude(path_regex=r".*/events$")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    statuses: list[int] = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            for headers in (api.h("alice"), api.h("admin"), {}):
                response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
                statuses.append(response.status_code)

        fuzz()
    assert 200 in statuses and 401 in statuses and 422 in statuses and max(statuses) < 500
