"""grep patterns are judged by the engine that runs them, before anything runs.

Python's `re` accepts look-arounds and backreferences; the engine's regex crate does not.
A job with such a pattern must fail at admission, naming the field, instead of reaching a
runner that exits 1 on it and is retried.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
from e2e.harness import manifest_for

LOOKAHEAD = "(ERROR|WARN)(?= .*timeout)"
REFUSAL = "look-around, including look-ahead and look-behind, is not supported"
PRAVAH = Path(sys.executable).with_name("pravah")


def test_lookaround_job_fails_invalid_spec_without_a_runner(cluster):
    re.compile(LOOKAHEAD)  # the check this replaces let it through
    manifest = manifest_for("grep")
    manifest["metadata"]["name"] = "lookahead"
    manifest["spec"]["operation"]["grep"]["pattern"] = LOOKAHEAD
    cluster.apply(manifest)

    status = cluster.wait_phase("lookahead", ("Failed",))["status"]
    assert status["reason"] == "InvalidSpec", status
    assert status["message"].startswith("spec.operation.grep.pattern: ") and REFUSAL in status["message"], status
    assert cluster.jobs() == [] and cluster.pods() == []
    job_events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.kind=Job", "-o", "name")
    assert job_events.stdout.split() == []


def test_pravah_run_refuses_a_lookaround_as_bad_input(tmp_path):
    (tmp_path / "app.log").write_text("ERROR x\n")
    answer = subprocess.run([str(PRAVAH), "run", str(tmp_path), "--op", "grep", "--pattern", "(?=x)"],
                            capture_output=True, text=True, timeout=120)
    assert answer.returncode == click.UsageError.exit_code, answer
    assert "grep.pattern: " in answer.stderr and REFUSAL in answer.stderr, answer.stderr
    assert answer.stdout == ""
