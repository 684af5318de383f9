"""Schemathesis generates requests from the OpenAPI schema: no route answers with a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.serve.conftest import API_KEY, WAREHOUSE_WARNINGS

pytestmark = WAREHOUSE_WARNINGS


def test_openapi_generated_requests_never_get_5xx(api):
    url, _, _ = api
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            headers = {"X-API-Key": API_KEY} if case.method == "POST" else None
            response = case.call(base_url=url, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r:.200} -> "
                                f"{response.status_code} {response.text[:200]}")

        check()
    assert failures == []
