"""Jobs that build on earlier ones, on the cluster: a re-run reads only the files that failed
(and its result equals a clean run over all files), an incremental run reads only the files
new or changed since its baseline (its result equals a full run over the files as they are
now), on a volume (modification times) and on S3 (ETags). Expected results come from the
files themselves (e2e.reference), the files read from the job's stored list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from click.testing import CliRunner

from api.helpers import CLAIMS, DeployedApi, assert_error, service_account
from e2e import reference
from e2e.harness import db_fetch, manifest_for, put_objects, write_csv_files
from pravah.cli import cli

ALL_VERBS = ["get", "list", "watch", "create", "patch", "delete"]


RAGGED_ROW = "1,2,3,4\n"  # wider than the header: under badRows: fail, the whole file is an error record


def job(cluster, name: str, path: str, **changes: Any) -> dict[str, Any]:
    manifest = manifest_for("stats", source={"volume": {"claimName": "datasets", "path": path}},
                            output={"volume": {"claimName": "results", "path": f"out/{name}"}}, **changes)
    manifest["metadata"]["name"] = name
    cluster.apply(manifest)
    return manifest


def files_read(cluster, finished: dict[str, Any]) -> list[str]:
    """The paths the job's runners were given (its stored list), relative to the source."""
    rows = db_fetch(cluster.database, "SELECT f.path FROM job_files f JOIN jobs j ON j.uid = f.job_uid "
                    "AND j.listing = f.listing WHERE j.uid = $1 ORDER BY f.path", finished["metadata"]["uid"])
    return [row["path"].rsplit("/", 1)[-1] for row in rows]


def test_a_rerun_reads_only_the_failed_files_and_equals_a_clean_run(cluster):
    root = cluster.datasets / "rerun"
    write_csv_files(root, 50, rows=20)
    broken = [root / f"part-{index:04d}.csv" for index in (3, 17, 41)]
    for path in broken:
        path.write_text(path.read_text() + RAGGED_ROW)
    strict = manifest_for("stats")["spec"]["operation"]
    strict["stats"]["badRows"] = "fail"
    manifest = job(cluster, "first-pass", "rerun", parallelism=2, operation=strict)
    first = cluster.wait_phase("first-pass")
    assert sorted(error["path"] for error in cluster.result(first)["errors"]) == [p.name for p in broken]

    # A re-run that would compute something else is refused, naming the field: by the REST API
    # when it is created, by the operator when it is applied.
    token = service_account(cluster.control_plane, cluster.namespace, "rerunner", ALL_VERBS, CLAIMS)
    api = DeployedApi(cluster.control_plane)
    other_operation = {"type": "stats", "stats": {**strict["stats"], "top": 7}}
    other_top = {**manifest["spec"], "namespace": cluster.namespace, "rerunOf": "first-pass",
                 "operation": other_operation}
    refused = assert_error(api.request("POST", "/jobs", token, json=other_top), 422, "operation.stats.top")
    assert "in job first-pass" in refused["message"], refused
    no_such = {**other_top, "rerunOf": "never-ran", "operation": manifest["spec"]["operation"]}
    assert_error(api.request("POST", "/jobs", token, json=no_such), 422, "rerunOf")
    job(cluster, "other-top", "rerun", rerunOf="first-pass", operation=other_operation)
    refused = cluster.wait_phase("other-top", ("Failed",), timeout=60)["status"]
    assert refused["reason"] == "InvalidRerun" and "spec.operation.stats.top" in refused["message"], refused
    job(cluster, "no-such", "rerun", rerunOf="never-ran")
    missing = cluster.wait_phase("no-such", ("Failed",), timeout=60)["status"]
    assert missing["reason"] == "InvalidRerun" and "spec.rerunOf" in missing["message"], missing

    for path in broken:  # the files are fixed
        path.write_text(path.read_text().removesuffix(RAGGED_ROW))

    # `pravah rerun NAME` over the REST API (POST /jobs/{id}/rerun).
    env = {"PRAVAH_API_URL": api.url, "PRAVAH_TOKEN": token}
    created = CliRunner().invoke(cli, ["rerun", "first-pass", "-n", cluster.namespace, "--name", "second-pass",
                                       "--watch"], env=env, catch_exceptions=False)
    assert created.exit_code == 0, created.output
    second = cluster.wait_phase("second-pass")
    assert second["spec"]["rerunOf"] == "first-pass"
    assert files_read(cluster, second) == sorted(path.name for path in broken)

    document = cluster.result(second)
    reference.check(document, manifest["spec"]["operation"], cluster.source_files(manifest["spec"]))
    assert document["listing"]["bytes"] == sum(path.stat().st_size for path in broken)
    assert document["reuse"] == {"mode": "rerun", "of": "first-pass", "reused": 47, "rerun": 3, "gone": 0,
                                 "bytes_read": document["listing"]["bytes"]}
    assert second["status"]["result"]["reuse"]["rerun"] == 3

    # A re-run builds on an original job only.
    again = assert_error(api.request("POST", f"/jobs/{second['metadata']['uid']}/rerun", token), 422, "rerunOf")
    assert "itself a re-run of first-pass" in again["message"], again
    job(cluster, "third-pass", "rerun", rerunOf="second-pass", operation=strict)
    chained = cluster.wait_phase("third-pass", ("Failed",), timeout=60)["status"]
    assert chained["reason"] == "InvalidRerun" and "itself a re-run of first-pass" in chained["message"], chained


