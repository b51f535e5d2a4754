"""Jobs over REST end to end, and the `pravah` client commands.

The end-to-end test runs the real operator (the e2e `cluster` fixture) and needs the Rust
engine (`pravah_engine`) in the runner pods: a job created over REST runs to Succeeded and
its result, read over REST, equals that of the same job applied with kubectl.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import click
import yaml
from click.testing import CliRunner

from api.helpers import CLAIMS, ApiServer, DeployedApi, assert_error, service_account, settings_for
from e2e.harness import ROOT
from pravah.client_cli import Client, register
from pravah.tenancy import TenancySettings

EXAMPLE = ROOT / "examples" / "stats-volume.yaml"
ALL_VERBS = ["get", "list", "watch", "create", "patch", "delete"]


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """What must agree between two runs over the same files (output locations left out)."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if k not in ("manifest", "outputs")}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, float):
            return float(f"{value:.9g}")
        return value

    return {key: walk(document[key]) for key in ("operation", "files", "bytes", "errors", "result")}


def cli() -> click.Group:
    group = click.Group("pravah")
    register(group)
    return group


def invoke(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli(), list(args), env=env, catch_exceptions=False)


def test_rest_job_runs_and_matches_kubectl(cluster, sample_data, tmp_path):
    manifest = yaml.safe_load(EXAMPLE.read_text())
    token = service_account(cluster.control_plane, cluster.namespace, "pipeline", ALL_VERBS, CLAIMS)
    api = DeployedApi(cluster.control_plane)
    spec = copy.deepcopy(manifest["spec"])
    spec["output"] = {"volume": {"claimName": "results", "path": "pravah-out/rest-profile"}}
    created = api.request("POST", "/jobs", token, json={**spec, "name": "rest-profile",
                                                        "namespace": cluster.namespace})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    cluster.apply(EXAMPLE)  # the same job through kubectl

    # `pravah watch` follows the live progress (SSE) until the job ends.
    env = {"PRAVAH_API_URL": api.url, "PRAVAH_TOKEN": token}
    watched = invoke(env, "watch", job_id)
    assert watched.exit_code == 0, watched.output + json.dumps(cluster.get("rest-profile").get("status"))
    assert "Succeeded" in watched.output

    kubectl_job = cluster.wait_phase("sales-profile")
    detail = api.request("GET", f"/jobs/{job_id}", token).json()
    assert detail["phase"] == "Succeeded" and detail["progress"]["percent"] == 100
    assert detail["timings"]["durationSeconds"] is not None and detail["errors"]["count"] >= 0
    rest_result = api.request("GET", f"/jobs/{job_id}/results", token)
    assert rest_result.status_code == 200, rest_result.text
    via_rest = api.request("GET", f"/jobs/{kubectl_job['metadata']['uid']}/results", token).json()
    on_volume = json.loads((cluster.results / "pravah-out" / "sales-profile" / "result.json").read_text())
    assert comparable(rest_result.json()) == comparable(via_rest) == comparable(on_volume)

    # A finished job's stream ends at once; its logs come from the archive.
    events = asyncio.run(collect(Client(api.url, token), f"/jobs/{job_id}/events"))
    assert [event for event, _ in events][-1] == "end" and events[-1][1]["phase"] == "Succeeded"
    logs = api.request("GET", f"/jobs/{job_id}/logs", token).json()
    assert logs["source"] in ("pods", "archive") and logs["entries"]
    assert_error(api.request("DELETE", f"/jobs/{job_id}", token), 409)  # already finished
    out = tmp_path / "result.json"
    assert invoke(env, "results", job_id, "-o", str(out)).exit_code == 0
    assert comparable(json.loads(out.read_text())) == comparable(on_volume)


async def collect(client: Client, path: str) -> list[tuple[str, dict[str, Any]]]:
    async def read() -> list[tuple[str, dict[str, Any]]]:
        return [pair async for pair in client.events(path)]

    return await asyncio.wait_for(read(), timeout=60)


def test_client_commands(standalone_api, namespace, tmp_path):
    api = standalone_api
    env = {"PRAVAH_API_URL": api.url, "PRAVAH_TOKEN": api.add_user("cli", "submitter", [namespace])}
    submitted = invoke(env, "submit", str(EXAMPLE), "-n", namespace, "--idempotency-key", "once")
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip().splitlines()[0]
    again = invoke(env, "submit", str(EXAMPLE), "-n", namespace, "--idempotency-key", "once")
    assert again.stdout.strip().splitlines()[0] == job_id
    shown = json.loads(invoke(env, "get", job_id).stdout)
    assert shown["name"] == "sales-profile" and shown["spec"]["operation"]["type"] == "stats"
    listed = json.loads(invoke(env, "list", "-n", namespace, "--json").stdout)
    assert [job["id"] for job in listed] == [job_id]
    table = invoke({**env, "COLUMNS": "250"}, "list", "-n", namespace)
    assert table.exit_code == 0 and "sales-profile" in table.stdout
    early = invoke(env, "results", job_id)
    assert early.exit_code == 1 and "no result yet" in early.output
    assert invoke(env, "cancel", job_id).exit_code == 0
    assert json.loads(invoke(env, "get", job_id).stdout)["spec"]["suspend"] is True
    denied = invoke(env, "submit", str(EXAMPLE), "-n", "default")
    assert denied.exit_code == 1 and "403" in denied.output
    assert invoke(env, "cancel", job_id, "--purge").exit_code == 0
    assert invoke(env, "get", job_id).exit_code == 1
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(yaml.safe_load(EXAMPLE.read_text())["spec"]))
    bare = invoke(env, "submit", str(spec_file), "-n", namespace, "--name", "from-json")
    assert bare.exit_code == 0, bare.output
    unauthenticated = invoke({**env, "PRAVAH_TOKEN": ""}, "list")
    assert unauthenticated.exit_code == 1 and "401" in unauthenticated.output


def test_large_result_is_streamed_from_s3(cluster, s3, bucket):
    """With the inline limit at 0 every result counts as large: it is streamed from the output bucket."""
    import boto3

    client = boto3.client("s3", **s3.client_kwargs())
    for path in sorted((ROOT / "examples" / "data" / "sales").glob("*.csv")):
        client.upload_file(str(path), bucket, f"raw/sales/{path.name}")
    cluster.kubectl("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    location = {"bucket": bucket, "endpoint": s3.endpoint, "credentialsSecret": "s3-creds"}
    api = ApiServer(settings_for(cluster.control_plane, cluster.database, "standalone", api_inline_result_bytes=0,
                                 tenancy=TenancySettings(allowed_s3_endpoints=s3.endpoint))).start()
    try:
        token = api.admin_token()
        body = {"name": "sales-s3", "namespace": cluster.namespace, "operation": {"type": "count"},
                "source": {"s3": {**location, "prefix": "raw/sales/"}},
                "output": {"s3": {**location, "prefix": "results/sales/"}}}
        created = api.request("POST", "/jobs", token, json=body)
        assert created.status_code == 201, created.text
        job = cluster.wait_phase("sales-s3")
        assert job["status"]["result"]["uri"] == f"s3://{bucket}/results/sales/result.json"
        answer = api.request("GET", f"/jobs/{created.json()['id']}/results", token)
        assert answer.status_code == 200, answer.text
        stored = client.get_object(Bucket=bucket, Key="results/sales/result.json")["Body"].read()
        assert answer.content == stored
    finally:
        api.stop()
