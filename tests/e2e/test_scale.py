"""A checksum job over a million tiny files on the real cluster, with the runner's and the
operator's memory sampled while it runs and the operator's Lease watched.

The suite runs it over 20,000 files; the million-file run, which takes long on a small
machine, sets the count:

    PRAVAH_SCALE_FILES=1000000 .venv/bin/pytest -q -s -m scale tests/e2e/test_scale.py

The figures it prints are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e.harness import OPERATOR_DEPLOYMENT, manifest_for, runner_pids, wait_for

pytestmark = pytest.mark.scale
FILES = int(os.environ.get("PRAVAH_SCALE_FILES") or 20_000)
PER_DIRECTORY = 1000
SAMPLE_SECONDS = 2.0  # the operator and the Lease
RUNNER_SAMPLE_SECONDS = 0.25  # runners of 20,000 tiny files live a few seconds
MIB = 1 << 20


def rss(pid: int) -> int:
    """Resident memory of a process in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def operator_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"pravah-operator" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@dataclass
class Sampler:
    """Memory of the job's runners and of the operator, and the Lease, every few seconds."""

    cluster: object
    job_uid: str
    runner: list[int] = field(default_factory=list)
    operator: list[int] = field(default_factory=list)
    leases: list[tuple[str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def lease(self) -> tuple[str, str]:
        out = self.cluster.operator.kubectl("get", "lease", OPERATOR_DEPLOYMENT, "-o", "json").stdout
        spec = json.loads(out)["spec"]
        return spec.get("holderIdentity"), spec.get("renewTime")

    def run(self) -> None:
        next_operator_sample = time.monotonic()
        while not self.stop.wait(RUNNER_SAMPLE_SECONDS):
            runners = sum(rss(pid) for pid in runner_pids(self.job_uid))
            if runners:
                self.runner.append(runners)
            if time.monotonic() >= next_operator_sample:
                next_operator_sample = time.monotonic() + SAMPLE_SECONDS
                self.operator.append(sum(rss(pid) for pid in operator_pids()))
                self.leases.append(self.lease())


def write_tiny_files(root: Path, count: int) -> dict[str, str]:
    """`count` one-line files, PER_DIRECTORY to a directory; returns path -> sha256."""
    digests = {}
    for index in range(count):
        relative = f"d{index // PER_DIRECTORY:04d}/f{index:07d}.txt"
        body = f"{index}\n".encode()
        target = root / relative
        if index % PER_DIRECTORY == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        digests[relative] = hashlib.sha256(body).hexdigest()
    return digests


def figures(name: str, samples: list[int]) -> str:
    quarter = max(1, len(samples) // 4)
    return (f"{name}: {len(samples)} samples, first quarter max {max(samples[:quarter]) / MIB:.0f} MiB, "
            f"last quarter max {max(samples[-quarter:]) / MIB:.0f} MiB, peak {max(samples) / MIB:.0f} MiB")


def test_checksum_over_many_tiny_files_with_flat_memory_and_a_kept_lease(cluster, report, chaos):
    digests = write_tiny_files(cluster.datasets / "tiny", FILES)
    manifest = manifest_for("checksum", source={"volume": {"claimName": "datasets", "path": "tiny"}},
                            operation={"type": "checksum", "checksum": {"algorithm": "sha256"}},
                            output={"volume": {"claimName": "results", "path": "tiny-sums"}}, parallelism=2)
    sampler = Sampler(cluster, "")
    # A settings change before the test rolls the operator out: start once the running pod leads.
    wait_for(lambda: sampler.lease()[0] in {pod["metadata"]["name"] for pod in cluster.operator.pods()},
             120, "the running operator pod to hold the Lease")
    cluster.apply(manifest)
    sampler.job_uid = cluster.get("data-checksums")["metadata"]["uid"]
    thread = threading.Thread(target=sampler.run, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        status = cluster.wait_phase("data-checksums", timeout=6 * 3600)["status"]
    finally:
        sampler.stop.set()
        thread.join()
    elapsed = time.monotonic() - started
    assert sampler.runner and sampler.operator, "no runner or operator process was sampled while the job ran"
    lines = [f"checksum of {FILES} files: {elapsed:.0f}s",
             figures("runner RSS (sum over the job's runner processes)", sampler.runner),
             figures("operator RSS", sampler.operator),
             f"Lease: holders {sorted({holder for holder, _ in sampler.leases})}, "
             f"{len({renewed for _, renewed in sampler.leases})} distinct renewTimes in {len(sampler.leases)} samples"]
    for line in lines:
        print(line)
        report(line)

    assert status["result"]["summary"]["files"] == FILES and status["errors"]["count"] == 0
    written = (cluster.results / "tiny-sums" / "sha256sums.txt").read_text().splitlines()
    assert dict(reversed(line.split("  ", 1)) for line in written) == digests
    # The Lease changes hands only when its holder is gone: never, unless chaos mode deletes
    # operator pods, and then only from a deleted pod to its successor.
    holders = list(dict.fromkeys(holder for holder, _ in sampler.leases))
    deleted = set(chaos.killer.deleted) if chaos else set()
    assert set(holders[:-1]) <= deleted, f"the Lease left live holders: {holders}, deleted pods {sorted(deleted)}"
    renewals = [renewed for _, renewed in sampler.leases]
    assert renewals == sorted(renewals) and len(set(renewals)) > len(renewals) // 4, "the Lease was renewed"
    for name, samples in (("operator", sampler.operator), ("runner", sampler.runner)):
        quarter = max(1, len(samples) // 4)
        assert max(samples[-quarter:]) <= max(samples[:quarter]) + 64 * MIB, f"{name} memory is flat"
