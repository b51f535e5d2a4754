"""`pravah dev up` / `pravah dev down`: the whole local stack from one command.

Runs the commands as a person would (a fresh state directory, nothing started before),
applies an example PravahJob with kubectl, waits for it to succeed in real containers,
stops the stack and checks that no process of it is left. Real nodes are the machine's
(node names, bridges, iptables): this test runs in a pytest session of its own
(marker `own_cluster`, see the Makefile), never beside the suite's cluster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.helpers import ROOT
from e2e import reference
from e2e.harness import wait_for
from pravah.localcluster.nodes import RUN_ROOT

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.platform, pytest.mark.own_cluster]


def processes_of(state: Path) -> list[str]:
    """Live processes started for this stack: their environment or command line names the
    state directory (control plane, kubelets, containerd, PostgreSQL, S3) or the nodes'
    runtime directory (containerd's shims, which hold the containers)."""
    marks = [f"PRAVAH_STATE={state}".encode(), str(RUN_ROOT).encode()]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.split(") ", 1)[1][0] == "Z":
            continue
        if any(mark in environ or mark in cmdline for mark in marks) or str(state).encode() in cmdline:
            found.append(f"{entry.name}: {cmdline.decode(errors='replace')[:200]}")
    return found


def test_dev_up_runs_a_job_and_down_stops_everything(tmp_path):
    state = tmp_path / "state"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PRAVAH_")},
           "PRAVAH_STATE": str(state), "PATH": f"{BIN}:{os.environ['PATH']}"}
    up = subprocess.run([str(BIN / "pravah"), "dev", "up"], env=env, cwd=tmp_path,
                        capture_output=True, text=True, timeout=1200)
    stack = json.loads((state / "stack.json").read_text()) if (state / "stack.json").exists() else {}
    try:
        assert up.returncode == 0, f"pravah dev up failed:\n{up.stdout}\n{up.stderr}"
        printed = up.stdout
        kubeconfig = re.search(r"^kubeconfig:\s+(\S+)", printed, re.M).group(1)
        kubectl = re.search(r"^kubectl:\s+(\S+)", printed, re.M).group(1)
        for what in ("API server:", "nodes:", "image:", "PostgreSQL:", "S3 (", "operator:", "REST API:",
                     "datasets ->", "results  ->"):
            assert what in printed, f"`pravah dev up` does not print {what!r}:\n{printed}"
        datasets = Path(stack["volumes"]["datasets"])
        assert (datasets / "data" / "sales").is_dir(), "examples/data was not copied into the datasets volume"

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True,
                                  timeout=120, env=env)

        applied = run("apply", "-f", str(ROOT / "examples" / "count-volume.yaml"))
        assert applied.returncode == 0, applied.stderr
        waited = run("wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s", "pj/data-count")
        status = run("get", "pj/data-count", "-o", "json")
        operator_log = run("-n", "pravah-system", "logs", "deploy/pravah-operator").stdout
        assert waited.returncode == 0, f"{waited.stderr}\n{status.stdout[-3000:]}\n{operator_log[-3000:]}"
        claim, _, key = json.loads(status.stdout)["status"]["result"]["uri"].removeprefix("pvc://").partition("/")
        reference.count(json.loads((Path(stack["volumes"][claim]) / key).read_text()),
                        reference.source_files(datasets / "data"))
        assert "Forbidden" not in operator_log
        import requests

        assert requests.get(stack["api"] + "/healthz", timeout=10).status_code == 200
        token = run("create", "token", "pravah-dev-user").stdout.strip()
        listed = requests.get(stack["api"] + "/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert listed.status_code == 200 and "data-count" in listed.text, listed.text
        # `up` again while running only prints how to reach it.
        again = subprocess.run([str(BIN / "pravah"), "dev", "up"], env=env, capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 0 and "already running" in again.stderr, again.stderr
    finally:
        down = subprocess.run([str(BIN / "pravah"), "dev", "down"], env=env, capture_output=True, text=True,
                              timeout=180)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not processes_of(state), 120, "every process of the stack to end after `pravah dev down`",
             interval=0.5)
    assert not (state / "stack.json").exists() and not (state / "platform.json").exists()
    status = subprocess.run([str(BIN / "pravah"), "dev", "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 3 and "not running" in status.stdout
