"""The PravahJob and PravahCronJob CRDs in a real API server: `kubectl apply` refuses bad
manifests, naming the field.

The OpenAPI schema is also checked in tests/unit/test_crd.py; the CEL rules
(x-kubernetes-validations) are only evaluated here. These tests write statuses by hand, so
they use an API server of their own: on the session's cluster the installed operator
would write them too.
"""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path

import pytest
import yaml
from pravah.localcluster import ControlPlane, PlatformError
from pravah_operator import crd

pytestmark = pytest.mark.platform

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "stats-volume.yaml"


@pytest.fixture(scope="module")
def pravah_crd(tmp_path_factory):
    """An API server with no operator, the checked-in CRDs installed and established."""
    cp = ControlPlane(tmp_path_factory.mktemp("crd-cp"), scheduler=False)
    try:
        cp.start()
    except PlatformError as e:
        pytest.fail(f"could not start a control plane: {e}", pytrace=False)
    for path, name in ((crd.CRD_FILE, crd.CRD_NAME), (crd.CRON_CRD_FILE, crd.CRON_CRD_NAME)):
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        cp.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    yield cp
    cp.stop()


@pytest.fixture
def namespace(pravah_crd) -> str:
    """A fresh namespace of that API server."""
    name = f"crd-{uuid.uuid4().hex[:8]}"
    pravah_crd.kubectl("create", "namespace", name)
    return name


def apply(cp, namespace: str, manifest: dict, *extra: str):
    """`kubectl apply` (strict server-side field validation); retried while discovery catches up."""
    text = yaml.safe_dump(manifest)
    deadline = time.monotonic() + 120
    while True:
        r = cp.kubectl("apply", "-n", namespace, "-f", "-", *extra, input=text, check=False)
        if "no matches for kind" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def manifest(name: str, **spec) -> dict:
    base = yaml.safe_load(EXAMPLE.read_text())
    base["metadata"] = {"name": name}
    base["spec"].update(spec)
    return base


def refused(r, *words: str) -> str:
    assert r.returncode != 0, f"accepted, but should be refused:\n{r.stdout}"
    for word in words:
        assert word in r.stderr, f"{word!r} not in the error:\n{r.stderr}"
    return r.stderr


def test_examples_are_accepted(pravah_crd, namespace):
    for path in sorted((REPO / "examples").glob("*.yaml")):
        r = pravah_crd.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
        assert r.returncode == 0, f"{path.name}: {r.stderr}"
    names = pravah_crd.kubectl("get", "pj", "-n", namespace, "-o", "name").stdout.split()
    assert "pravahjob.pravah.io/sales-profile" in names


def test_defaults_are_filled_in(pravah_crd, namespace):
    r = apply(pravah_crd, namespace, manifest("defaults"))
    assert r.returncode == 0, r.stderr
    spec = yaml.safe_load(pravah_crd.kubectl("get", "pj", "defaults", "-n", namespace, "-o", "yaml").stdout)["spec"]
    assert spec["resources"] == {"cpu": "auto", "memory": "2Gi"}
    assert spec["maxRetriesPerShard"] == 2 and spec["suspend"] is False


@pytest.mark.parametrize(("name", "change", "words"), [
    ("unknown-operation", {"operation": {"type": "md5"}}, ["spec.operation.type", "md5"]),
    ("two-sources",
     {"source": {"volume": {"claimName": "datasets", "path": "x"}, "s3": {"bucket": "raw"}}},
     ["spec.source", "exactly one of s3 or volume must be set"]),
    ("no-source", {"source": {}}, ["spec.source", "exactly one of s3 or volume must be set"]),
    ("negative-parallelism", {"parallelism": -1},
     ["spec.parallelism", "must be 'auto' or an integer from 1 to 1000"]),
    ("word-parallelism", {"parallelism": "many"}, ["spec.parallelism", "must be 'auto'"]),
    ("zero-cpu", {"resources": {"cpu": 0}}, ["spec.resources.cpu", "from 1 to 256"]),
    ("unknown-field", {"colour": "blue"}, ["spec.colour"]),
    ("foreign-options", {"operation": {"type": "count", "stats": {"top": 3}}},
     ["spec.operation.stats", "options for 'stats' given but the operation type is 'count'"]),
    ("grep-without-pattern", {"operation": {"type": "grep"}}, ["spec.operation.grep", "grep needs grep.pattern"]),
    ("format-for-count", {"operation": {"type": "count", "format": "csv"}},
     ["spec.operation.format", "count reads every file as it is; format applies to stats, convert"]),
    ("parquet-for-convert", {"operation": {"type": "convert", "format": "parquet"}},
     ["spec.operation.format", "convert reads csv, tsv, ndjson (or auto)"]),
    ("unknown-format", {"operation": {"type": "stats", "format": "xml"}}, ["spec.operation.format", "Unsupported value"]),
    ("bad-claim", {"source": {"volume": {"claimName": "Not_A_Name"}}}, ["spec.source.volume.claimName"]),
])
def test_bad_manifests_are_refused_naming_the_field(pravah_crd, namespace, name, change, words):
    refused(apply(pravah_crd, namespace, manifest(name, **change)), *words)


