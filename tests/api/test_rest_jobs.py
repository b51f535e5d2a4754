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

from api.helpers import CLAIMS, STATS_SPEC, ApiServer, DeployedApi, assert_error, service_account, settings_for
from e2e import reference
from e2e.harness import ROOT, upload_sales
from pravah.client_cli import Client, register
from pravah.tenancy import TenancySettings

EXAMPLE = ROOT / "examples" / "stats-volume.yaml"
ALL_VERBS = ["get", "list", "watch", "create", "patch", "delete"]


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
    assert detail["timings"]["durationSeconds"] >= 0 and detail["errors"]["count"] == 0
    files = cluster.source_files(manifest["spec"])
    rest_result = api.request("GET", f"/jobs/{job_id}/results", token)
    assert rest_result.status_code == 200, rest_result.text
    reference.check(rest_result.json(), spec["operation"], files)
    via_rest = api.request("GET", f"/jobs/{kubectl_job['metadata']['uid']}/results", token)
    assert via_rest.status_code == 200, via_rest.text
    reference.check(via_rest.json(), spec["operation"], files)

    # A finished job's stream ends at once; once its pods are gone, its logs come from the archive.
    events = asyncio.run(collect(Client(api.url, token), f"/jobs/{job_id}/events"))
    assert [event for event, _ in events][-1] == "end" and events[-1][1]["phase"] == "Succeeded"
    runners = f"job-name={cluster.get('rest-profile')['status']['jobName']}"
    pods = cluster.kubectl("get", "pods", "-l", runners, "-o", "name").stdout.split()
    cluster.kubectl("delete", "pods", "-l", runners, "--wait=true")
    logs = api.request("GET", f"/jobs/{job_id}/logs", token).json()
    assert logs["source"] == "archive", logs
    assert sorted(f"pod/{entry['pod']}" for entry in logs["entries"]) == sorted(pods), (logs, pods)
    assert all(entry["log"] for entry in logs["entries"]), logs
    assert_error(api.request("DELETE", f"/jobs/{job_id}", token), 409)  # already finished
    out = tmp_path / "result.json"
    assert invoke(env, "results", job_id, "-o", str(out)).exit_code == 0
    reference.check(json.loads(out.read_text()), spec["operation"], files)


def test_a_pattern_the_engine_cannot_run_is_refused(kubernetes_api, control_plane, namespace):
    """The installed API (its image) judges grep patterns with the engine: Python's `re`
    would accept this look-behind, the engine would fail on it in every runner."""
    token = service_account(control_plane, namespace, "grep-submitter", ALL_VERBS, CLAIMS)
    grep = {"type": "grep", "grep": {"pattern": "(?<=user=)\\w+"}}
    answer = kubernetes_api.request("POST", "/jobs", token, json={**STATS_SPEC, "namespace": namespace,
                                                                  "operation": grep})
    error = assert_error(answer, 422, "operation.grep.pattern")
    assert "look-around, including look-ahead and look-behind, is not supported" in error["message"], error
    assert control_plane.kubectl("get", "pravahjobs", "-n", namespace, "-o", "name").stdout == ""


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
    files = upload_sales(s3, bucket)
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
        stored = cluster.reader(s3)(job["status"]["result"]["uri"])
        assert answer.content == stored
        reference.check(json.loads(stored), body["operation"], files)
    finally:
        api.stop()


