"""One request id from the installed API to the operator: the caller's `X-Request-Id` comes
back in the answer, is written on the PravahJob, and is named by the operator's Events and
JSON log records about that job."""

from __future__ import annotations

import json
import uuid

import pytest

from api.helpers import CLAIMS, STATS_SPEC, DeployedApi, service_account
from e2e.harness import get_json, wait_for
from pravah.logs import REQUEST_ID_ANNOTATION

HEADER = "X-Request-Id"


def operator_records(cluster) -> list[dict]:
    """The operator's JSON log records (`kubectl logs --prefix` lines: `[pod/...] {...}`)."""
    lines = (line.split("] ", 1)[-1] for line in cluster.operator.log().splitlines())
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.parametrize("cluster", [{"log_format": "json"}], indirect=True)
def test_request_id_reaches_the_job_its_events_and_the_operator_log(cluster):
    token = service_account(cluster.control_plane, cluster.namespace, "tracer",
                            ["get", "list", "watch", "create", "patch", "delete"], CLAIMS)
    request_id = str(uuid.uuid4())
    answer = DeployedApi(cluster.control_plane).request(
        "POST", "/jobs", token, json={**STATS_SPEC, "name": "traced", "namespace": cluster.namespace},
        headers={HEADER: request_id})
    assert answer.status_code == 201, answer.text
    assert answer.headers[HEADER] == request_id
    job_id = answer.json()["id"]
    assert cluster.get("traced")["metadata"]["annotations"][REQUEST_ID_ANNOTATION] == request_id

    def traced_events() -> list[dict]:
        events = get_json(cluster.control_plane, "events", "-n", cluster.namespace,
                          "--field-selector", f"involvedObject.uid={job_id}")["items"]
        return [event for event in events if f"(request {request_id})" in event["message"]]

    wait_for(traced_events, 120, f"an Event of job {job_id} naming request {request_id}", 0.5)

    def traced_records() -> list[dict]:
        return [record for record in operator_records(cluster) if record.get("request_id") == request_id]

    records = wait_for(traced_records, 60, f"operator log records naming request {request_id}", 0.5)
    assert {(record["job"], record["namespace"]) for record in records} == {("traced", cluster.namespace)}, records
