"""End-to-end harness: the operator installed by `kubectl apply -k`, a namespace with
volumes, waiting helpers.

The operator runs as users run it: a Deployment from its image, with the `pravah-operator`
service account bound by the RBAC of manifests/base, so a permission missing from the
manifests fails the tests (its log shows the refusal).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import yaml

from e2e.reference import Files, source_files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CRD = ROOT / "crds" / "pravahjobs.pravah.io.yaml"
OPERATOR_NAMESPACE = "pravah-system"
OPERATOR_DEPLOYMENT = "pravah-operator"
OPERATOR_SELECTOR = "app.kubernetes.io/name=pravah-operator"
# What a log shows when the API server refused a call for lack of a permission.
FORBIDDEN_MARKERS = ("Forbidden", "Not enough permissions")
RECORD_START = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def get_json(control_plane, *args: str) -> dict[str, Any]:
    """`kubectl get ARGS -o json`, parsed."""
    return json.loads(control_plane.kubectl("get", *args, "-o", "json").stdout)


_APPLIED_SETTINGS: dict[str, str] = {}  # what InstalledOperator.configure last set


class InstalledOperator:
    """The operator Deployment that `kubectl apply -k` installed in pravah-system."""

    def __init__(self, control_plane) -> None:
        self.control_plane = control_plane
        self.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.control_plane.kubectl("-n", OPERATOR_NAMESPACE, *args, check=check, timeout=180)

    def pods(self, terminating: bool = False) -> list[dict[str, Any]]:
        """The operator's pods; those being deleted only if `terminating`."""
        out = self.kubectl("get", "pods", "-l", OPERATOR_SELECTOR, "-o", "json").stdout
        return [pod for pod in json.loads(out)["items"] if terminating or not pod["metadata"].get("deletionTimestamp")]

    def configure(self, settings: dict[str, str]) -> None:
        """Make the Deployment's test settings (PRAVAH_* variables) exactly `settings`, and wait
        for the rollout; nothing is rolled out when they are already in force."""
        wanted = {f"PRAVAH_{key.upper()}": str(value) for key, value in settings.items()}
        changes = [f"{key}-" for key in _APPLIED_SETTINGS if key not in wanted]
        changes += [f"{key}={value}" for key, value in wanted.items() if _APPLIED_SETTINGS.get(key) != value]
        if changes:
            self.kubectl("set", "env", f"deployment/{OPERATOR_DEPLOYMENT}", *changes)
            self.rollout()
            _APPLIED_SETTINGS.clear()
            _APPLIED_SETTINGS.update(wanted)

    def rollout(self) -> None:
        """Wait for the new pods, for the old ones to be gone (a terminating pod may still lead,
        with the old settings) and for one of the new ones to lead."""
        self.kubectl("rollout", "status", f"deployment/{OPERATOR_DEPLOYMENT}", "--timeout=150s")
        wait_for(lambda: len(self.pods(terminating=True)) == self.replicas(), 120, "the old operator pods to be gone")
        if self.replicas():  # the pods of now: in chaos mode a new one may be deleted in turn
            wait_for(lambda: self.leader() in {pod["metadata"]["name"] for pod in self.pods()}, 120,
                     "a new operator pod to take the Lease")

    def replicas(self) -> int:
        return json.loads(self.kubectl("get", "deployment", OPERATOR_DEPLOYMENT, "-o", "json").stdout)["spec"]["replicas"]

    def scale(self, replicas: int) -> None:
        self.kubectl("scale", f"deployment/{OPERATOR_DEPLOYMENT}", f"--replicas={replicas}")
        self.rollout()

    def kill(self, pod: str | None = None) -> str:
        """Delete an operator pod at once (no grace period), as a node crash would; the
        Deployment starts a new one. Returns the name of the pod deleted. In chaos mode the
        pod may already be gone (deleted by the chaos killer in between): that is the state
        asked for, not an error."""
        name = pod or self.pods()[0]["metadata"]["name"]
        self.kubectl("delete", "pod", name, "--ignore-not-found", "--grace-period=0", "--force", "--wait=false")
        return name

    def log(self, pod: str | None = None) -> str:
        """What the operator pods (or one of them) logged since this object was made."""
        if pod:
            return self.kubectl("logs", pod, f"--since-time={self.since}", check=False).stdout
        return self.kubectl("logs", "-l", OPERATOR_SELECTOR, "--prefix", "--tail=-1", "--max-log-requests=10",
                            f"--since-time={self.since}", check=False).stdout

    def leader(self) -> str | None:
        lease = self.kubectl("get", "lease", OPERATOR_DEPLOYMENT, "-o", "json", check=False).stdout
        return json.loads(lease or "{}").get("spec", {}).get("holderIdentity")

    def forbidden(self) -> list[str]:
        """Log records where the API server refused the operator a call for lack of a
        permission (not for writing into a namespace being deleted: other tests' namespaces).
        A record is a timestamped line with the lines that continue it (a traceback)."""
        records: list[list[str]] = []
        for line in self.log().splitlines():
            text = line.split("] ", 1)[-1]
            if RECORD_START.match(text) or not records:
                records.append([line])
            else:
                records[-1].append(line)
        return ["\n".join(record) for record in records
                if any(marker in line for line in record for marker in FORBIDDEN_MARKERS)
                and not any("being terminated" in line for line in record)]