def test_spec_is_immutable_except_suspend(pravah_crd, namespace):
    original = manifest("immutable")
    r = apply(pravah_crd, namespace, original)
    assert r.returncode == 0, r.stderr

    edited = copy.deepcopy(original)
    edited["spec"]["operation"] = {"type": "count"}
    refused(apply(pravah_crd, namespace, edited), "spec", "spec is immutable once created; only spec.suspend may change")

    for field, value in (("parallelism", 3), ("include", ["**/*.tsv"]), ("queueName", "batch")):
        edited = copy.deepcopy(original)
        edited["spec"][field] = value
        refused(apply(pravah_crd, namespace, edited), "spec is immutable once created")

    suspended = copy.deepcopy(original)
    suspended["spec"]["suspend"] = True
    r = apply(pravah_crd, namespace, suspended)
    assert r.returncode == 0, r.stderr
    got = pravah_crd.kubectl("get", "pj", "immutable", "-n", namespace, "-o", "jsonpath={.spec.suspend}").stdout
    assert got == "true"


def test_status_subresource_and_printer_columns(pravah_crd, namespace):
    import json

    from pravah_operator.status import PravahJobStatus, Progress, Shards, condition

    r = apply(pravah_crd, namespace, manifest("columns"))
    assert r.returncode == 0, r.stderr
    status = PravahJobStatus(
        phase="Running",
        shards=Shards(total=4, active=2, succeeded=2, failed=0),
        progress=Progress(filesTotal=400, filesDone=120, bytesTotal=1000, bytesDone=300, bytesPerSecond=12_300_000),
        conditions=[condition("Complete", False, "Running", "processing", 1, None)],
        result={"uri": "s3://results/columns/result.json", "summary": {"rows": 7}},
    )
    pravah_crd.kubectl("patch", "pj", "columns", "-n", namespace, "--subresource=status", "--type=merge",
                       "-p", json.dumps({"status": status.patch()}))
    table = pravah_crd.kubectl("get", "pj", "columns", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "PHASE", "PROGRESS", "FILES", "THROUGHPUT", "SHARDS"]
    assert row.split()[:6] == ["columns", "Running", "30", "120/400", "12.3", "MB/s"]
    got = json.loads(pravah_crd.kubectl("get", "pj", "columns", "-n", namespace, "-o", "json").stdout)
    assert got["status"]["result"]["summary"] == {"rows": 7}
    assert got["status"]["conditions"][0]["type"] == "Complete"


CRON_EXAMPLE = REPO / "examples" / "cronjob-volume.yaml"


def cron_manifest(name: str, **spec) -> dict:
    base = yaml.safe_load(CRON_EXAMPLE.read_text())
    base["metadata"] = {"name": name}
    base["spec"].update(spec)
    return base


@pytest.mark.parametrize(("name", "change", "words"), [
    ("words", {"schedule": "every minute"}, ["spec.schedule", "must be five cron fields"]),
    ("six-fields", {"schedule": "0 * * * * *"}, ["spec.schedule", "must be five cron fields"]),
    ("bad-policy", {"concurrencyPolicy": "Sometimes"}, ["spec.concurrencyPolicy", "Sometimes"]),
    ("bad-template", {"jobTemplate": {"spec": {"source": {"volume": {"claimName": "datasets", "path": "../x"}},
                                               "operation": {"type": "count"}}}},
     ["spec.jobTemplate.spec.source.volume.path", "inside the volume"]),
    ("template-options", {"jobTemplate": {"spec": {"source": {"volume": {"path": "x"}},
                                                   "operation": {"type": "count", "stats": {"top": 3}}}}},
     ["spec.jobTemplate.spec.operation.stats", "options for 'stats' given but the operation type is 'count'"]),
    ("two-baselines", {"jobTemplate": {"spec": {"source": {"volume": {"path": "x"}}, "operation": {"type": "count"},
                                                "rerunOf": "earlier"}}},
     ["spec.incremental", "incremental: true sets jobTemplate.spec.incremental itself"]),
    ("no-history", {"successfulJobsHistoryLimit": 0}, ["spec.successfulJobsHistoryLimit", "needs"]),
    ("x" * 53, {}, ["metadata.name must be at most 52 characters"]),
])
def test_bad_cronjobs_are_refused_naming_the_field(pravah_crd, namespace, name, change, words):
    refused(apply(pravah_crd, namespace, cron_manifest(name, **change)), *words)


def test_a_cronjob_spec_may_change(pravah_crd, namespace):
    r = apply(pravah_crd, namespace, cron_manifest("mutable"))
    assert r.returncode == 0, r.stderr
    r = apply(pravah_crd, namespace, cron_manifest("mutable", schedule="@hourly", suspend=True))
    assert r.returncode == 0, r.stderr
    table = pravah_crd.kubectl("get", "pjc", "mutable", "-n", namespace).stdout
    assert table.split()[:4] == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE"]
    assert table.splitlines()[1].split()[:3] == ["mutable", "@hourly", "true"]
