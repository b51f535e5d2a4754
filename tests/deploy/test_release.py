"""The release workflow publishes what the project builds: the images scripts/images builds
(same names, same Dockerfile targets) for both platforms, each with an SBOM and a cosign
signature on its digest, and the Helm chart. Every workflow passes actionlint, built from
its Go module. The workflow's own shell steps (version and image list, digests, release
notes) are run here with bash; what needs GitHub or a registry is checked by reading."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.helpers import ROOT
from e2e.harness import get_json
from pravah.localcluster import install
from deploy.test_static import stages

WORKFLOWS = ROOT / ".github" / "workflows"
RELEASE = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
JOBS: dict[str, dict[str, Any]] = RELEASE["jobs"]
IMAGES_SCRIPT = (ROOT / "scripts" / "images").read_text()
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
PLATFORMS = {"linux/amd64", "linux/arm64"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


# -- reading the workflow -------------------------------------------------------------------

def uses(step: dict[str, Any], action: str) -> bool:
    return step.get("uses", "").startswith(f"{action}@")


def step_with_id(job: dict[str, Any], step_id: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("id") == step_id]
    return step


def step_named(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("name") == name]
    return step


def pushing_build() -> tuple[dict[str, Any], dict[str, Any]]:
    """The job and the docker/build-push-action step that push the images."""
    found = [(job, step) for job in JOBS.values() for step in job["steps"]
             if uses(step, "docker/build-push-action") and step["with"].get("push") is True]
    assert len(found) == 1, f"expected one pushing build step, found {len(found)}"
    return found[0]


def evaluate(text: str, context: dict[str, Any]) -> str:
    """Substitute ${{ matrix.x }} and ${{ needs.<job>.outputs.x }} from `context`."""
    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        path = expression.split(".")
        node: Any = context
        for part in path:
            assert isinstance(node, dict) and part in node, f"unknown expression: {expression}"
            node = node[part]
        return str(node)
    return EXPRESSION.sub(value, text)


def matrix_rows(job: dict[str, Any], needs: dict[str, Any]) -> list[dict[str, str]]:
    """Every combination of the job's matrix, with fromJSON(needs...) lists resolved."""
    matrix = job.get("strategy", {}).get("matrix", {})
    assert not {"include", "exclude"} & set(matrix), "include/exclude are not modelled here"
    axes = {}
    for key, values in matrix.items():
        if isinstance(values, str):
            inner = re.fullmatch(r"\$\{\{\s*fromJSON\((.+)\)\s*\}\}", values)
            assert inner, f"matrix.{key}: {values}"
            values = json.loads(evaluate("${{ " + inner.group(1) + " }}", {"needs": needs}))
        axes[key] = values
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


# -- running the workflow's shell steps -------------------------------------------------------

def run_step(step: dict[str, Any], env: dict[str, str], cwd: Path, scratch: Path
             ) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Run a `run:` step as the runner does (bash -eo pipefail) in `cwd`; return its outputs."""
    assert RELEASE["defaults"]["run"]["shell"] == "bash"
    output = scratch / "github-output"
    output.write_text("")
    # python3 is the runner's; here, the interpreter running the tests (tomllib needs 3.11).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                            env={"PATH": path, "GITHUB_OUTPUT": str(output), **env}, cwd=cwd,
                            capture_output=True, text=True, timeout=60)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return result, outputs


def run_meta(tag: str, owner: str, scratch: Path) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """The meta job's step, in the checkout, for a tag pushed by an owner."""
    env = {"GITHUB_REF_NAME": tag, "GITHUB_REPOSITORY_OWNER": owner}
    return run_step(step_with_id(JOBS["meta"], "meta"), env, ROOT, scratch)


@pytest.fixture(scope="module")
def meta(tmp_path_factory) -> dict[str, str]:
    """The meta job's outputs for a tag of the project's version, owner in mixed case."""
    result, outputs = run_meta(f"v{PROJECT_VERSION}", "Pravah-IO", tmp_path_factory.mktemp("meta"))
    assert result.returncode == 0, result.stdout + result.stderr
    return outputs


def image_prefix() -> str:
    """What scripts/images puts before a target's name to name its image."""
    return re.search(r'IMAGE\[\$t\]="localhost/([\w-]*)\$t:', IMAGES_SCRIPT).group(1)


def scripts_images() -> dict[str, str]:
    """Image name -> Dockerfile target, as scripts/images builds them."""
    targets = re.search(r"^TARGETS=\(([^)]*)\)$", IMAGES_SCRIPT, re.M).group(1).split()
    assert '--target "$t"' in IMAGES_SCRIPT, "scripts/images no longer builds the target named $t"
    return {f"{image_prefix()}{target}": target for target in targets}


