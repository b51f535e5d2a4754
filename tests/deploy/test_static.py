"""What cannot run here (no container engine, no kind, no Tilt, no Argo CD) is checked by
reading it: the Dockerfile, the Tiltfile (Starlark, which Python can parse), the kind
config and scripts, the CI workflow; the Argo CD health check runs in a Lua interpreter;
the GitOps examples render and their PravahJobs pass a server-side dry-run."""

from __future__ import annotations

import ast
import json
import re
import subprocess

import yaml

from deploy.helpers import ROOT, find, kubectl_binary, render
from e2e.harness import wait_for

DOCKERFILE = (ROOT / "Dockerfile").read_text()
TILTFILE = (ROOT / "Tiltfile").read_text()
HEALTH = ROOT / "deploy" / "argocd" / "pravah.io" / "PravahJob"
GITOPS = ROOT / "examples" / "gitops"


def stages() -> dict[str, list[str]]:
    """Dockerfile stage name -> its instructions."""
    out: dict[str, list[str]] = {}
    current = None
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            current = match.group(2) or match.group(1)
            out[current] = [line]
        elif current:
            out[current].append(line)
    return out


def test_dockerfile_targets_and_entrypoints():
    all_stages = stages()
    assert {"engine-build", "python-engine-prebuilt", "python", "runtime", "runner", "operator", "api"} \
        <= set(all_stages)
    entry = {name: next(i for i in all_stages[name] if i.startswith("ENTRYPOINT")) for name in ("runner", "operator", "api")}
    assert entry == {"runner": 'ENTRYPOINT ["pravah-runner"]', "operator": 'ENTRYPOINT ["pravah-operator"]',
                     "api": 'ENTRYPOINT ["pravah-api"]'}
    # Every image carries the Rust engine: the runner runs it, the operator and the API
    # validate specs with it; every runtime image is slim and runs unprivileged.
    for name in ("runner", "operator", "api"):
        assert any("--from=python-engine " in i for i in all_stages[name]), name
    runtime = all_stages["runtime"]
    # One base for every stage: python:3.11-slim for users, a debootstrapped Debian here.
    assert runtime[0] == "FROM ${BASE_IMAGE} AS runtime"
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE
    assert not DOCKERFILE.startswith("# syntax="), "a syntax line pulls a frontend image"
    assert "USER 10001:10001" in runtime
    # The engine is built in the image (rustup) or taken as a wheel built outside it.
    assert any("maturin build --release" in i for i in all_stages["engine-build"])
    assert any("COPY dist/engine/" in i for i in all_stages["python-engine-prebuilt"])
    # The user id matches the manifests' securityContext.
    for deployment in find(render("base"), "Deployment"):
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_dockerignore_keeps_the_context_small_but_complete():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "**"
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE, re.M))
    for source in copied:
        assert f"!{source}" in lines, f"{source} is copied by the Dockerfile but excluded by .dockerignore"
    assert "engine-crate/target" in lines


def test_tiltfile_parses_and_names_what_exists():
    tree = ast.parse(TILTFILE, "Tiltfile")
    forbidden = (ast.While, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Try, ast.With, ast.Global, ast.Lambda)
    assert not [type(n).__name__ for n in ast.walk(tree) if isinstance(n, forbidden)], "not Starlark"
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    for builtin in ("kustomize", "k8s_yaml", "k8s_resource", "docker_build_with_restart", "local_resource", "sync",
                    "fall_back_on", "link", "allow_k8s_contexts"):
        assert builtin in calls, builtin
    assert "kustomize('manifests/overlays/dev')" in TILTFILE
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for path in [s for s in strings if s.startswith("./")]:
        assert (ROOT / path).exists(), f"the Tiltfile names {path}, which does not exist"
    targets = set(stages())
    for target in re.findall(r"python_image\('[^']+', '(\w+)'", TILTFILE) + ["runner"]:
        assert target in targets
    # Every workload of the dev overlay gets a k8s_resource, every other object is grouped,
    # and the images Tilt builds are the ones the overlay uses.
    dev = render("overlays/dev")
    for workload in find(dev, "Deployment") + find(dev, "Job"):
        assert f"k8s_resource('{workload['metadata']['name']}'" in TILTFILE, workload["metadata"]["name"]
    grouped = set(re.findall(r"'([^':]+:[a-z]+(?::[a-z-]+)?)'", TILTFILE))
    for doc in dev:
        if doc["kind"] in ("Deployment", "Job", "Service"):  # Tilt attaches a Service to the pods it selects
            continue
        selector = f"{doc['metadata']['name']}:{doc['kind'].lower()}"
        assert selector in grouped or f"{selector}:{doc['metadata'].get('namespace')}" in grouped, selector
    images = {c["image"].rsplit(":", 1)[0] for d in find(dev, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]}
    assert {"localhost:5001/pravah-operator", "localhost:5001/pravah-api"} <= images
    assert "localhost:5001/pravah-runner:latest" in TILTFILE.replace("{r}", "localhost:5001")
    for name in re.search(r"for example in \[([^\]]+)\]", TILTFILE).group(1).replace("'", "").split(","):
        assert (ROOT / "examples" / f"{name.strip()}-volume.yaml").exists()


