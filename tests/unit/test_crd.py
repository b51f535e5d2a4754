"""The generated PravahJob CRD: in sync with the models, structural, and agreeing with them.

CEL rules are only checked for presence here; tests/platform/test_crd_apply.py runs them
in a real API server.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from pravah.spec import MAX_GLOB_LENGTH, MAX_GLOBS, PARENT_SEGMENT, VOLUME_PATH_MESSAGE, PravahJobSpec
from pravah_operator import crd
from unit.test_spec import INSIDE_VOLUME, OUTSIDE_VOLUME
from pravah_operator.status import (
    Condition,
    PravahJobStatus,
    Progress,
    Shards,
    condition,
    human_rate,
    percent,
    set_condition,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(path for path in (REPO / "examples").glob("*.yaml")
                  if yaml.safe_load(path.read_text())["kind"] == "PravahJob")


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return yaml.safe_load(crd.render())


@pytest.fixture(scope="module")
def root(generated) -> dict[str, Any]:
    (version,) = generated["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="module")
def spec_schema(root) -> dict[str, Any]:
    return root["properties"]["spec"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(junctor, [])):
            yield from walk(sub, f"{path}<{junctor}{i}>")
    if isinstance(node.get("not"), dict):
        yield from walk(node["not"], f"{path}<not>")


def rules_at(schema: dict[str, Any], dotted: str) -> list[dict[str, str]]:
    node = schema
    for part in filter(None, dotted.split(".")):
        node = node["properties"][part]
    return node.get("x-kubernetes-validations", [])


# -- (a) drift ----------------------------------------------------------------------------

def test_checked_in_crd_matches_the_models():
    assert crd.CRD_FILE.exists(), "crds/pravahjobs.pravah.io.yaml is missing: run `python -m pravah_operator.crd --write`"
    assert crd.CRD_FILE.read_text() == crd.render(), (
        "crds/pravahjobs.pravah.io.yaml is out of date with pravah.spec / pravah_operator.status: "
        "run `python -m pravah_operator.crd --write`"
    )


def test_output_does_not_depend_on_the_hash_seed():
    """Set or dict order must not leak into the CRD: interpreters with different hash seeds
    print the same text as this one."""
    printed = {subprocess.run([sys.executable, "-m", "pravah_operator.crd"], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert printed == {crd.render()}


def test_cli_check(capsys):
    assert crd.main(["--check"]) == 0
    assert crd.main([]) == 0
    assert capsys.readouterr().out == crd.render()


# -- (b) structural -----------------------------------------------------------------------

STRUCTURAL_FORBIDDEN = {"$ref", "$defs", "definitions", "$schema", "title", "const", "discriminator"}
NOT_IN_JUNCTORS = {"type", "description", "default", "additionalProperties", "nullable"}


def structural_problems(root: dict[str, Any]) -> list[str]:
    problems = []
    for path, node in walk(root):
        where = path or "(root)"
        in_junctor = "<" in path
        for key in STRUCTURAL_FORBIDDEN & set(node):
            problems.append(f"{where}: has {key}")
        if in_junctor:
            for key in NOT_IN_JUNCTORS & set(node):
                problems.append(f"{where}: {key} inside a logical junctor")
            continue
        free = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        if "type" not in node and not free:
            problems.append(f"{where}: no type")
        if node.get("type") == "null" or node.get("nullable") is True:
            problems.append(f"{where}: nullable")
        for junctor in ("anyOf", "oneOf", "allOf"):
            for branch in node.get(junctor, []):
                if branch.get("type") == "null":
                    problems.append(f"{where}: {junctor} with null")
        if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
            problems.append(f"{where}: boolean additionalProperties")
        if "additionalProperties" in node and "properties" in node:
            problems.append(f"{where}: both properties and additionalProperties")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: array without items")
        # The API server supplies the schema of the root's metadata.
        if node.get("type") == "object" and path != ".metadata" and not (
            "properties" in node or "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields")
        ):
            problems.append(f"{where}: object without properties")
        for name in node.get("required", []):
            if name not in node.get("properties", {}):
                problems.append(f"{where}: required {name} is not a property")
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node.get("x-kubernetes-list-map-keys", []):
                if key not in item.get("required", []) and "default" not in item["properties"].get(key, {}):
                    problems.append(f"{where}: list map key {key} must be required")
        if "default" in node:
            try:
                jsonschema.Draft4Validator(strict(node)).validate(node["default"])
            except jsonschema.ValidationError as e:
                problems.append(f"{where}: default {node['default']!r} does not validate: {e.message}")
        for rule in node.get("x-kubernetes-validations", []):
            if not rule.get("message") and not rule.get("messageExpression"):
                problems.append(f"{where}: rule without message: {rule['rule']}")
    return problems


def test_schema_is_structural(root):
    assert structural_problems(root) == []


def test_checker_catches_non_structural_schemas():
    bad = {"type": "object", "properties": {
        "a": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "b": {"$ref": "#/$defs/B"},
        "c": {"type": "array"},
        "d": {"type": "integer", "default": "x"},
    }}
    text = "\n".join(structural_problems(bad))
    for expected in (".a: no type", ".a: anyOf with null", ".b: has $ref", ".c: array without items", ".d: default"):
        assert expected in text


def test_spec_lists_and_strings_are_bounded_for_cel_cost(spec_schema):
    """Without maxItems / maxLength the API server's CEL cost estimate assumes request-sized values."""
    unbounded = []
    for path, node in walk(spec_schema, "spec"):
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(f"{path}: list without maxItems")
        if node.get("type") == "string" and "maxLength" not in node:
            unbounded.append(f"{path}: string without maxLength")
    assert unbounded == []


