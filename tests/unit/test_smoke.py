"""The smoke job of `helm test` (python -m pravah_operator.smoke): the PravahJob it creates is
a valid count job, and only a job that Succeeded having counted files passes. Its run on a
real cluster: tests/deploy/test_helm_install.py."""

from __future__ import annotations

import pytest

from pravah.spec import PravahJobSpec
from pravah_operator import smoke
from pravah_operator.crd import API_VERSION, KIND


def test_the_job_is_a_valid_count_job_with_a_generated_name():
    manifest = smoke.manifest(smoke.parse_args(["--namespace", "analytics", "--claim", "datasets", "--path", "s"]))
    assert (manifest["apiVersion"], manifest["kind"]) == (API_VERSION, KIND)
    assert "name" not in manifest["metadata"] and manifest["metadata"]["generateName"] == smoke.NAME_PREFIX
    spec = PravahJobSpec.model_validate(manifest["spec"])
    assert spec.operation.type == "count"
    assert (spec.source.volume.claimName, spec.source.volume.path) == ("datasets", "s")
    # The result goes somewhere (the operator refuses a job without an output): the same claim by default.
    assert (spec.output.volume.claimName, spec.output.volume.path) == ("datasets", "pravah-smoke")


def test_the_output_may_go_to_another_claim():
    args = smoke.parse_args(["--namespace", "a", "--claim", "datasets", "--output-claim", "results",
                             "--output-path", "checks/smoke"])
    assert smoke.manifest(args)["spec"]["output"] == {"volume": {"claimName": "results", "path": "checks/smoke"}}


@pytest.mark.parametrize(("status", "passes"), [
    ({"phase": "Succeeded", "result": {"summary": {"files": 3, "lines": 12}}}, True),
    ({"phase": "Succeeded", "result": {"summary": {"files": 0}}}, False),
    ({"phase": "Succeeded"}, False),
    ({"phase": "Failed", "reason": "BadInput", "message": "no such directory"}, False),
    ({"phase": "Cancelled"}, False),
], ids=["counted-files", "empty-directory", "no-result", "failed", "cancelled"])
def test_only_a_job_that_counted_files_passes(status, passes):
    problem = smoke.verdict(status)
    assert (problem is None) == passes, problem
    if status["phase"] == "Failed":
        assert "Failed" in problem and "no such directory" in problem


def test_help_says_what_it_does_and_what_it_needs(capsys):
    with pytest.raises(SystemExit) as exited:
        smoke.parse_args(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for said in ("Exit 0 only if it Succeeded and counted at least one file", "create, get and delete on pravahjobs",
                 "get on the claims", "pravah-runner", "--output-claim"):
        assert said in text, said