@dataclass
class Cluster:
    """One namespace with `datasets` and `results` volumes, served by the installed operator."""

    control_plane: Any
    platform: Any
    namespace: str
    workdir: Path
    operator: InstalledOperator

    @property
    def database(self) -> str:
        return self.platform.database_url

    @property
    def datasets(self) -> Path:
        return volume_dir(self.platform, self.namespace, "datasets")

    @property
    def results(self) -> Path:
        return volume_dir(self.platform, self.namespace, "results")

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return self.control_plane.kubectl("-n", self.namespace, *args, check=check, input=input)

    def apply(self, manifest: dict[str, Any] | Path) -> subprocess.CompletedProcess:
        if isinstance(manifest, Path):
            return self.kubectl("apply", "-f", str(manifest))
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def get(self, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "pravahjob", name, "-o", "json").stdout)

    def wait_phase(self, name: str, phases: tuple[str, ...] = ("Succeeded",), timeout: float = 180) -> dict:
        """Wait for one of `phases`; fail early (with the status) on another terminal phase."""
        terminal = {"Succeeded", "Failed", "Cancelled"}

        def reached():
            job = self.get(name)
            phase = (job.get("status") or {}).get("phase")
            if phase in phases:
                return job
            if phase in terminal:
                raise AssertionError(f"{name} ended {phase}: {json.dumps(job.get('status'), indent=1)}\n"
                                     f"operator log:\n{self.operator.log()[-3000:]}")
            return None

        try:
            return wait_for(reached, timeout, f"{name} to reach {phases}", interval=0.5)
        except AssertionError as exc:
            if "timed out" in str(exc):
                status = (self.get(name).get("status") or {})
                # Every namespace's pods: what holds the nodes' cores, and the operator's own.
                pods = self.kubectl("get", "pods", "--all-namespaces", "-o", "wide", check=False).stdout
                raise AssertionError(f"{exc}; status: {json.dumps(status, indent=1)}\npods:\n{pods}\n"
                                     f"operator log:\n{self.operator.log()[-3000:]}") from None
            raise

    def pods(self) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", "pods", "-o", "json").stdout)["items"]

    def reader(self, s3=None) -> Callable[[str], bytes]:
        """Reads what a result points at by the URI it gives: `pvc://CLAIM/PATH` from this
        namespace's volumes, `s3://BUCKET/KEY` from the S3 server `s3`."""
        client = boto3.client("s3", **s3.client_kwargs()) if s3 is not None else None

        def read(uri: str) -> bytes:
            scheme, _, rest = uri.partition("://")
            location, _, key = rest.partition("/")
            if scheme == "pvc":
                return (volume_dir(self.platform, self.namespace, location) / key).read_bytes()
            if scheme == "s3" and client is not None:
                return client.get_object(Bucket=location, Key=key)["Body"].read()
            raise AssertionError(f"no way to read {uri!r} (an S3 URI needs the s3 fixture)")

        return read

    def source_files(self, spec: dict[str, Any]) -> Files:
        """The files a spec with a volume source reads from the `datasets` volume."""
        return source_files(self.datasets / spec["source"]["volume"]["path"], spec.get("include"))

    def result(self, job: dict[str, Any], s3=None) -> dict[str, Any]:
        """The result document of a finished job, from where its status says it is."""
        return json.loads(self.reader(s3)(job["status"]["result"]["uri"]))

    def jobs(self) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", "jobs", "-o", "json").stdout)["items"]


def volume_dir(platform, namespace: str, claim: str) -> Path:
    """The host directory behind a test volume (a hostPath PersistentVolume)."""
    return platform.dir / "volumes" / namespace / claim


def bind_volume(control_plane, platform, namespace: str, claim: str) -> None:
    """A hostPath PersistentVolume pre-bound to a claim (ReadWriteMany: every node of this
    machine sees the same directory), writable by the runners' uid."""
    local = volume_dir(platform, namespace, claim)
    local.mkdir(parents=True, exist_ok=True)
    local.chmod(0o777)
    pv_name = f"{namespace}-{claim}"[:63]
    manifests = [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "hostPath": {"path": str(local), "type": "Directory"},
                  "claimRef": {"namespace": namespace, "name": claim}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv_name,
                  "resources": {"requests": {"storage": "10Gi"}}}},
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
    wait_for(lambda: json.loads(control_plane.kubectl("get", "pvc", claim, "-n", namespace, "-o", "json").stdout)
             .get("status", {}).get("phase") == "Bound", 60, f"claim {claim} to be Bound")