def change_volume(root: Path) -> tuple[list[str], list[str]]:
    """10 files rewritten, 5 added, 3 deleted; returns (read again, deleted) names."""
    changed = [f"part-{index:04d}.csv" for index in range(0, 1000, 100)]
    for name in changed:
        (root / name).write_text("id,value,label\n7,1.5,changed\n")
    added = [f"new-{index}.csv" for index in range(5)]
    for index, name in enumerate(added):
        (root / name).write_text(f"id,value,label\n{index},2.5,added\n")
    deleted = [f"part-{index:04d}.csv" for index in (5, 6, 7)]
    for name in deleted:
        (root / name).unlink()
    return sorted(changed + added), deleted


def test_an_incremental_run_reads_only_new_and_changed_files(cluster):
    root = cluster.datasets / "incremental"
    write_csv_files(root, 1000, rows=5)
    job(cluster, "day-1", "incremental", incremental={"baseline": "latest"}, parallelism=2)
    first = cluster.wait_phase("day-1", timeout=300)
    assert cluster.result(first)["reuse"]["new"] == 1000  # no baseline yet: everything is read

    read_again, _ = change_volume(root)
    manifest = job(cluster, "day-2", "incremental", incremental={"baseline": "latest"}, parallelism=2)
    second = cluster.wait_phase("day-2", timeout=300)
    assert files_read(cluster, second) == read_again
    document = cluster.result(second)
    reference.check(document, manifest["spec"]["operation"], cluster.source_files(manifest["spec"]))
    read_bytes = sum((root / name).stat().st_size for name in read_again)
    assert document["listing"]["bytes"] == read_bytes
    assert document["reuse"] == {"mode": "incremental", "of": "day-1", "reused": 987, "new": 5, "changed": 10,
                                 "retried": 0, "removed": 3, "bytes_read": read_bytes}

    # A re-run of an incremental job keeps the partials that job reused.
    job(cluster, "day-2-again", "incremental", rerunOf="day-2")
    again = cluster.wait_phase("day-2-again", timeout=300)
    assert files_read(cluster, again) == []
    reference.check(cluster.result(again), manifest["spec"]["operation"], cluster.source_files(manifest["spec"]))
    assert cluster.result(again)["reuse"]["reused"] == 1002

    # A named baseline, nothing changed since: nothing is read, the result is the same.
    job(cluster, "day-3", "incremental", incremental={"baseline": "day-2"})
    third = cluster.wait_phase("day-3", timeout=300)
    assert files_read(cluster, third) == []
    reference.check(cluster.result(third), manifest["spec"]["operation"], cluster.source_files(manifest["spec"]))
    assert cluster.result(third)["reuse"]["reused"] == 1002

    # Only a job that kept per-file partials can be a baseline.
    job(cluster, "plain", "incremental")
    cluster.wait_phase("plain", timeout=300)
    job(cluster, "on-plain", "incremental", incremental={"baseline": "plain"})
    refused = cluster.wait_phase("on-plain", ("Failed",), timeout=60)["status"]
    assert refused["reason"] == "InvalidBaseline" and "spec.incremental.baseline" in refused["message"], refused


def test_an_incremental_run_on_s3_compares_etags(cluster, s3, bucket):
    client = boto3.client("s3", **s3.client_kwargs())
    objects = {f"logs/{index:04d}.txt": b"line %d\n" % index for index in range(1000)}
    put_objects(client, bucket, objects)
    cluster.kubectl("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    location = {"bucket": bucket, "endpoint": s3.endpoint, "credentialsSecret": "s3-creds"}

    def run(name: str) -> dict[str, Any]:
        manifest = manifest_for("checksum", source={"s3": {**location, "prefix": "logs/"}},
                                output={"s3": {**location, "prefix": f"results/{name}/"}},
                                incremental={"baseline": "latest"}, parallelism=2)
        manifest["metadata"]["name"] = name
        cluster.apply(manifest)
        return cluster.wait_phase(name, timeout=300)

    run("sums-1")
    changed = [f"logs/{index:04d}.txt" for index in range(3, 1000, 100)]
    for key in changed:  # the same size, other bytes: only the ETag tells
        objects[key] = objects[key].replace(b"line", b"LINE")
        client.put_object(Bucket=bucket, Key=key, Body=objects[key])
    added = {f"logs/new-{index}.txt": b"added %d\n" % index for index in range(5)}
    put_objects(client, bucket, added)
    objects.update(added)
    for key in ("logs/0010.txt", "logs/0011.txt", "logs/0012.txt"):
        client.delete_object(Bucket=bucket, Key=key)
        del objects[key]

    second = run("sums-2")
    document = cluster.result(second, s3)
    files = {f"s3://{bucket}/{key}": body for key, body in objects.items()}
    read_again = sorted(changed + list(added))
    assert document["reuse"] == {"mode": "incremental", "of": "sums-1", "reused": 987, "new": 5, "changed": 10,
                                 "retried": 0, "removed": 3, "bytes_read": document["listing"]["bytes"]}
    assert document["listing"]["bytes"] == sum(len(objects[key]) for key in read_again)
    reference.check(document, second["spec"]["operation"], files, cluster.reader(s3))
    rows = db_fetch(cluster.database, "SELECT path FROM file_partials WHERE job_uid = $1 AND reused_by IS NULL",
                    second["metadata"]["uid"])
    assert sorted(row["path"] for row in rows) == [f"s3://{bucket}/{key}" for key in read_again]
    assert second["status"]["result"]["reuse"]["changed"] == 10