def test_errors_history_and_logs_are_paged_and_jobs_are_found_by_name(cluster):
    """What the dashboard's job page reads: every failed file (paged, from the records), the
    job's conditions and Events in time order, logs a page at a time; and the list's name search."""
    from e2e.harness import write_csv_files

    root = cluster.datasets / "mixed"
    write_csv_files(root, 3)
    (root / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5\n")
    (root / "binary.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    token = service_account(cluster.control_plane, cluster.namespace, "viewer", ALL_VERBS, CLAIMS)
    api = DeployedApi(cluster.control_plane)
    spec = {**STATS_SPEC, "source": {"volume": {"claimName": "datasets", "path": "mixed"}},
            "operation": {"type": "stats", "stats": {"badRows": "fail"}},
            "output": {"volume": {"claimName": "results", "path": "mixed-profile"}}, "parallelism": 2}
    for name in ("mixed-profile", "other-job"):
        created = api.request("POST", "/jobs", token, json={**spec, "name": name, "namespace": cluster.namespace})
        assert created.status_code == 201, created.text
    job_id = api.request("GET", "/jobs", token, params={"namespace": cluster.namespace,
                                                         "name": "mixed"}).json()["items"][0]["id"]
    found = api.request("GET", "/jobs", token, params={"namespace": cluster.namespace, "name": "-prof"}).json()
    assert [item["name"] for item in found["items"]] == ["mixed-profile"]
    both = [item["id"] for item in api.request("GET", "/jobs", token,
                                               params={"namespace": cluster.namespace}).json()["items"]]

    # One stream follows both jobs (the dashboard's list page) until both have finished.
    events = asyncio.run(collect(Client(api.url, token), f"/jobs/events?ids={','.join(both)}"))
    assert {data["id"] for event, data in events if event == "status"} == set(both)
    assert [event for event, _ in events][-1] == "end"
    final = {data["id"]: data["phase"] for event, data in events if event == "status"}
    assert final == {uid: "Succeeded" for uid in both}
    assert_error(api.request("GET", "/jobs/events", token), 422, "ids")
    assert_error(api.request("GET", "/jobs/events", token, params={"ids": ",".join([both[0]] * 101)}), 422, "ids")
    cluster.wait_phase("mixed-profile")
    summary = api.request("GET", "/jobs", token, params={"namespace": cluster.namespace, "name": "mixed"}).json()
    assert summary["items"][0]["errorCount"] == 2 and summary["items"][0]["shards"]["total"] == 2

    first = api.request("GET", f"/jobs/{job_id}/errors", token, params={"limit": 1}).json()
    second = api.request("GET", f"/jobs/{job_id}/errors", token, params={"limit": 1, "offset": 1}).json()
    assert first["total"] == second["total"] == 2
    assert [item["path"].rsplit("/", 1)[-1] for item in first["items"] + second["items"]] == ["binary.csv", "ragged.csv"]
    assert all(item["reason"] and item["shard"] in (0, 1) for item in first["items"] + second["items"])
    assert_error(api.request("GET", f"/jobs/{job_id}/errors", token, params={"limit": 0}), 422, "limit")
    assert_error(api.request("GET", f"/jobs/{job_id}/errors", token, params={"offset": "x"}), 422, "offset")

    history = api.request("GET", f"/jobs/{job_id}/history", token).json()["items"]
    times = [entry["time"] for entry in history]
    assert times == sorted(times)
    events = [entry["reason"] for entry in history if entry["kind"] == "event"]
    assert "Running" in events and "Succeeded" in events and events.index("Running") < events.index("Succeeded")
    assert {"type": "Complete", "status": "True"}.items() <= next(
        entry for entry in history if entry["kind"] == "condition" and entry["type"] == "Complete").items()

    shards = api.request("GET", f"/jobs/{job_id}/shards", token).json()["items"]
    assert [row["shard"] for row in shards] == [0, 1]
    assert sum(row["filesTotal"] for row in shards) == 5 and sum(row["errors"] for row in shards) == 2
    assert sum(row["bytesTotal"] for row in shards) == sum(path.stat().st_size for path in root.iterdir())
    assert all((row["filesDone"], row["bytesDone"]) == (row["filesTotal"], row["bytesTotal"]) for row in shards)

    pods = cluster.kubectl("get", "pods", "-l", f"job-name={cluster.get('mixed-profile')['status']['jobName']}",
                           "-o", "name").stdout.split()
    page = api.request("GET", f"/jobs/{job_id}/logs", token, params={"limit": 1, "offset": 1}).json()
    assert page["total"] == len(pods) == 2 and len(page["entries"]) == 1

    stranger = service_account(cluster.control_plane, "default", f"stranger-{cluster.namespace[-6:]}", ALL_VERBS, CLAIMS)
    for path in ("errors", "history", "logs", "shards"):
        assert api.request("GET", f"/jobs/{job_id}/{path}", stranger).status_code in (403, 404)
    refused = assert_error(api.request("GET", "/jobs/events", stranger, params={"ids": job_id}), 404, "id")
    assert cluster.namespace not in refused["message"]
