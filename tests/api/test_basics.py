"""Health, configuration, the OpenAPI document, metrics and the one error shape."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

from api.helpers import STATS_SPEC, assert_error


def test_health_readiness_metrics_and_docs(standalone_api):
    api = standalone_api
    assert api.request("GET", "/healthz").json() == {"status": "ok"}
    ready = api.request("GET", "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["kubernetes"]["ok"] and ready.json()["checks"]["postgresql"]["ok"]
    document = api.request("GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "PravahJobSpec" in document["components"]["schemas"]
    assert {"/jobs", "/jobs/{id}", "/jobs/{id}/results", "/jobs/{id}/events", "/jobs/{id}/logs", "/config",
            "/healthz", "/readyz", "/metrics", "/auth/token", "/users"} <= set(document["paths"])
    assert "text/html" in api.request("GET", "/docs").headers["Content-Type"]
    metrics = api.request("GET", "/metrics").text
    assert "pravah_api_requests_total" in metrics and 'route="/readyz"' in metrics


def test_config_lists_operations_with_schemas_defaults_and_limits(standalone_api):
    config = standalone_api.request("GET", "/config").json()
    operations = {op["type"]: op for op in config["operations"]}
    assert set(operations) == {"stats", "count", "checksum", "grep", "convert"}
    assert operations["checksum"]["defaults"] == {"algorithm": "sha256", "decompressed": False}
    assert operations["grep"]["options"]["required"] == ["pattern"]
    assert config["limits"]["parallelism"] == {"minimum": 1, "maximum": 1000}
    assert config["authMode"] == "standalone"


def test_errors_have_one_shape(standalone_api, namespace):
    api = standalone_api
    token = api.admin_token()
    assert_error(api.request("GET", "/jobs"), 401)
    assert_error(api.request("GET", "/jobs", "not-a-token"), 401)
    assert_error(api.request("POST", "/jobs", token, data=b"{not json",
                             headers={"Content-Type": "application/json"}), 400)
    bad = {**STATS_SPEC, "namespace": namespace, "operation": {"type": "sort"}}
    assert_error(api.request("POST", "/jobs", token, json=bad), 422, "operation.type")
    bad = {**STATS_SPEC, "namespace": namespace, "parallelism": 0}
    assert "parallelism" in assert_error(api.request("POST", "/jobs", token, json=bad), 422)["field"]
    assert_error(api.request("POST", "/jobs", token, json={**STATS_SPEC, "nmae": "x"}), 422, "nmae")
    assert_error(api.request("GET", f"/jobs/{uuid.uuid4()}", token), 404)
    assert_error(api.request("GET", "/jobs/not-a-uuid", token), 404)
    assert_error(api.request("GET", "/nowhere", token), 404)
    assert_error(api.request("PUT", "/jobs", token, json={}), 405)
    huge = json.dumps({**STATS_SPEC, "include": ["x" * 1000] * 2000})
    assert_error(api.request("POST", "/jobs", token, data=huge, headers={"Content-Type": "application/json"}), 413)
    created = api.request("POST", "/jobs", token, json={**STATS_SPEC, "namespace": namespace, "name": "twice"})
    assert created.status_code == 201, created.text
    assert_error(api.request("POST", "/jobs", token, json={**STATS_SPEC, "namespace": namespace, "name": "twice"}),
                 409)
    assert_error(api.request("POST", "/jobs", token, json={**STATS_SPEC, "namespace": "no-such-namespace"}), 404,
                 "namespace")


def test_create_get_list_cancel_purge(standalone_api, namespace):
    api = standalone_api
    token = api.admin_token()
    answer = api.request("POST", "/jobs", token, json={**STATS_SPEC, "namespace": namespace, "name": "profile"})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["name"] == "profile" and job["namespace"] == namespace
    uuid.UUID(job["id"])
    assert answer.headers["Location"] == job["links"]["self"] == f"/jobs/{job['id']}"
    # The CR is what kubectl sees, with the spec as posted and the CRD's defaults filled in.
    cr = json.loads(api_kubectl(api, "get", "pravahjob", "profile", "-n", namespace, "-o", "json"))
    assert cr["metadata"]["uid"] == job["id"]
    assert cr["spec"]["operation"] == {"type": "stats", "format": "auto"}
    detail = api.request("GET", job["links"]["self"], token).json()
    assert detail["spec"]["source"] == STATS_SPEC["source"] and detail["timings"]["createdAt"]
    generated = api.request("POST", "/jobs", token, json={**STATS_SPEC, "namespace": namespace}).json()
    assert generated["name"].startswith("job-")
    listing = api.request("GET", f"/jobs?namespace={namespace}&limit=1", token).json()
    assert len(listing["items"]) == 1 and listing["next"]
    rest = api.request("GET", f"/jobs?namespace={namespace}&limit=1&continue={listing['next']}", token).json()
    assert len(rest["items"]) == 1 and rest["next"] is None
    assert {listing["items"][0]["id"], rest["items"][0]["id"]} == {job["id"], generated["id"]}
    assert api.request("GET", "/jobs?phase=Succeeded&namespace=" + namespace, token).json()["items"] == []
    cancelled = api.request("DELETE", job["links"]["self"], token)
    assert cancelled.status_code == 202, cancelled.text
    cr = json.loads(api_kubectl(api, "get", "pravahjob", "profile", "-n", namespace, "-o", "json"))
    assert cr["spec"]["suspend"] is True
    assert api.request("DELETE", job["links"]["self"] + "?purge=true", token).status_code == 204
    assert_error(api.request("GET", job["links"]["self"], token), 404)


def test_idempotency_key_returns_the_same_job(standalone_api, namespace):
    api = standalone_api
    token = api.admin_token()
    body = {**STATS_SPEC, "namespace": namespace}
    first = api.request("POST", "/jobs", token, json=body, headers={"Idempotency-Key": "k-1"})
    again = api.request("POST", "/jobs", token, json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and again.headers.get("Idempotent-Replayed") == "true"
    other = api.request("POST", "/jobs", token, json=body, headers={"Idempotency-Key": "k-2"})
    assert other.json()["id"] != first.json()["id"]
    changed = {**body, "include": ["**/*.tsv"]}
    assert_error(api.request("POST", "/jobs", token, json=changed, headers={"Idempotency-Key": "k-1"}), 409,
                 "Idempotency-Key")
    listing = api.request("GET", f"/jobs?namespace={namespace}", token).json()["items"]
    assert len(listing) == 2
    # Concurrent retries of one request create one job.
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: api.request("POST", "/jobs", token, json=body,
                                                      headers={"Idempotency-Key": "k-3"}), range(10)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(api.request("GET", f"/jobs?namespace={namespace}", token).json()["items"]) == 3


def api_kubectl(api, *args: str) -> str:
    import subprocess

    from pravah.localcluster import bins

    argv = [str(bins.k8s_bin_dir() / "kubectl"), f"--kubeconfig={api.settings.kubeconfig}", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