def test_python_and_crd_bounds_agree(spec_schema):
    for name in ("include", "exclude"):
        node = spec_schema["properties"][name]
        assert node["maxItems"] == MAX_GLOBS and node["items"]["maxLength"] == MAX_GLOB_LENGTH
    assert PravahJobSpec.model_validate(
        {"source": {"volume": {"path": "d"}}, "operation": {"type": "count"}, "include": ["*"] * MAX_GLOBS}
    )
    with pytest.raises(ValueError):
        PravahJobSpec.model_validate(
            {"source": {"volume": {"path": "d"}}, "operation": {"type": "count"}, "include": ["*"] * (MAX_GLOBS + 1)}
        )


def test_optional_fields_are_not_required(spec_schema):
    assert sorted(spec_schema["required"]) == ["operation", "source"]
    assert spec_schema["properties"]["output"]["type"] == "object"
    assert "output" not in spec_schema["required"]


def test_crd_names_and_columns(generated):
    spec = generated["spec"]
    assert generated["metadata"]["name"] == "pravahjobs.pravah.io"
    assert spec["group"] == "pravah.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "PravahJob", "listKind": "PravahJobList", "plural": "pravahjobs", "singular": "pravahjob",
        "shortNames": ["pj"], "categories": ["pravah"],
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: (c["jsonPath"], c["type"]) for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == (".status.phase", "string")
    assert columns["Progress"] == (".status.progress.percent", "integer")
    assert columns["Files"] == (".status.progress.files", "string")
    assert columns["Throughput"] == (".status.progress.throughput", "string")
    assert columns["Shards"] == (".status.shards.ready", "string")
    assert columns["Age"] == (".metadata.creationTimestamp", "date")


def test_printer_column_paths_exist_in_the_status_schema(root):
    for column in crd.PRINTER_COLUMNS:
        parts = column["jsonPath"].strip(".").split(".")
        if parts[0] == "metadata":
            continue
        node = root
        for part in parts:
            assert part in node.get("properties", {}), column["jsonPath"]
            node = node["properties"][part]
        assert node["type"] in (column["type"], "string" if column["type"] == "date" else node["type"])


# -- (c) examples and bad manifests against the OpenAPI schema ----------------------------

