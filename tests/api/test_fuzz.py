"""Schemathesis against /openapi.json: no server errors, and every response matches its schema.

The API runs in-process (standalone mode, an admin token) against the real API server and
PostgreSQL. Bounded: PRAVAH_FUZZ_EXAMPLES examples per operation (default 8), positive and
negative cases.
"""

from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.helpers import ApiServer, settings_for

EXAMPLES = int(os.environ.get("PRAVAH_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_api(control_plane, postgres, crd):
    name = f"api_fuzz_{uuid.uuid4().hex[:8]}"
    dsn = postgres.create_database(name)
    namespace = f"api-fuzz-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", namespace)
    server = ApiServer(settings_for(control_plane, dsn, "standalone", api_default_namespace=namespace)).start()
    server.headers = {"Authorization": f"Bearer {server.admin_token()}"}
    yield server
    server.stop()
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    postgres.drop_database(name)


def test_openapi_conformance(fuzz_api):
    """Every operation, positive and negative cases; all failures reported together."""
    schema = schemathesis.openapi.from_url(f"{fuzz_api.url}/openapi.json")
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @given(case=strategy)
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            def check(case):
                case.call_and_validate(base_url=fuzz_api.url, headers=fuzz_api.headers, checks=CHECKS,
                                       timeout=30)

            try:
                check()
            except Unsatisfiable:  # nothing to negate (no parameters, no body)
                continue
            except Exception as exc:  # noqa: BLE001 - collect, then fail with all of them
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
            tested += 1
    print(f"\nschemathesis: {tested} operation/mode pairs, up to {EXAMPLES} examples each, "
          f"{len(failures)} failing")
    assert not failures, "\n\n".join(failures)
