"""Data-quality checks on the cluster: a column that breaks an `error` rule fails the job
(reason ChecksFailed, the report in the result), a `warn` rule lets it succeed with the
warning visible, and a bad rule is refused by `kubectl apply`, naming the field."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from e2e import reference
from e2e.harness import manifest_for, wait_for

REGIONS = ["north", "south", "east", "west"]


def write_orders(root: Path) -> None:
    """Three files of orders; one price is negative."""
    root.mkdir(parents=True, exist_ok=True)
    for part in range(3):
        rows = "".join(f"{part * 100 + row},{(row * 7.5 if (part, row) != (1, 42) else -12.5):.2f},"
                       f"{REGIONS[row % 4]}\n" for row in range(100))
        (root / f"orders-{part}.csv").write_text("id,price,region\n" + rows)


def gate(cluster, name: str, severity: str) -> dict[str, Any]:
    """A stats job over the orders with one rule that their prices break, and two they keep."""
    write_orders(cluster.datasets / "orders")
    manifest = manifest_for("stats", source={"volume": {"claimName": "datasets", "path": "orders"}},
                            output={"volume": {"claimName": "results", "path": f"out/{name}"}}, parallelism=2,
                            checks=[{"column": "price", "rule": "between", "min": 0, "severity": severity},
                                    {"column": "region", "rule": "allowedValues", "values": REGIONS},
                                    {"rule": "rowCount", "min": 300}])
    manifest["metadata"]["name"] = name
    cluster.apply(manifest)
    return manifest


def lowest_price(cluster, manifest: dict[str, Any]) -> float:
    tables, _ = reference.read_tables(cluster.source_files(manifest["spec"]), ",", True)
    (price,) = [column for column in reference.columns_of(tables) if column.name == "price"]
    return min(price.numbers())


def events(cluster, name: str, reason: str) -> list[dict[str, Any]]:
    listing = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={name},reason={reason}",
                              "-o", "json").stdout
    return json.loads(listing)["items"]


def leader_metrics(cluster) -> str:
    leader = cluster.operator.leader()
    [pod] = [pod for pod in cluster.operator.pods() if pod["metadata"]["name"] == leader]
    url = f"http://{pod['status']['podIP']}:8080/metrics"
    return wait_for(lambda: urllib.request.urlopen(url, timeout=5).read().decode(), 30, f"{url} to answer")


def test_a_column_breaking_an_error_rule_fails_the_job_with_the_report(cluster):
    manifest = gate(cluster, "orders-gate", "error")
    job = cluster.wait_phase("orders-gate", ("Failed",), timeout=240)
    status = job["status"]
    rule = "checks[0] price between min=0 failed: observed"
    assert status["reason"] == "ChecksFailed" and rule in status["message"], status
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "ChecksFailed") and rule in failed["message"]
    [event] = wait_for(lambda: events(cluster, "orders-gate", "Failed"), 30, "the Failed Event")
    assert event["type"] == "Warning" and rule in event["message"]

    table = cluster.kubectl("get", "pj", "orders-gate", "-o", "wide").stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[:3] == ["NAME", "PHASE", "REASON"] and row[:3] == ["orders-gate", "Failed", "ChecksFailed"]

    document = cluster.result(job)
    reference.check(document, manifest["spec"]["operation"], cluster.source_files(manifest["spec"]))
    report = document["checks"]
    assert (report["passed"], report["failed"], report["warned"]) == (False, 1, 0)
    between, allowed, rows = report["results"]
    assert between["observed"]["min"] == lowest_price(cluster, manifest) == -12.5 and not between["passed"]
    assert allowed["observed"] == {"unexpected": [], "beyondTop": 0} and allowed["passed"]
    assert rows["observed"] == 300 and rows["passed"]
    assert status["result"]["summary"]["checks"]["failed"] == 1

    assert 'pravah_jobs_ended_total{phase="Failed",reason="ChecksFailed"}' in leader_metrics(cluster)


def test_a_column_breaking_a_warn_rule_succeeds_with_the_warning(cluster):
    gate(cluster, "orders-warn", "warn")
    job = cluster.wait_phase("orders-warn", timeout=240)
    status = job["status"]
    warning = "checks[0] price between min=0 warned: observed"
    assert status["reason"] == "Completed" and "checks: 1 warned of 3" in status["message"], status
    assert warning in status["message"]
    [event] = wait_for(lambda: events(cluster, "orders-warn", "ChecksWarned"), 30, "the ChecksWarned Event")
    assert event["type"] == "Warning" and warning in event["message"]
    report = cluster.result(job)["checks"]
    assert (report["passed"], report["failed"], report["warned"]) == (True, 0, 1)
    assert [entry["passed"] for entry in report["results"]] == [False, True, True]


BAD_RULES = [
    ({"operation": {"type": "count"}, "checks": [{"rule": "rowCount", "min": 1}]},
     ["spec.checks", "checks judge a stats result"]),
    ({"checks": [{"column": "price", "rule": "notNull", "min": 0}]},
     ["spec.checks[0].min", "min is allowed only with rule"]),
    ({"checks": [{"column": "price", "rule": "nullRatio", "max": 5}]},
     ["spec.checks[0].max", "rule nullRatio: max must be at least 0 and at most 1"]),
    ({"checks": [{"rule": "rowCount", "min": 1.5}]}, ["spec.checks[0].min", "whole number"]),
    ({"checks": [{"rule": "rowCount"}]}, ["spec.checks[0]", "give min, max or both"]),
    ({"checks": [{"column": "price", "rule": "quantile", "quantile": 0.75, "max": 1}]},
     ["spec.checks", "one of operation.stats.quantiles"]),
    ({"checks": [{"column": "price", "rule": "isPositive"}]}, ["spec.checks[0].rule", "isPositive"]),
]


def test_a_bad_rule_is_refused_at_apply_naming_the_field(cluster):
    for changes, says in BAD_RULES:
        manifest = manifest_for("stats", **changes)
        manifest["metadata"]["name"] = "bad-checks"
        refused = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
        assert refused.returncode != 0, (changes, refused.stdout)
        for words in says:
            assert words in refused.stderr, (changes, refused.stderr)
    assert cluster.kubectl("get", "pj", "-o", "name").stdout.split() == []
