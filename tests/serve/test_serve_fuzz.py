"""Property-based fuzzing of the whole API from its OpenAPI schema: nothing a client sends
gets a 500, and every answer is JSON that the schema documents."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from recommender.serve import RatingsStore, Service, create_app  # noqa: E402
from recommender.serve.app import Policy  # noqa: E402
from recommender.serve.middleware import LOOPBACK_HOSTS  # noqa: E402

# Routes and schema only; the service is attached below. Schemathesis sends Host: testserver.
APP = create_app(policy=Policy(allowed_hosts=LOOPBACK_HOSTS + ("testserver",)))
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def attached_service(fitted, tmp_path_factory):
    data, lists, ratings = fitted
    store = RatingsStore(tmp_path_factory.mktemp("fuzz") / "store.sqlite3",
                         first_user_id=int(data.ratings.userId.max()))
    APP.state.service = Service(data, lists, ratings, store)
    yield
    store.close()


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_server_fail(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    assert response.headers["content-type"][0].startswith("application/json")
    # Whole numbers are read as digits only (docs/serving.md), stricter than JSON Schema's
    # integer, which admits 60.0: a 422 for "60.0" is the documented answer, not a failure.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
