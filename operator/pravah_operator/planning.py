"""Pure decisions: how many runners, how many cores each, and the batch/v1 Job that runs them."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from pravah.reporting import EXIT_BAD_INPUT
from pravah.spec import PravahJobSpec

from pravah_operator.settings import OperatorSettings

SOURCE_MOUNT = "/data/source"
OUTPUT_MOUNT = "/data/output"
TOKEN_MOUNT = "/var/run/secrets/pravah.io"
TOKEN_FILE = "token"
JOB_LABEL = "pravah.io/job"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# Set on a PravahJob when its merged result is recorded: the watch event wakes its roll-up
# at once instead of at the next status tick. Not under "pravah.io/": kopf keeps its own
# state there and hides those annotations from change handlers.
RESULT_RECORDED_ANNOTATION = "results.pravah.io/recorded"
RUNNER_UID = 10001  # the `pravah` user of the images (Dockerfile)
S3_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # what a credentialsSecret holds


class PlanningError(Exception):
    """The job cannot run on this cluster as written (e.g. no node is big enough)."""


class WaitForCPU(Exception):
    """The job fits the cluster, but not the CPU its nodes have free now."""


@dataclass(frozen=True)
class Sizing:
    cpu_per_runner: int
    shards: int


def parse_cpu(quantity: str) -> float:
    """A Kubernetes CPU quantity ('2', '3500m', '1.5') in cores."""
    quantity = str(quantity)
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def node_is_eligible(node: dict[str, Any]) -> bool:
    """Ready, schedulable, and without NoSchedule/NoExecute taints."""
    spec, status = node.get("spec") or {}, node.get("status") or {}
    if spec.get("unschedulable"):
        return False
    if any(taint.get("effect") in ("NoSchedule", "NoExecute") for taint in spec.get("taints") or []):
        return False
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return bool(ready) and ready[0].get("status") == "True"


def pod_cpu_request(pod: dict[str, Any]) -> float:
    """The CPU a pod holds on its node, as the scheduler counts it: the larger of its
    containers' sum and its largest init container, plus the pod overhead."""
    spec = pod.get("spec") or {}

    def request(container: dict[str, Any]) -> float:
        return parse_cpu(((container.get("resources") or {}).get("requests") or {}).get("cpu", "0"))

    containers = sum(request(c) for c in spec.get("containers") or [])
    init = max((request(c) for c in spec.get("initContainers") or []), default=0.0)
    overhead = parse_cpu((spec.get("overhead") or {}).get("cpu", "0"))
    return max(containers, init) + overhead