def test_kind_config_and_scripts():
    config = yaml.safe_load((ROOT / "kind" / "cluster.yaml").read_text()
                            .replace("@DATASETS@", "/repo/examples").replace("@RESULTS@", "/results"))
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    dev = render("overlays/dev")
    pv_paths = {pv["spec"]["hostPath"]["path"] for pv in find(dev, "PersistentVolume")}
    for node in config["nodes"]:
        assert {m["containerPath"] for m in node["extraMounts"]} == pv_paths
    for script in ("kind-up", "kind-down"):
        path = ROOT / "scripts" / script
        assert path.stat().st_mode & 0o111, f"scripts/{script} is not executable"
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert "local-registry-hosting" in (ROOT / "scripts" / "kind-up").read_text()


def test_ci_runs_the_same_command_as_ci_run():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert any(step.get("run") == "bash .ci/run" for step in steps)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert workflow["jobs"]["test"]["timeout-minutes"] <= 90


# -- Argo CD health check, run in Lua -----------------------------------------------------

def lua_health(obj: dict) -> dict:
    import lupa  # a dev dependency: the Lua interpreter that runs the Argo CD check
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value):
        if isinstance(value, dict):
            return runtime.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return runtime.table_from([to_lua(v) for v in value])
        return value

    function = runtime.eval("function(obj) " + (HEALTH / "health.lua").read_text() + " end")
    result = function(to_lua(obj))
    return {"status": result["status"], "message": result["message"]}


def test_argocd_health_check_follows_the_phase():
    cases = yaml.safe_load((HEALTH / "health_test.yaml").read_text())["tests"]
    assert len(cases) >= 6
    for case in cases:
        obj = yaml.safe_load((HEALTH / case["inputPath"]).read_text())
        assert lua_health(obj) == case["healthStatus"], case["inputPath"]


def test_argocd_configmap_carries_the_same_lua():
    cm = yaml.safe_load((GITOPS / "argocd" / "argocd-cm-health.yaml").read_text())
    assert cm["data"]["resource.customizations.health.pravah.io_PravahJob"] == (HEALTH / "health.lua").read_text()


# -- GitOps examples ------------------------------------------------------------------------

def test_gitops_layout():
    platform = render("../examples/gitops/platform")
    assert platform == render("overlays/production")
    for path in (GITOPS / "argocd").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] in ("Application", "ConfigMap")
    apps = {doc["metadata"]["name"]: doc for p in (GITOPS / "argocd").glob("*.yaml") for doc in yaml.safe_load_all(p.read_text())
            if doc["kind"] == "Application"}
    for app in apps.values():
        assert (ROOT / app["spec"]["source"]["path"]).is_dir()
    waves = {name: int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, app in apps.items()}
    assert waves["pravah-platform"] < waves["pravah-jobs-analytics"]
    flux = {doc["metadata"]["name"]: doc for p in (GITOPS / "flux").glob("*.yaml") for doc in yaml.safe_load_all(p.read_text())
            if doc["kind"] == "Kustomization"}
    assert flux["pravah-jobs-analytics"]["spec"]["dependsOn"] == [{"name": "pravah-platform"}]
    (check,) = flux["pravah-jobs-analytics"]["spec"]["healthCheckExprs"]
    assert check["kind"] == "PravahJob" and {"current", "inProgress", "failed"} <= set(check)
    for doc in flux.values():
        assert (ROOT / doc["spec"]["path"]).is_dir()


def test_gitops_jobs_pass_server_side_dry_run(control_plane, crd):
    """Admitted by the platform they are synced with: the production overlay's S3 allowlist
    is in force (on the installed `pravah-tenancy` ConfigMap) for the dry-run."""
    jobs = GITOPS / "jobs" / "analytics"
    docs = render("../examples/gitops/jobs/analytics")
    assert {doc["kind"] for doc in docs} == {"Namespace", "ServiceAccount", "PravahJob"}
    kubectl = [kubectl_binary(), f"--kubeconfig={control_plane.kubeconfig}"]
    namespace = [doc for doc in docs if doc["kind"] == "Namespace"]
    subprocess.run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump_all(namespace), text=True, check=True,
                   capture_output=True)
    platform = find(render("../examples/gitops/platform"), "ConfigMap", "pravah-tenancy")[0]["data"]
    installed = json.loads(control_plane.kubectl("-n", "pravah-system", "get", "configmap", "pravah-tenancy",
                                                 "-o", "json").stdout)["data"]

    def set_allowlist(data: dict) -> None:
        control_plane.kubectl("-n", "pravah-system", "patch", "configmap", "pravah-tenancy", "--type=merge",
                              "-p", json.dumps({"data": data}))

    def dry_run():
        result = subprocess.run([*kubectl, "apply", "--dry-run=server", "-k", str(jobs)], capture_output=True,
                                text=True, timeout=120)
        # The policy sees a changed parameter a moment later.
        return result if result.returncode == 0 or "is not allowed" not in result.stderr else None

    set_allowlist(platform)
    try:
        result = wait_for(dry_run, 30, "the gitops jobs' endpoints to be allowed")
    finally:
        set_allowlist(installed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(docs)
