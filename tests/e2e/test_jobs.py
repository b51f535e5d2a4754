"""PravahJobs end to end: kubectl apply -> operator -> Indexed Job -> runner pods -> result."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from e2e import reference
from e2e.harness import (EXAMPLES, db_fetch, freeze, freeze_mid_run, manifest_for, runner_pids, thaw,
                         upload_sales, wait_for, write_csv_files)

OPERATIONS = ("stats", "count", "checksum", "grep", "convert")


@pytest.mark.parametrize("op", OPERATIONS)
def test_example_on_volume_gives_what_the_data_gives(cluster, sample_data, op):
    manifest = yaml.safe_load((EXAMPLES / f"{op}-volume.yaml").read_text())
    name = manifest["metadata"]["name"]
    cluster.apply(EXAMPLES / f"{op}-volume.yaml")
    job = cluster.wait_phase(name)
    status = job["status"]
    files = cluster.source_files(manifest["spec"])
    reference.check(cluster.result(job), manifest["spec"]["operation"], files, cluster.reader())
    assert status["result"]["summary"]["files"] == len(files)
    assert status["progress"]["percent"] == 100
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Complete"] == "True"
    rows = db_fetch(cluster.database, "SELECT phase, result IS NOT NULL AS has_result FROM jobs WHERE uid = $1",
                    job["metadata"]["uid"])
    assert [tuple(row) for row in rows] == [("Succeeded", True)]


def test_s3_source_and_output(cluster, s3, bucket):
    """Only the CSVs under the prefix are read (`include`), and the result is written to the bucket."""
    files = upload_sales(s3, bucket)
    boto3.client("s3", **s3.client_kwargs()).put_object(Bucket=bucket, Key="raw/sales/notes.txt", Body=b"not a csv")
    cluster.kubectl("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    location = {"bucket": bucket, "endpoint": s3.endpoint, "credentialsSecret": "s3-creds"}
    manifest = manifest_for("stats", source={"s3": {**location, "prefix": "raw/sales/"}},
                            output={"s3": {**location, "prefix": "results/sales/"}}, parallelism=2)
    manifest["metadata"]["name"] = "sales-s3"
    cluster.apply(manifest)
    job = cluster.wait_phase("sales-s3")
    assert job["status"]["result"]["uri"] == f"s3://{bucket}/results/sales/result.json"
    reference.check(cluster.result(job, s3), manifest["spec"]["operation"], files)


def test_missing_credentials_secret_fails_with_the_field(cluster, bucket):
    manifest = manifest_for("count", source={"s3": {"bucket": bucket, "credentialsSecret": "nope"}})
    manifest["metadata"]["name"] = "no-secret"
    cluster.apply(manifest)
    status = cluster.wait_phase("no-secret", ("Failed",))["status"]
    assert status["reason"] == "MissingSecret" and "spec.source.s3.credentialsSecret" in status["message"]


def test_four_shards_and_one_shard_both_give_what_the_data_gives(cluster):
    write_csv_files(cluster.datasets / "many", 40)
    for shards in (1, 4):
        manifest = manifest_for("stats", source={"volume": {"claimName": "datasets", "path": "many"}},
                                output={"volume": {"claimName": "results", "path": f"out-{shards}"}},
                                parallelism=shards)
        manifest["metadata"]["name"] = f"shards-{shards}"
        cluster.apply(manifest)
        job = cluster.wait_phase(f"shards-{shards}")
        assert job["status"]["shards"]["total"] == shards and job["status"]["shards"]["succeeded"] == shards
        reference.check(cluster.result(job), manifest["spec"]["operation"], cluster.source_files(manifest["spec"]))


def container_cpu_quota(pid: int) -> float:
    """CPUs allowed by the cgroup CPU quota, as the container itself sees it (v1 or v2)."""
    root = Path(f"/proc/{pid}/root/sys/fs/cgroup")
    if (root / "cpu.max").exists():
        quota, period = (root / "cpu.max").read_text().split()
    else:
        quota, period = ((root / "cpu" / name).read_text().strip() for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
    return int(quota) / int(period)


@pytest.mark.parametrize(("cpu", "expected", "node"), [(1, 1, None), (2, 2, "node-a")])
def test_runners_request_whole_node_cpus_and_use_that_many_threads(cluster, sample_data, cpu, expected, node):
    """node-a has 2 allocatable CPUs, node-b 1: 2 fits node-a only (`cpu: auto` is sized
    from free cores: test_operator.py). The runner container's cgroup quota is its request,
    and the engine used that many threads."""
    manifest = manifest_for("count", resources={"cpu": cpu, "memory": "1Gi"}, parallelism=1)
    manifest["metadata"]["name"] = f"cpu-{cpu}"
    cluster.apply(manifest)
    uid = cluster.get(f"cpu-{cpu}")["metadata"]["uid"]
    pids = wait_for(lambda: freeze(uid), 120, "the runner container to start", interval=0.01)
    try:
        quotas = {container_cpu_quota(pid) for pid in pids}
    finally:
        thaw(pids)
    assert quotas == {float(expected)}
    job = cluster.wait_phase(f"cpu-{cpu}")
    assert job["status"]["cpuPerRunner"] == expected and job["status"]["threads"] == expected
    [batch_job] = cluster.jobs()
    resources = batch_job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == str(expected) == resources["limits"]["cpu"]
    assert cluster.result(job)["threads"] == expected
    if node:
        assert {pod["spec"]["nodeName"] for pod in cluster.pods()} == {node}, f"only {node} has {expected} CPUs"


def test_more_cpu_than_any_node_is_refused(cluster, sample_data):
    manifest = manifest_for("count", resources={"cpu": 3, "memory": "1Gi"})
    manifest["metadata"]["name"] = "too-big"
    cluster.apply(manifest)
    status = cluster.wait_phase("too-big", ("Failed",))["status"]
    assert status["reason"] == "Unschedulable" and "resources.cpu=3" in status["message"]


def runner_pod(cluster) -> dict[str, Any]:
    [pod] = [pod for pod in cluster.pods() if pod["status"].get("phase") == "Running"]
    return pod


def sigterm_pending(pid: int) -> bool:
    """A SIGTERM waits for a stopped process (the kubelet has asked it to stop)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (signal.SIGTERM - 1)) for mask in masks)