# -- runner processes: freezing one (SIGSTOP) holds a job mid-run for failure tests --

def runner_pids(job_uid: str) -> list[int]:
    """Processes whose environment carries this job's uid (container processes are host
    processes too, seen from the host's PID namespace)."""
    marker = f"PRAVAH_JOB_UID={job_uid}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def freeze(job_uid: str) -> list[int]:
    pids = runner_pids(job_uid)
    signal_all(pids, signal.SIGSTOP)
    return pids


def thaw(pids: list[int]) -> None:
    signal_all(pids, signal.SIGCONT)


# -- jobs: manifests, records ------------------------------------------------------------

def upload_sales(s3, bucket: str, prefix: str = "raw/sales/") -> Files:
    """The bundled sales CSVs under `prefix` of the bucket, keyed as a result reports them."""
    client = boto3.client("s3", **s3.client_kwargs())
    files = {}
    for path in sorted((EXAMPLES / "data" / "sales").glob("*.csv")):
        client.upload_file(str(path), bucket, f"{prefix}{path.name}")
        files[f"s3://{bucket}/{prefix}{path.name}"] = path.read_bytes()
    return files


def tiny_objects(count: int, prefix: str) -> dict[str, bytes]:
    """`count` one-line objects, 1,000 to a "directory": key -> body."""
    return {f"{prefix}{index // 1000:04d}/{index:07d}.txt": b"line %d\n" % index for index in range(count)}


def put_objects(client, bucket: str, objects: dict[str, bytes], per_request: int = 20_000) -> None:
    """Store many small objects fast: MinIO unpacks each uploaded tar into one object per
    member (its `snowball-auto-extract` upload), far quicker than a PUT per object."""
    keys = list(objects)
    for start in range(0, len(keys), per_request):
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for key in keys[start:start + per_request]:
                member = tarfile.TarInfo(key)
                member.size = len(objects[key])
                tar.addfile(member, io.BytesIO(objects[key]))
        client.put_object(Bucket=bucket, Key=f"upload-{start}.tar", Body=archive.getvalue(),
                          Metadata={"snowball-auto-extract": "true"})


def manifest_for(op: str, **spec_changes: Any) -> dict[str, Any]:
    manifest = yaml.safe_load((EXAMPLES / f"{op}-volume.yaml").read_text())
    manifest["spec"].update(spec_changes)
    return manifest


def db_fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one query, on an event loop of its own in a worker thread: callers may run
    inside a loop already (Playwright's synchronous API keeps one in the test's thread)."""
    async def fetch():
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, fetch()).result()


def write_csv_files(root: Path, count: int, rows: int = 50) -> int:
    """`count` small CSV files; returns the total number of lines."""
    root.mkdir(parents=True, exist_ok=True)
    lines = 0
    for index in range(count):
        body = "id,value,label\n" + "".join(f"{index * rows + row},{row * 0.5},l{row % 7}\n" for row in range(rows))
        (root / f"part-{index:04d}.csv").write_text(body)
        lines += rows + 1
    return lines


def stored_batches(cluster, uid: str) -> int:
    return db_fetch(cluster.database, "SELECT count(*) FROM batches WHERE job_uid = $1", uid)[0][0]


def started_shards(cluster, uid: str) -> int:
    return db_fetch(cluster.database, "SELECT count(*) FROM shards WHERE job_uid = $1", uid)[0][0]


def freeze_mid_run(cluster, name: str, batches_total: int) -> tuple[str, list[int]]:
    """Catch the runner as it starts and let it go on, a little at a time, until some but
    not all of its batches are stored; return the job uid and the frozen pids.

    Small batches go by in a few milliseconds each, so once a shard has started (its files
    listed) the runner is let go for 2 ms at a time and stopped again by the pids it had,
    before looking for new ones: a longer step could see every batch stored at once."""
    uid = cluster.get(name)["metadata"]["uid"]
    # As long as wait_phase gives a job: in chaos mode the operator's calls fail at random
    # and its pod is deleted, which can hold the Job back for more than a minute.
    pids = wait_for(lambda: freeze(uid), 180, f"the runner of {name} to start", interval=0.01)
    while (stored := stored_batches(cluster, uid)) == 0:
        step = 0.002 if started_shards(cluster, uid) else 0.02
        thaw(pids)
        time.sleep(step)
        signal_all(pids, signal.SIGSTOP)
        pids = freeze(uid)
        assert pids, "the runner finished before it could be stopped mid-run"
    assert stored < batches_total, f"all {stored} batches were stored in one step of the runner"
    return uid, pids
