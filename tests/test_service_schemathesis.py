"""Property-based API tests from the app's own OpenAPI document (schemathesis): for every
operation, generated requests with an admin key never get a 5xx, and every response matches
its documented schema and content type.

The app is `create_app` plus the routers still being wired into it (as in the auth tests),
over the scenario bank; the job-starting POSTs are left out (each would queue a real job).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from test_service_auth import KEYS, bank, full_app  # noqa: F401 (bank: a fixture used here)
from test_service_auth import settings as service_settings

from api.security import Role
from kg.sqlite_store import SQLiteStore
from risk.limits import BankParameters

ADMIN = {"X-API-Key": KEYS[Role.ADMIN]}


@pytest.fixture(scope="module")
def api_schema(
    bank: tuple[SQLiteStore, BankParameters],  # noqa: F811
) -> Iterator[schemathesis.schemas.BaseSchema]:
    store, params = bank
    app = full_app(
        store, params, service_settings(rate_limit_per_second=100_000, rate_limit_burst=100_000)
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield schema.exclude(method="POST", path_regex="^/v1/jobs/")
    app.state.jobs.shutdown()


def test_no_server_errors_and_responses_match_the_schema(
    api_schema: schemathesis.schemas.BaseSchema,
) -> None:
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=ADMIN,
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
            )

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    served = sum(
        sample.value
        for metric in api_schema.app.state.service.metrics.requests.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    assert operations > 10 and served >= operations * 5
    assert failures == [], "\n\n".join(failures)