def kill_runner(cluster, nodes, pids: list[int], how: str) -> None:
    """Three ways a runner dies: its process is killed, its pod is deleted, or its
    container is killed by the container runtime."""
    if how == "process":
        for pid in pids:
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
    elif how == "delete-pod":
        cluster.kubectl("delete", "pod", runner_pod(cluster)["metadata"]["name"], "--wait=false")
        wait_for(lambda: any(sigterm_pending(pid) for pid in pids), 60, "the kubelet to send SIGTERM")
        thaw(pids)
    else:
        pod = runner_pod(cluster)
        container = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
        nodes.node(pod["spec"]["nodeName"]).ctr("tasks", "kill", "--signal", "SIGKILL", container)


@pytest.mark.parametrize("how", ["process", "delete-pod", "runtime"])
@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_runner_killed_mid_run_is_retried_and_counts_stay_exact(cluster, nodes, how):
    lines = write_csv_files(cluster.datasets / "many", 200)
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=40)
    kill_runner(cluster, nodes, pids, how)
    job = cluster.wait_phase("data-count")
    reference.count(cluster.result(job), cluster.source_files(manifest["spec"]))
    assert job["status"]["result"]["summary"]["lines"] == lines
    [shard] = db_fetch(cluster.database, "SELECT attempts FROM shards WHERE job_uid = $1", uid)
    assert shard["attempts"] == 2, "the shard ran twice: once killed, once resumed"
    files = db_fetch(cluster.database, "SELECT count(*), count(DISTINCT path) FROM file_records WHERE job_uid = $1", uid)
    assert tuple(files[0]) == (200, 200)


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_operator_killed_mid_job_and_restarted(cluster):
    lines = write_csv_files(cluster.datasets / "many", 100)
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    [job_before] = cluster.jobs()
    killed = cluster.operator.kill()
    thaw(pids)
    job = cluster.wait_phase("data-count")
    assert job["status"]["result"]["summary"]["lines"] == lines
    reference.count(cluster.result(job), cluster.source_files(manifest["spec"]))
    [job_after] = cluster.jobs()
    assert job_after["metadata"]["uid"] == job_before["metadata"]["uid"], "exactly one Job was ever created"
    rows = db_fetch(cluster.database, "SELECT count(*) FROM jobs WHERE uid = $1", uid)
    assert rows[0][0] == 1
    files = db_fetch(cluster.database, "SELECT count(*), count(DISTINCT path) FROM file_records WHERE job_uid = $1", uid)
    assert tuple(files[0]) == (100, 100)
    assert killed not in {pod["metadata"]["name"] for pod in cluster.operator.pods()}, "a new operator pod took over"


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_postgres_down_for_ten_seconds(cluster, postgres):
    lines = write_csv_files(cluster.datasets / "many", 100)
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    postgres.stop()
    try:
        thaw(pids)
        time.sleep(10)
    finally:
        postgres.start()
    job = cluster.wait_phase("data-count", timeout=180)
    assert job["status"]["result"]["summary"]["lines"] == lines
    assert job["status"]["progress"]["filesDone"] == job["status"]["progress"]["filesTotal"] == 100
    reference.count(cluster.result(job), cluster.source_files(manifest["spec"]))


