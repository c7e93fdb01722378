"""Property-based tests of every API operation, generated from its OpenAPI schema.

schemathesis sends schema-valid and schema-invalid requests to a broker of this
module's own (it creates and deletes queues and sessions at random) and checks that
no request makes the server fail (no 5xx) and that responses match the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from admin_support import admin_url
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from conftest import Broker, BrokerLauncher


@pytest.fixture(scope="module")
def own_broker(broker_launcher: BrokerLauncher) -> Iterator[Broker]:
    b = broker_launcher.start()
    yield b
    broker_launcher.stop(b)


@pytest.fixture(scope="module")
def api_schema(own_broker: Broker) -> Any:
    return schemathesis.openapi.from_url(admin_url(own_broker) + "/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_never_fails(case: Any) -> None:
    case.call_and_validate()