def free_cpu(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """(allocatable, free) cores of each eligible node; free is what its unfinished pods
    (DaemonSets, other jobs' runners, anything else) have not requested."""
    requested: dict[str, float] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            requested[node] = requested.get(node, 0.0) + pod_cpu_request(pod)
    free = {}
    for node in nodes:
        allocatable = (node.get("status") or {}).get("allocatable", {}).get("cpu")
        if node_is_eligible(node) and allocatable:
            name = node["metadata"]["name"]
            free[name] = (parse_cpu(allocatable), parse_cpu(allocatable) - requested.get(name, 0.0))
    return free


def describe_free(free: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{name} {max(spare, 0):.2f} of {total:g} free" for name, (total, spare) in sorted(free.items()))


def size_runners(spec: PravahJobSpec, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> Sizing:
    """Whole cores per runner and the number of shards, from what the nodes have free now.

    `cpu: auto` takes the smallest whole number of cores free on any node that has one, so
    every runner fits where it is placed; `parallelism: auto` then fills the free cores of
    every node. A runner never asks for more than a node can schedule: a job that would
    wait for cores raises WaitForCPU (it is queued), one that can never fit PlanningError.
    """
    free = free_cpu(nodes, pods)
    whole = {name: math.floor(spare + 1e-9) for name, (_, spare) in free.items()}
    largest = max((math.floor(total) for total, _ in free.values()), default=0)
    if largest < 1:
        raise PlanningError("no Ready, schedulable node with at least one whole allocatable CPU")
    if spec.resources.cpu == "auto":
        fitting = [count for count in whole.values() if count >= 1]
        if not fitting:
            raise WaitForCPU(f"no node has a whole CPU free ({describe_free(free)})")
        cpu = min(fitting)
    else:
        cpu = spec.resources.cpu
        if cpu > largest:
            raise PlanningError(f"spec.resources.cpu={cpu} but the largest node has {largest} allocatable CPUs")
        if not any(count >= cpu for count in whole.values()):
            raise WaitForCPU(f"spec.resources.cpu={cpu}: no node has {cpu} CPUs free ({describe_free(free)})")
    shards = spec.parallelism if spec.parallelism != "auto" else sum(count // cpu for count in whole.values())
    return Sizing(cpu_per_runner=cpu, shards=max(1, shards))


def job_name(name: str, uid: str) -> str:
    """Deterministic (so a restarted operator finds it) and within the 63-character label limit."""
    base = f"pravah-{name}"
    if len(base) <= 63:
        return base
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    return f"{base[:54].rstrip('-.')}-{digest}"


def runner_env(spec: PravahJobSpec, name: str, namespace: str, uid: str, sizing: Sizing,
               settings: OperatorSettings) -> list[dict[str, Any]]:
    env = [
        {"name": "PRAVAH_JOB_UID", "value": uid},
        {"name": "PRAVAH_JOB_NAME", "value": name},
        {"name": "PRAVAH_JOB_NAMESPACE", "value": namespace},
        {"name": "PRAVAH_SPEC", "value": spec.model_dump_json(exclude_none=True)},
        {"name": "PRAVAH_SHARDS", "value": str(sizing.shards)},
        {"name": "PRAVAH_THREADS", "value": str(sizing.cpu_per_runner)},
        {"name": "PRAVAH_SCRATCH_DIR", "value": settings.runner_scratch_dir},
        {"name": "PRAVAH_LOG_FORMAT", "value": settings.log.log_format},
    ]
    if settings.runner_batch_files:
        env.append({"name": "PRAVAH_BATCH_FILES", "value": str(settings.runner_batch_files)})
    env += [{"name": "PRAVAH_REPORT_URL", "value": settings.report_url},
            {"name": "PRAVAH_REPORT_TOKEN_FILE", "value": f"{TOKEN_MOUNT}/{TOKEN_FILE}"}]
    if spec.source.volume is not None:
        env.append({"name": "PRAVAH_SOURCE_DIR", "value": join_mount(SOURCE_MOUNT, spec.source.volume.path)})
    if spec.output is not None and spec.output.volume is not None:
        env.append({"name": "PRAVAH_OUTPUT_DIR", "value": join_mount(OUTPUT_MOUNT, spec.output.volume.path)})
    for role, location in (("source", spec.source), ("output", spec.output)):
        if location is not None and location.s3 is not None and location.s3.credentialsSecret:
            env += [{"name": credential_variable(role, key),
                     "valueFrom": {"secretKeyRef": {"name": location.s3.credentialsSecret, "key": key}}}
                    for key in S3_CREDENTIAL_KEYS]
    return env


def credential_variable(role: str, key: str) -> str:
    """The runner's variable for one key of the `role` ("source" or "output") location's
    credentialsSecret: each location has its own, so the two may use different Secrets."""
    return f"PRAVAH_{role.upper()}_{key}"


def join_mount(mount: str, path: str) -> str:
    return "/".join([mount, path.strip("/")]) if path.strip("/") else mount


def volumes(spec: PravahJobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod volumes and container mounts for volume sources and outputs."""
    pod_volumes, mounts = [], []
    for role, location, mount, read_only in (("source", spec.source, SOURCE_MOUNT, True),
                                             ("output", spec.output, OUTPUT_MOUNT, False)):
        if location is None or location.volume is None or not location.volume.claimName:
            continue
        pod_volumes.append({"name": role, "persistentVolumeClaim": {"claimName": location.volume.claimName}})
        mounts.append({"name": role, "mountPath": mount, "readOnly": read_only})
    return pod_volumes, mounts


def job_manifest(spec: PravahJobSpec, name: str, namespace: str, uid: str, sizing: Sizing,
                 settings: OperatorSettings) -> dict[str, Any]:
    """The Indexed Job: one completion per shard, retried per index, bad input not retried."""
    labels = {JOB_LABEL: name, "app.kubernetes.io/name": "pravah-runner", "app.kubernetes.io/managed-by": "pravah"}
    if spec.queueName:
        labels[QUEUE_LABEL] = spec.queueName
    pod_volumes, mounts = volumes(spec)
    cpu = str(sizing.cpu_per_runner)
    container = {
        "name": "runner",
        "image": settings.runner_image,
        "command": list(settings.runner_command),
        "env": runner_env(spec, name, namespace, uid, sizing, settings),
        "resources": {"requests": {"cpu": cpu, "memory": spec.resources.memory},
                      "limits": {"cpu": cpu, "memory": spec.resources.memory}},
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    # Runners never talk to the Kubernetes API: no API token, whichever service account they
    # use. Their one credential is a token for the operator's audience, tied to the pod.
    report_token = {"name": "report-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": settings.report_audience, "expirationSeconds": settings.report_token_seconds,
        "path": TOKEN_FILE}}]}}
    pod_spec = {"restartPolicy": "Never", "containers": [container], "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "volumes": pod_volumes + [{"name": "scratch", "emptyDir": {}}, report_token]}
    container["volumeMounts"] += [{"name": "scratch", "mountPath": settings.runner_scratch_dir},
                                  {"name": "report-token", "mountPath": TOKEN_MOUNT, "readOnly": True}]
    if settings.runner_service_account:
        pod_spec["serviceAccountName"] = settings.runner_service_account
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": sizing.shards,
        "parallelism": sizing.shards,
        "backoffLimitPerIndex": spec.maxRetriesPerShard,
        "maxFailedIndexes": 0,
        "podFailurePolicy": {"rules": [
            {"action": "FailIndex", "onExitCodes": {"containerName": "runner", "operator": "In",
                                                    "values": [EXIT_BAD_INPUT]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]},
        "suspend": bool(spec.queueName),
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if spec.activeDeadlineSeconds:
        job_spec["activeDeadlineSeconds"] = spec.activeDeadlineSeconds
    if spec.ttlSecondsAfterFinished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttlSecondsAfterFinished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(name, uid), "namespace": namespace, "labels": labels},
        "spec": job_spec,
    }