def test_corrupt_files_are_reported_and_the_job_goes_on(cluster):
    root = cluster.datasets / "mixed"
    write_csv_files(root, 3)
    (root / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5\n")
    (root / "binary.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    # Under badRows: fail a ragged row makes its file an error record, as invalid UTF-8 does.
    spec = {"source": {"volume": {"claimName": "datasets", "path": "mixed"}},
            "operation": {"type": "stats", "stats": {"badRows": "fail"}}}
    manifest = manifest_for("stats", **spec)
    cluster.apply(manifest)
    job = cluster.wait_phase("sales-profile")
    status = job["status"]
    reference.check(cluster.result(job), manifest["spec"]["operation"], cluster.source_files(manifest["spec"]))
    assert status["errors"]["count"] == 2
    assert {sample["path"] for sample in status["errors"]["samples"]} == {"binary.csv", "ragged.csv"}
    assert all(sample["reason"] for sample in status["errors"]["samples"])
    assert status["result"]["summary"]["rows"] == 3 * 50
    uid = cluster.get("sales-profile")["metadata"]["uid"]
    rows = db_fetch(cluster.database, "SELECT path FROM file_records WHERE job_uid = $1 AND error IS NOT NULL "
                    "ORDER BY path", uid)
    assert [row["path"].rsplit("/", 1)[-1] for row in rows] == ["binary.csv", "ragged.csv"]
    strict = manifest_for("stats", **spec, maxErrors=1)
    strict["metadata"]["name"] = "strict"
    strict["spec"]["output"]["volume"]["path"] = "strict"
    cluster.apply(strict)
    status = cluster.wait_phase("strict", ("Failed",))["status"]
    assert status["reason"] == "TooManyErrors"


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_suspend_cancels_a_running_job(cluster):
    write_csv_files(cluster.datasets / "many", 100)
    cluster.apply(manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1))
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    cluster.kubectl("patch", "pravahjob", "data-count", "--type=merge", "-p", '{"spec": {"suspend": true}}')
    status = cluster.wait_phase("data-count", ("Cancelled",), timeout=120)["status"]
    thaw(pids)
    wait_for(lambda: not cluster.pods() and not runner_pids(uid), 120, "the runner pods and processes to be gone")
    assert not cluster.jobs(), "the Job was deleted"
    assert status["reason"] == "Suspended"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Cancelled"] == ("True", "Suspended") and conditions["Running"][0] == "False", conditions
    rows = db_fetch(cluster.database, "SELECT phase FROM jobs WHERE uid = $1", uid)
    assert [row["phase"] for row in rows] == ["Cancelled"]


def test_spec_edit_after_start_is_refused_but_suspend_is_not(cluster, sample_data):
    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")
    edited = manifest_for("count", parallelism=3)
    refused = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(edited), check=False)
    assert refused.returncode != 0 and "immutable" in refused.stderr
    again = cluster.apply(EXAMPLES / "count-volume.yaml")
    assert again.returncode == 0
    time.sleep(2)
    assert len(cluster.jobs()) == 1 and cluster.get("data-count")["status"]["phase"] == "Succeeded", \
        "re-applying the same manifest never re-runs a finished job"


def test_kubectl_get_columns_and_wait_for_complete(cluster, sample_data, report):
    started = time.monotonic()
    cluster.apply(EXAMPLES / "count-volume.yaml")
    waited = cluster.kubectl("wait", "--for=condition=Complete", "--timeout=180s", "pj/data-count")
    report(f"kubectl apply -f examples/count-volume.yaml to Complete (real containers): "
           f"{time.monotonic() - started:.1f}s")
    assert "condition met" in waited.stdout
    table = cluster.kubectl("get", "pj").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "FILES", "THROUGHPUT", "SHARDS", "AGE"]
    row = table[1].split()
    assert row[:2] == ["data-count", "Succeeded"] and row[2] == "100"
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=data-count").stdout
    assert "Running" in events and "Succeeded" in events


