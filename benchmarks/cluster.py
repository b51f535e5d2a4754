"""The cluster path: what running on Kubernetes costs over running on one machine.

Two figures, measured on the local cluster `pravah dev up` starts (real kubelets, containerd,
runc, the operator and PostgreSQL):

- throughput: the same big CSVs profiled by a PravahJob and by `pravah run` with as many
  threads as the job's runners had in all; time from `kubectl apply` to the job's
  `Succeeded` against the whole `pravah run` process;
- start-up: a one-file PravahJob, from `kubectl apply` to `Succeeded`, against a bare
  `batch/v1` Job running `true` in the runner image, from `kubectl apply` to `Complete`;
- and, not goals, what the big set adds over one file on each side (`pravah run` and
  PravahJob), which tells the cost of the data from the fixed cost of a job; and the
  throughput ratio over the big set read `REPEATS` times (hard links under numbered names),
  where that fixed cost weighs less.

Each is run `runs` times, in rounds of one run of each; the best time is kept, as for the
other rows. Every job is deleted, and its pods gone, before the next measurement starts: the
clean-up (the operator, the garbage collector, the kubelets tearing the pods down) would
otherwise take the same two cores from whatever ran next. The files are hard-linked (or
copied) into the stack's `datasets` volume. A stack already running is used and left
running; one started here is stopped at the end.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from pravah_operator.crd import API_VERSION, GROUP, PLURAL, VERSION
from pravah_operator.planning import JOB_LABEL

PRAVAH = [str(Path(sys.executable).parent / "pravah")]
NAMESPACE = "default"
TIMEOUT_SECONDS = 900
THROUGHPUT_GOAL = 0.9  # PravahJob throughput / pravah run throughput
REPEATS = 3  # the sustained row reads the big set this many times over, so a job's fixed cost weighs less
STARTUP_GOAL_SECONDS = 3.0  # one-file PravahJob minus bare Job, apply to done


@dataclass
class Stack:
    """A running `pravah dev up` stack, read from its state directory."""

    state: Path
    info: dict[str, Any]
    volumes: dict[str, str]
    started_here: bool
    api: client.ApiClient

    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run([self.info["kubectl"], f"--kubeconfig={self.info['kubeconfig']}", *args],
                                input=input, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def apply(self, document: dict[str, Any]) -> float:
        """Create the object; return the monotonic time just before the request."""
        started = time.monotonic()
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(document))
        return started

    def wait(self, kind: str, name: str, done) -> tuple[float, dict[str, Any]]:
        """Watch the object until `done(object)`; return the monotonic time that change arrived.

        A watch, not polling: a `kubectl get` every 0.1 s took so much of the 2 cores that the
        PravahJob's runner read the big set 0.8 s slower (its preempting threads were kubectl's)."""
        api = self.api
        lists = {"pravahjob": functools.partial(client.CustomObjectsApi(api).list_namespaced_custom_object,
                                                GROUP, VERSION, NAMESPACE, PLURAL),
                 "job": functools.partial(client.BatchV1Api(api).list_namespaced_job, NAMESPACE)}
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            for event in watch.Watch().stream(lists[kind], field_selector=f"metadata.name={name}",
                                              timeout_seconds=max(1, int(left))):
                found = api.sanitize_for_serialization(event["object"])
                if done(found):
                    return time.monotonic(), found
        raise RuntimeError(f"{kind}/{name} not done within {TIMEOUT_SECONDS}s")

    def delete(self, kind: str, name: str, pod_selector: str) -> None:
        """Delete the object and wait until it and its pods are gone."""
        self.kubectl("delete", kind, name, "-n", NAMESPACE, "--wait=true", f"--timeout={TIMEOUT_SECONDS}s")
        pods = client.CoreV1Api(self.api)
        listed = pods.list_namespaced_pod(NAMESPACE, label_selector=pod_selector)
        left = {pod.metadata.name for pod in listed.items}
        if not left:
            return
        for event in watch.Watch().stream(pods.list_namespaced_pod, NAMESPACE, label_selector=pod_selector,
                                          resource_version=listed.metadata.resource_version,
                                          timeout_seconds=TIMEOUT_SECONDS):
            if event["type"] == "DELETED":
                left.discard(event["object"].metadata.name)
                if not left:
                    return
        raise RuntimeError(f"pods {sorted(left)} of {kind}/{name} not gone within {TIMEOUT_SECONDS}s")

    def runner_image(self) -> str:
        return self.info["images"]["runner"]["image"]


def start_stack(log) -> Stack:
    state = Path(os.environ.get("PRAVAH_STATE") or Path(tempfile.gettempdir()) / "pravah-bench-cluster")
    env = {**os.environ, "PRAVAH_STATE": str(state)}
    running = subprocess.run([*PRAVAH, "dev", "status"], env=env, capture_output=True, text=True).returncode == 0
    if not running:
        log(f"cluster: starting the local stack (`pravah dev up`, state in {state}) ...")
        subprocess.run([*PRAVAH, "dev", "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    info = json.loads((state / "platform.json").read_text())
    stack = json.loads((state / "stack.json").read_text())
    return Stack(state, info, stack["volumes"], started_here=not running,
                 api=config.new_client_from_config(config_file=info["kubeconfig"]))


def stop_stack(stack: Stack) -> None:
    if stack.started_here:
        subprocess.run([*PRAVAH, "dev", "down"], env={**os.environ, "PRAVAH_STATE": str(stack.state)},
                       check=False, stdout=subprocess.DEVNULL)


def place_files(files: list[Path], target: Path, repeats: int = 1) -> None:
    """The files in the volume directory, each `repeats` times under a numbered name: hard
    links where the file system allows, else copies."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for repeat, path in itertools.product(range(repeats), files):
        name = target / (path.name if repeats == 1 else f"{repeat}-{path.name}")
        try:
            os.link(path, name)
        except OSError:
            shutil.copy2(path, name)
    for path in target.iterdir():
        path.chmod(0o644)  # runners read as uid 10001