# -- actionlint -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def actionlint() -> str:
    """Built from its Go module once per version; a machine that cannot build it fails here."""
    result = subprocess.run([str(ROOT / "scripts" / "actionlint-bin")], capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        pytest.fail(f"scripts/actionlint-bin could not build actionlint:\n{result.stderr}", pytrace=False)
    return result.stdout.strip()


def test_every_workflow_passes_actionlint(actionlint):
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {p.name for p in workflows} >= {"ci.yml", "release.yml"}
    # actionlint runs shellcheck on every `run:` script when shellcheck is on PATH.
    result = subprocess.run([actionlint, "-no-color", *map(str, workflows)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_by_major_version():
    for job in JOBS.values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), step["uses"]


# -- what is published ------------------------------------------------------------------------

def test_a_version_tag_triggers_it():
    triggers = RELEASE.get("on", RELEASE.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers == {"push": {"tags": ["v*"]}}


def test_meta_gives_the_version_the_lower_case_registry_and_the_images(meta):
    assert meta["version"] == PROJECT_VERSION
    assert meta["registry"] == "ghcr.io/pravah-io"
    assert json.loads(meta["images"]) == list(scripts_images().values())


def test_a_tag_that_is_not_the_project_version_stops_the_release(tmp_path):
    result, outputs = run_meta(f"v{PROJECT_VERSION}.1", "pravah-io", tmp_path)
    assert result.returncode != 0
    assert f"tag v{PROJECT_VERSION}.1 does not match" in result.stdout
    assert outputs == {}


def published_images(meta: dict[str, str]) -> dict[str, str]:
    """Image name -> Dockerfile target, as the release workflow pushes them."""
    job, build = pushing_build()
    published = {}
    for row in matrix_rows(job, {"meta": {"outputs": meta}}):
        context = {"matrix": row, "needs": {"meta": {"outputs": meta}}}
        tag = evaluate(build["with"]["tags"], context)
        repository, version = tag.rsplit(":", 1)
        assert version == PROJECT_VERSION
        assert repository.startswith(f"{meta['registry']}/")
        published[repository.rsplit("/", 1)[1]] = evaluate(build["with"]["target"], context)
    return published


def test_release_builds_exactly_the_images_scripts_images_builds(meta):
    published = published_images(meta)
    assert published == scripts_images()
    assert set(published.values()) <= set(stages()), "a target the Dockerfile does not have"


def test_the_real_nodes_run_the_images_the_release_publishes(meta, pravah):
    """The images scripts/images (what `make images` runs) built for the platform are the ones
    the release publishes, one for one, and they are what the platform's pods run."""
    built = pravah.images.ensure()
    published = published_images(meta)
    assert {built[target].repository.rsplit("/", 1)[1]: target for target in published.values()} == published
    deployments = get_json(pravah.control_plane, "deployments", "-n", install.SYSTEM_NAMESPACE)["items"]
    running = {container["image"] for deployment in deployments
               for container in deployment["spec"]["template"]["spec"]["containers"]}
    assert running == {built["operator"].name, built["api"].name}
    config = get_json(pravah.control_plane, "configmap", "pravah-operator-config", "-n",
                      install.SYSTEM_NAMESPACE)["data"]
    assert config["PRAVAH_RUNNER_IMAGE"] == built["runner"].name


def test_make_images_builds_with_scripts_images_and_pushes_to_registry():
    registry, version = "registry.example:5000/team", "9.9.9"
    dry = subprocess.run(["make", "-n", "images", f"REGISTRY={registry}", f"VERSION={version}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert '"$(scripts/images)"' in dry.stdout
    assert f'"docker://{registry}/{image_prefix()}$name:{version}"' in dry.stdout
    default = subprocess.run(["make", "-n", "images", "REGISTRY=r.example"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert f":{PROJECT_VERSION}\"" in default.stdout, "the tag defaults to the project's version"


def test_both_platforms_are_built_with_emulation_for_the_other():
    builds = 0
    for name, job in JOBS.items():
        steps = job["steps"]
        for index, step in enumerate(steps):
            if uses(step, "docker/build-push-action"):
                builds += 1
                assert set(step["with"]["platforms"].split(",")) == PLATFORMS, name
                before = steps[:index]
                assert any(uses(s, "docker/setup-qemu-action") for s in before), f"{name}: no QEMU for arm64"
                assert any(uses(s, "docker/setup-buildx-action") for s in before), name
    assert builds >= 1


def test_each_image_gets_an_sbom_and_a_signature_on_its_digest(meta):
    job, build = pushing_build()
    steps = job["steps"]
    digest = f"${{{{ steps.{build['id']}.outputs.digest }}}}"
    repository = build["with"]["tags"].rsplit(":", 1)[0]
    after = steps[steps.index(build) + 1:]
    assert build["with"]["sbom"] is True  # per platform, inside the signed index

    (sbom,) = [s for s in after if uses(s, "anchore/sbom-action")]
    assert sbom["with"]["image"] == f"{repository}@{digest}"

    (sign,) = [s for s in after if "cosign sign" in s.get("run", "")]
    assert any(uses(s, "sigstore/cosign-installer") for s in steps[:steps.index(sign)])
    env = {**job.get("env", {}), **sign.get("env", {})}
    commands = re.findall(r"^cosign (sign|attest) .*\"\$\{(\w+)\}@\$\{(\w+)\}\"$", sign["run"], re.M)
    assert {c[0] for c in commands} == {"sign", "attest"}
    for _, image, ref in commands:
        assert env[image] == repository and env[ref] == digest
    predicate = re.search(r'--predicate "\$(\w+)"', sign["run"]).group(1)
    assert env[predicate] == sbom["with"]["output-file"]
    assert job["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}


def test_the_chart_is_pushed_as_oci_and_signed_by_digest():
    job = JOBS["chart"]
    push = step_with_id(job, "push")
    chart = re.search(r"helm package (\S+) ", push["run"]).group(1)
    assert yaml.safe_load((ROOT / chart / "Chart.yaml").read_text())["name"] == "pravah"
    assert re.search(r'helm push "dist/pravah-\$VERSION\.tgz" "oci://\$CHARTS"', push["run"])
    assert job["env"]["CHARTS"] == "${{ needs.meta.outputs.registry }}/charts"
    (sign,) = [s for s in job["steps"] if "cosign sign" in s.get("run", "")]
    assert sign["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}"
    assert '"${CHARTS}/pravah@${DIGEST}"' in sign["run"]


def test_permissions_are_least_privilege():
    assert RELEASE["permissions"] == {}
    writers = {name: {k for k, v in job["permissions"].items() if v == "write"} for name, job in JOBS.items()}
    assert writers == {"meta": set(), "engine": set(), "images": {"packages", "id-token"},
                       "chart": {"packages", "id-token"}, "release": {"contents"}}


def test_release_notes_list_every_digest(meta, tmp_path):
    """The digest files the image jobs write are the ones the notes list, one row each."""
    job, _ = pushing_build()
    record = step_named(job, "record the digest")
    digests = {}
    (tmp_path / "release").mkdir()
    for row in matrix_rows(job, {"meta": {"outputs": meta}}):
        context = {"matrix": row, "needs": {"meta": {"outputs": meta}}}
        digest = "sha256:" + hashlib.sha256(row["image"].encode()).hexdigest()
        env = {k: evaluate(v, {**context, "steps": {"build": {"outputs": {"digest": digest}}}})
               for k, v in record["env"].items()}
        result, _ = run_step(record, env, tmp_path, tmp_path)
        assert result.returncode == 0, result.stderr
        digests[env["NAME"]] = digest

    notes_step = step_named(JOBS["release"], "release notes with the digests")
    chart_digest = "sha256:" + hashlib.sha256(b"chart").hexdigest()
    values = {"REGISTRY": meta["registry"], "VERSION": meta["version"], "CHART_DIGEST": chart_digest,
              "WORKFLOW": "https://github.com/pravah-io/pravah/.github/workflows/release.yml"}
    assert set(notes_step["env"]) == set(values)
    result, _ = run_step(notes_step, {**values, "GITHUB_REF": f"refs/tags/v{meta['version']}"}, tmp_path, tmp_path)
    assert result.returncode == 0, result.stderr
    notes = (tmp_path / "notes.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| `(sha256:[0-9a-f]{64})` \|$", notes, re.M)
    assert dict(rows) == {f"{meta['registry']}/{name}:{meta['version']}": d for name, d in digests.items()}
    assert chart_digest in notes and f"oci://{meta['registry']}/charts/pravah --version {meta['version']}" in notes
    publish = [s for s in JOBS["release"]["steps"] if uses(s, "softprops/action-gh-release")]
    assert publish and publish[0]["with"]["body_path"] == "notes.md"