def test_two_replicas_one_leads_and_the_other_takes_over(cluster, sample_data):
    cluster.operator.scale(2)
    pods = [pod["metadata"]["name"] for pod in cluster.operator.pods()]
    leader = wait_for(lambda: cluster.operator.leader() in pods and cluster.operator.leader(), 60, "a leader")
    [standby] = [pod for pod in pods if pod != leader]
    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")
    assert f"leading as {standby}" not in cluster.operator.log(standby)
    cluster.operator.kill(leader)
    # The standby, or the pod the Deployment starts in the leader's place, takes the Lease.
    successor = wait_for(lambda: cluster.operator.leader() not in (None, leader) and cluster.operator.leader(),
                         90, "another replica to take the Lease")
    cluster.apply(manifest_for("checksum"))
    cluster.wait_phase("data-checksums")
    assert f"leading as {successor}" in cluster.operator.log(successor)


def test_a_rolling_update_hands_the_lease_over_without_waiting_for_it_to_expire(cluster, sample_data):
    """The leader stopped by a rolling update gives the Lease up as it goes (its last log
    line says so); a pod of the new ReplicaSet leads and runs the next job."""
    leader = wait_for(cluster.operator.leader, 60, "a leader")
    follower = subprocess.Popen([*cluster.control_plane.kubectl_command(), "-n", "pravah-system", "logs", "-f",
                                 leader], stdout=subprocess.PIPE, text=True)
    try:
        cluster.operator.kubectl("rollout", "restart", "deployment/pravah-operator")
        cluster.operator.rollout()
        logged, _ = follower.communicate(timeout=90)
    finally:
        follower.kill()
    assert "released Lease pravah-system/pravah-operator" in logged
    assert cluster.operator.leader() in [pod["metadata"]["name"] for pod in cluster.operator.pods()]
    assert cluster.operator.leader() != leader
    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")


def test_metrics_are_served(cluster, sample_data):
    import urllib.request

    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")
    leader = cluster.operator.leader()
    [pod] = [pod for pod in cluster.operator.pods() if pod["metadata"]["name"] == leader]
    url = f"http://{pod['status']['podIP']}:8080/metrics"
    text = wait_for(lambda: urllib.request.urlopen(url, timeout=5).read().decode(), 30, f"{url} to answer")
    assert 'pravah_jobs{phase="Succeeded"}' in text
    assert 'pravah_files_processed_total{operation="count"}' in text


def test_ttl_removes_the_children_and_keeps_the_pravahjob(cluster, sample_data):
    cluster.apply(manifest_for("count", ttlSecondsAfterFinished=1))
    cluster.wait_phase("data-count")
    wait_for(lambda: not cluster.jobs() and not cluster.pods(), 60, "the TTL controller to remove the Job and pods")
    assert cluster.get("data-count")["status"]["phase"] == "Succeeded"


@pytest.mark.parametrize("cluster", [{"max_running_per_namespace": "1", "runner_batch_files": "5"}], indirect=True)
def test_concurrency_cap_queues_jobs_in_a_namespace(cluster, sample_data):
    write_csv_files(cluster.datasets / "many", 100)
    first = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(first)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    second = manifest_for("checksum")
    cluster.apply(second)
    status = cluster.wait_phase("data-checksums", ("Queued",), timeout=30)["status"]
    assert status["reason"] == "ConcurrencyLimit"
    assert [job["metadata"]["name"] for job in cluster.jobs()] == ["pravah-data-count"]
    thaw(pids)
    cluster.wait_phase("data-count")
    cluster.wait_phase("data-checksums")


def test_runner_over_its_memory_limit_is_oom_killed_and_the_job_says_so(cluster, sample_data):
    """16Mi is less than a runner needs to start (its imports alone take about 25 MiB of
    memory of its own): the kernel kills it each time and the job fails naming the shard and
    OOMKilled (status, Event), not with a bare exit code."""
    manifest = manifest_for("count", resources={"cpu": 1, "memory": "16Mi"}, parallelism=1, maxRetriesPerShard=1)
    manifest["metadata"]["name"] = "tiny-memory"
    cluster.apply(manifest)
    status = cluster.wait_phase("tiny-memory", ("Failed",), timeout=240)["status"]
    assert status["reason"] == "OOMKilled" and "shard 0" in status["message"], status
    assert [(f["shard"], f["reason"], f["exitCode"]) for f in status["shardFailures"]] == [(0, "OOMKilled", 137)] * 2
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=tiny-memory,reason=ShardFailed",
                             "-o", "json").stdout
    assert "OOMKilled" in events and "shard 0" in events