def pravah_job(name: str, folder: str, include: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "PravahJob", "metadata": {"name": name},
            "spec": {"source": {"volume": {"claimName": "datasets", "path": folder}}, "include": [include],
                     "operation": {"type": "stats"},
                     "output": {"volume": {"claimName": "results", "path": f"bench/{name}"}}}}


def succeeded(found: dict[str, Any]) -> bool:
    phase = found.get("status", {}).get("phase")
    if phase == "Failed":
        raise RuntimeError(f"PravahJob {found['metadata']['name']} failed: {found['status'].get('message')}")
    return phase == "Succeeded"


def complete(found: dict[str, Any]) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True" for c in found.get("status", {}).get("conditions", []))


def run_job(stack: Stack, folder: str, include: str) -> tuple[float, dict[str, Any]]:
    """Seconds from apply to Succeeded, and the job's result document."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    started = stack.apply(pravah_job(name, folder, include))
    ended, found = stack.wait("pravahjob", name, succeeded)
    result = json.loads((Path(stack.volumes["results"]) / "bench" / name / "result.json").read_text())
    # The job is Succeeded once its result is recorded; its runner pods exit, freeing their
    # cores, and its Job completes seconds later: the next run starts after that.
    stack.wait("job", found["status"]["jobName"], complete)
    stack.delete("pravahjob", name, f"{JOB_LABEL}={name}")
    return ended - started, result


def run_bare_job(stack: Stack) -> float:
    name = f"bench-true-{uuid.uuid4().hex[:8]}"
    # The namespace enforces the restricted Pod Security Standard, as the runner pods meet it.
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                  "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"name": "true", "image": stack.runner_image(), "imagePullPolicy": "Never", "command": ["true"],
                 "securityContext": restricted}
    started = stack.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                                                                             "containers": [container]}}}})
    ended, _ = stack.wait("job", name, complete)
    stack.delete("job", name, f"batch.kubernetes.io/job-name={name}")
    return ended - started


def run_local(directory: Path, include: str, threads: int) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    proc = subprocess.run([*PRAVAH, "run", str(directory), "--op", "stats", "--include", include,
                           "--threads", str(threads), "--json"], capture_output=True, text=True, check=True)
    return time.monotonic() - started, json.loads(proc.stdout)


def measure(files: list[Path], include: str, runs: int, log) -> dict[str, Any]:
    """The cluster rows: throughput of a PravahJob and of `pravah run`, and start-up times."""
    stack = start_stack(log)
    try:
        datasets = Path(stack.volumes["datasets"])
        place_files(files, datasets / "bench-big")
        place_files(files[:1], datasets / "bench-one")
        place_files(files, datasets / "bench-repeated", REPEATS)
        total = sum(path.stat().st_size for path in files)
        jobs, locals_, one_files, local_one_files, bares, repeated, local_repeated = [], [], [], [], [], [], []
        # Each round runs every side once, so that the machine's drift (up to 30 % within an
        # hour here) falls on both sides of a ratio alike.
        for _ in range(runs):
            jobs.append(run_job(stack, "bench-big", include))
            threads = jobs[-1][1]["threads"] * jobs[-1][1].get("shards", 1)
            locals_.append(run_local(datasets / "bench-big", include, threads))
            one_files.append(run_job(stack, "bench-one", include)[0])
            local_one_files.append(run_local(datasets / "bench-one", include, threads)[0])
            bares.append(run_bare_job(stack))
            repeated.append(run_job(stack, "bench-repeated", include))
            local_repeated.append(run_local(datasets / "bench-repeated", include, threads))
        (job_seconds, result), (local_seconds, local) = min(jobs, key=itemgetter(0)), min(locals_, key=itemgetter(0))
        (repeated_seconds, repeated_result), (local_repeated_seconds, local_repeated_result) = \
            min(repeated, key=itemgetter(0)), min(local_repeated, key=itemgetter(0))
        for found, local_found in ((result, local), (repeated_result, local_repeated_result)):
            if (local_found["result"]["rows"], local_found["files"]) != (found["result"]["rows"], found["files"]):
                raise RuntimeError("the PravahJob and pravah run disagree on rows or files")
        one_file, local_one_file, bare = min(one_files), min(local_one_files), min(bares)
    finally:
        stop_stack(stack)
    return {"bytes": total, "files": len(files), "threads": threads, "shards": result.get("shards", 1),
            "job_seconds": job_seconds, "local_seconds": local_seconds,
            "throughput_ratio": local_seconds / job_seconds, "one_file_job_seconds": one_file,
            "local_one_file_seconds": local_one_file,
            "data_ratio": (local_seconds - local_one_file) / (job_seconds - one_file),
            "bare_job_seconds": bare, "startup_overhead_seconds": one_file - bare,
            "repeats": REPEATS, "repeated_job_seconds": repeated_seconds,
            "local_repeated_seconds": local_repeated_seconds,
            "repeated_ratio": local_repeated_seconds / repeated_seconds}


def goal_lines(figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, PASS/MISS) rows for the run's goal table."""
    ratio, overhead = figures["throughput_ratio"], figures["startup_overhead_seconds"]
    return [
        (f"cluster: PravahJob stats >= {THROUGHPUT_GOAL}x pravah run ({figures['threads']} threads, "
         f"{figures['bytes'] / 1e6:.0f} MB)", f"{ratio:.2f}x", "PASS" if ratio >= THROUGHPUT_GOAL else "MISS"),
        (f"cluster: one-file PravahJob apply->Succeeded <= bare Job + {STARTUP_GOAL_SECONDS:g} s "
         f"({figures['one_file_job_seconds']:.1f} s vs {figures['bare_job_seconds']:.1f} s)",
         f"{overhead:+.1f} s", "PASS" if overhead <= STARTUP_GOAL_SECONDS else "MISS"),
        # Not a goal: the time the big set adds over one file, on each side, to tell the
        # cost of the data from the fixed cost of a job.
        ("cluster: what the big set adds over one file, pravah run against PravahJob "
         f"({figures['local_seconds'] - figures['local_one_file_seconds']:.1f} s vs "
         f"{figures['job_seconds'] - figures['one_file_job_seconds']:.1f} s)", f"{figures['data_ratio']:.2f}x", "info"),
        # Not a goal either: the same measure as the first row over the big set read
        # `repeats` times, where a job's fixed cost weighs less.
        (f"cluster: the big set {figures['repeats']} times over ({figures['repeats'] * figures['bytes'] / 1e6:.0f} MB), "
         f"PravahJob against pravah run ({figures['repeated_job_seconds']:.1f} s vs "
         f"{figures['local_repeated_seconds']:.1f} s)", f"{figures['repeated_ratio']:.2f}x", "info"),
    ]