def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as the API server applies it with strict field validation: unknown fields
    are errors (structural schemas prune them; `kubectl apply` refuses them)."""
    schema = copy.deepcopy(schema)
    for _, node in walk(schema):
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    return schema


@pytest.fixture(scope="module")
def validator(root):
    return jsonschema.Draft4Validator(strict(root))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate(validator, path):
    manifest = yaml.safe_load(path.read_text())
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]
    assert errors == []


def test_examples_exist():
    assert len(EXAMPLES) >= 5


BASE = {"apiVersion": "pravah.io/v1alpha1", "kind": "PravahJob", "metadata": {"name": "x"},
        "spec": {"source": {"volume": {"path": "d"}}, "operation": {"type": "count"}}}


@pytest.mark.parametrize(("patch", "field"), [
    ({"operation": {"type": "md5"}}, "spec.operation.type"),
    ({"colour": "blue"}, "spec"),
    ({"maxRetriesPerShard": -1}, "spec.maxRetriesPerShard"),
    ({"include": ["x" * (MAX_GLOB_LENGTH + 1)]}, "spec.include.0"),
    ({"operation": {"type": "checksum", "checksum": {"algorithm": "md5"}}}, "spec.operation.checksum.algorithm"),
    ({"resources": {"memory": "lots"}}, "spec.resources.memory"),
    ({"source": {"volume": {"claimName": "Not_A_Name"}}}, "spec.source.volume.claimName"),
    ({"operation": {"type": "stats", "stats": {"quantiles": [1.5]}}}, "spec.operation.stats.quantiles.0"),
    ({"operation": {"type": "stats", "stats": {"skipRows": -1}}}, "spec.operation.stats.skipRows"),
    ({"operation": {"type": "convert", "convert": {"escape": "ab"}}}, "spec.operation.convert.escape"),
    ({"operation": {"type": "convert", "convert": {"delimiter": "comma"}}}, "spec.operation.convert.delimiter"),
])
def test_schema_refuses_bad_manifests(validator, patch, field):
    manifest = copy.deepcopy(BASE)
    manifest["spec"].update(patch)
    paths = {".".join(map(str, e.absolute_path)) for e in validator.iter_errors(manifest)}
    assert field in paths


@pytest.mark.parametrize("path", INSIDE_VOLUME + OUTSIDE_VOLUME)
def test_volume_path_pattern_agrees_with_the_model(validator, path):
    """The schema pattern (RE2 syntax, no lookahead) refuses exactly what pravah.spec refuses."""
    manifest = copy.deepcopy(BASE)
    manifest["spec"]["source"] = {"volume": {"path": path}}
    manifest["spec"]["output"] = {"volume": {"path": path}}
    refused = {".".join(map(str, e.absolute_path)) for e in validator.iter_errors(manifest)}
    expected = {"spec.source.volume.path", "spec.output.volume.path"} if path in OUTSIDE_VOLUME else set()
    assert refused == expected


def test_status_model_output_validates(root):
    status = PravahJobStatus(
        phase="Running",
        shards=Shards(total=4, succeeded=2, active=2, failed=0),
        progress=Progress(filesTotal=400, filesDone=120, bytesTotal=1000, bytesDone=250, bytesPerSecond=12_300_000),
        conditions=[Condition.model_validate(condition("Complete", False, "Running", "", 1, None, now="2026-01-01T00:00:00Z"))],
        result={"uri": "s3://r/x", "summary": {"rows": 3, "nested": {"a": [1, 2]}}},
    )
    jsonschema.Draft4Validator(strict(root["properties"]["status"])).validate(status.patch())


# -- (d) CEL rules ------------------------------------------------------------------------

def test_exactly_one_location_rule(spec_schema):
    for where in ("source", "output"):
        rules = rules_at(spec_schema, where)
        assert {"rule": "has(self.s3) != has(self.volume)", "message": "exactly one of s3 or volume must be set"} in rules


def test_operation_rules(spec_schema):
    rules = {r["rule"]: r for r in rules_at(spec_schema, "operation")}
    for name in ("stats", "checksum", "grep", "convert"):
        rule = rules[f"!has(self.{name}) || self.type == '{name}'"]
        assert rule["fieldPath"] == f".{name}" and rule["reason"] == "FieldValueForbidden"
        assert "self.type" in rule["messageExpression"]
    grep = rules["self.type != 'grep' || has(self.grep)"]
    assert grep["message"] == "grep needs grep.pattern" and grep["fieldPath"] == ".grep"


def test_int_or_auto_rules(spec_schema):
    for where, high in (("parallelism", 1000), ("resources.cpu", 256)):
        node = spec_schema
        for part in filter(None, where.split(".")):
            node = node["properties"][part]
        assert node["x-kubernetes-int-or-string"] is True and node["default"] == "auto"
        (rule,) = node["x-kubernetes-validations"]
        assert rule["rule"] == f"type(self) == string ? self == 'auto' : (self >= 1 && self <= {high})"
        assert rule["message"] == f"must be 'auto' or an integer from 1 to {high}"


def test_volume_path_rules_name_the_field(spec_schema):
    for where in ("source", "output"):
        (rule,) = [r for r in spec_schema["x-kubernetes-validations"] if r.get("fieldPath") == f".{where}.volume.path"]
        assert rule["message"] == f"spec.{where}.volume.path {VOLUME_PATH_MESSAGE}"
        path = f"self.{where}.volume.path"
        assert f"!{path}.startsWith('/') && !{path}.matches(r'{PARENT_SEGMENT}')" in rule["rule"]
        assert rule["rule"].startswith("!has(self.output) || " if where == "output" else "!has(self.source.volume)")


def test_immutability_rule_covers_every_field_but_suspend(spec_schema):
    (rule,) = [r for r in spec_schema["x-kubernetes-validations"] if "oldSelf" in r["rule"]]
    assert rule["message"] == "spec is immutable once created; only spec.suspend may change"
    for name, field in PravahJobSpec.model_fields.items():
        compared = f"self.{name} == oldSelf.{name}" in rule["rule"]
        assert compared == (name != "suspend"), name
        if name != "suspend" and not field.is_required():
            assert f"has(self.{name})" in rule["rule"] and f"!has(oldSelf.{name})" in rule["rule"]
    assert "suspend" not in rule["rule"]


# -- status helpers -----------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "text"), [
    (0, "0 B/s"), (999, "999 B/s"), (1000, "1.0 kB/s"), (12_345_678, "12.3 MB/s"),
    (999_960, "1.0 MB/s"), (1.5e9, "1.5 GB/s"), (2e12, "2.0 TB/s"), (-5, "0 B/s"),
])
def test_human_rate(rate, text):
    assert human_rate(rate) == text


def test_derived_status_strings():
    assert Shards(total=4, succeeded=2).ready == "2/4"
    progress = Progress(filesTotal=400, filesDone=120, bytesPerSecond=12_300_000)
    assert (progress.files, progress.percent, progress.throughput) == ("120/400", 30, "12.3 MB/s")
    assert Progress(filesTotal=10, filesDone=1, bytesTotal=100, bytesDone=99).percent == 99
    assert percent(5, 0) == 0 and percent(7, 5) == 100


def test_condition_keeps_transition_time_while_status_is_unchanged():
    first = condition("Complete", "False", "Running", "", 1, None, now="2026-01-01T00:00:00Z")
    same = condition("Complete", "False", "Running", "still", 2, [first], now="2026-01-02T00:00:00Z")
    flipped = condition("Complete", True, "Succeeded", "", 2, [same], now="2026-01-03T00:00:00Z")
    assert same["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same["observedGeneration"] == 2
    assert flipped["lastTransitionTime"] == "2026-01-03T00:00:00Z" and flipped["status"] == "True"
    merged = set_condition([first, {"type": "Failed", "status": "False"}], flipped)
    assert [c["type"] for c in merged] == ["Complete", "Failed"] and merged[0]["status"] == "True"