def memory_cgroup(pid: int) -> Path:
    """The directory of a process's memory cgroup (v1 `memory` hierarchy, or v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
        if controllers == "":
            return Path("/sys/fs/cgroup") / path.lstrip("/")
    raise AssertionError(f"no memory cgroup for pid {pid}")


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_oom_killed_runner_is_retried_and_counts_stay_exact(cluster):
    """Mid-run, a process joins the runner container's memory cgroup and fills it past the
    256Mi limit: the kernel's OOM killer takes the runner (made its first choice), the shard
    is retried in a new pod and the counts stay exact; the status names the OOMKilled shard."""
    lines = write_csv_files(cluster.datasets / "many", 200)
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1,
                            resources={"cpu": 1, "memory": "256Mi"})
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=40)
    cgroup = memory_cgroup(pids[0])
    for pid in pids:
        Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
    hog = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.readline(); "
                            "chunks = [bytearray(16 << 20) for _ in range(32)]; time.sleep(60)"],
                           stdin=subprocess.PIPE, text=True)
    try:
        (cgroup / "cgroup.procs").write_text(str(hog.pid))
        hog.stdin.write("go\n")
        hog.stdin.flush()
        wait_for(lambda: not runner_pids(uid) or set(runner_pids(uid)).isdisjoint(pids), 60,
                 "the kernel to kill the runner")
    finally:
        hog.kill()
        hog.wait()
    job = cluster.wait_phase("data-count", timeout=240)
    status = job["status"]
    reference.count(cluster.result(job), cluster.source_files(manifest["spec"]))
    assert status["result"]["summary"]["lines"] == lines
    recorded = [(f["shard"], f["reason"]) for f in status.get("shardFailures") or []]
    assert recorded == [(0, "OOMKilled")], f"{status}\n{pod_endings(cluster.pods())}\n{cluster.jobs()[0]['status']}"
    [shard] = db_fetch(cluster.database, "SELECT attempts FROM shards WHERE job_uid = $1", uid)
    assert shard["attempts"] == 2


def pod_endings(pods: list[dict]) -> str:
    """Each pod's phase, conditions and container end, to tell why a failure went unrecorded."""
    lines = []
    for pod in pods:
        pod_status = pod.get("status") or {}
        conditions = [f"{c['type']}={c['status']}/{c.get('reason')}" for c in pod_status.get("conditions") or []]
        ends = [c.get("state", {}).get("terminated") for c in pod_status.get("containerStatuses") or []]
        lines.append(f"{pod['metadata']['name']} {pod_status.get('phase')} {conditions} {ends}")
    return "\n".join(lines)


def test_runner_pods_run_as_10001_with_a_read_only_root_and_no_token(cluster, sample_data):
    """The operator's runner pod template, with its command replaced by a probe, in a real
    container: the user is 10001, `/` cannot be written, no service-account token is mounted."""
    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")
    [job] = cluster.jobs()
    spec = job["spec"]["template"]["spec"]
    probe = (
        "import os, pathlib\n"
        "print('uid', os.getuid(), 'gid', os.getgid())\n"
        "try:\n"
        "    pathlib.Path('/probe').write_text('x'); print('root writable')\n"
        "except OSError as e:\n"
        "    print('root refused', e.errno)\n"
        "print('token', pathlib.Path('/var/run/secrets/kubernetes.io/serviceaccount/token').exists())\n"
    )
    spec["containers"][0].update(command=["python3", "-c", probe], args=[])
    spec["restartPolicy"] = "Never"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runner-probe", "namespace": cluster.namespace},
           "spec": spec}
    cluster.apply(pod)
    wait_for(lambda: cluster.kubectl("get", "pod", "runner-probe", "-o", "jsonpath={.status.phase}").stdout
             in ("Succeeded", "Failed"), 120, "the probe pod to finish")
    out = cluster.kubectl("logs", "runner-probe").stdout
    assert "uid 10001 gid 10001" in out, out
    assert "root refused 30" in out, "EROFS: the runner's root filesystem is read-only"
    assert "token False" in out
