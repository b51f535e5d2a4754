"""CRD changes stay additive within v1alpha1.

data/pravahjob-v1alpha1-baseline.json is the CRD (crds/pravahjobs.pravah.io.yaml) as v1alpha1
was first released; it is never regenerated. The generated CRD may add to it (fields, enum
values, versions, printer columns) but not take away or tighten anything that stored
PravahJobs, manifests in Git or clients rely on. A change that must do that is served as a
new version with a conversion webhook (docs/operations.md, "Upgrades").
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pravah_operator import crd

BASELINE = Path(__file__).parent / "data" / "pravahjob-v1alpha1-baseline.json"
# Bounds that may only widen: a lower upper bound or a higher lower bound refuses values
# that were valid.
UPPER_BOUNDS = ("maximum", "maxLength", "maxItems", "maxProperties")
LOWER_BOUNDS = ("minimum", "minLength", "minItems", "minProperties")
# What a printer column is: `kubectl get` output and scripts that parse it depend on these.
COLUMN_FIELDS = ("jsonPath", "type")


def value_type(schema: dict[str, Any]) -> str | None:
    return "int-or-string" if schema.get("x-kubernetes-int-or-string") else schema.get("type")


def schema_changes(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    """How the schema `new` refuses or drops what `old` accepted, each naming its path."""
    where = path or "<root>"
    if value_type(old) != value_type(new):
        return [f"{where}: type {value_type(old)} became {value_type(new)}"]
    problems = [f"{path}.{name}: newly required".lstrip(".")
                for name in sorted(set(new.get("required", [])) - set(old.get("required", [])))]
    if "enum" in new:
        lost = sorted(set(old["enum"]) - set(new["enum"])) if "enum" in old else ["any value not listed"]
        if lost:
            problems.append(f"{where}: enum no longer allows {lost}")
    for bound in UPPER_BOUNDS:
        if bound in new and new[bound] < old.get(bound, float("inf")):
            problems.append(f"{where}: {bound} lowered to {new[bound]} (was {old.get(bound, 'none')})")
    for bound in LOWER_BOUNDS:
        if bound in new and new[bound] > old.get(bound, float("-inf")):
            problems.append(f"{where}: {bound} raised to {new[bound]} (was {old.get(bound, 'none')})")
    if old.get("x-kubernetes-preserve-unknown-fields") and not new.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{where}: unknown fields are no longer kept")
    for name, old_property in (old.get("properties") or {}).items():
        child = f"{path}.{name}".lstrip(".")
        if name not in (new.get("properties") or {}):
            problems.append(f"{child}: removed")
        else:
            problems += schema_changes(old_property, new["properties"][name], child)
    for key, suffix in (("items", "[]"), ("additionalProperties", ".*")):
        if isinstance(old.get(key), dict):
            problems += schema_changes(old[key], new.get(key) or {}, path + suffix)
    return problems


def breaking_changes(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Everything in which the CRD `current` is not a superset of `baseline`."""
    old, new = baseline["spec"], current["spec"]
    problems = [f"spec.{field}: {old[field]} became {new.get(field)}"
                for field in ("group", "scope") if old[field] != new.get(field)]
    problems += [f"spec.names.{field}: {old['names'][field]} became {new['names'].get(field)}"
                 for field in ("kind", "plural", "singular", "listKind")
                 if old["names"][field] != new["names"].get(field)]
    versions = {version["name"]: version for version in new["versions"]}
    for old_version in old["versions"]:
        name = old_version["name"]
        new_version = versions.get(name)
        if new_version is None:
            problems.append(f"version {name}: removed")
            continue
        if old_version["served"] and not new_version["served"]:
            problems.append(f"version {name}: no longer served")
        columns = {column["name"]: column for column in new_version.get("additionalPrinterColumns", [])}
        for column in old_version.get("additionalPrinterColumns", []):
            kept = columns.get(column["name"])
            if kept is None or any(kept.get(field) != column.get(field) for field in COLUMN_FIELDS):
                problems.append(f"version {name}: printer column {column['name']} removed or changed")
        problems += [f"version {name}: {problem}" for problem in schema_changes(
            old_version["schema"]["openAPIV3Schema"], new_version["schema"]["openAPIV3Schema"], "")]
    return problems


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return json.loads(BASELINE.read_text())


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return yaml.safe_load(crd.CRD_FILE.read_text())


def version_schema(doc: dict[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    [found] = [v for v in doc["spec"]["versions"] if v["name"] == version]
    return found["schema"]["openAPIV3Schema"]


def at(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    for name in dotted.split("."):
        schema = schema["properties"][name]
    return schema


def test_generated_crd_only_adds_to_the_released_v1alpha1(baseline, generated):
    problems = breaking_changes(baseline, generated)
    assert not problems, ("crds/pravahjobs.pravah.io.yaml takes away from v1alpha1 as released; serve a "
                          "breaking change as a new version (docs/operations.md, Upgrades):\n" + "\n".join(problems))


def test_additions_pass(baseline):
    grown = copy.deepcopy(baseline)
    schema = version_schema(grown)
    at(schema, "spec")["properties"]["priority"] = {"type": "integer", "minimum": 0}
    at(schema, "spec.operation.type")["enum"].append("hash")
    at(schema, "spec.operation.type")["maxLength"] += 8
    at(schema, "status.phase")["maxLength"] += 1
    served = copy.deepcopy(grown["spec"]["versions"][0])
    grown["spec"]["versions"][0]["storage"] = False
    grown["spec"]["versions"].append({**served, "name": "v1beta1"})
    assert breaking_changes(baseline, grown) == []


@pytest.mark.parametrize(("narrow", "named"), [
    (lambda doc: at(version_schema(doc), "spec.source.volume")["properties"].pop("path"),
     "spec.source.volume.path: removed"),
    (lambda doc: at(version_schema(doc), "spec")["required"].append("maxErrors"),
     "spec.maxErrors: newly required"),
    (lambda doc: at(version_schema(doc), "spec.operation.type")["enum"].remove("grep"),
     "spec.operation.type: enum no longer allows ['grep']"),
    (lambda doc: at(version_schema(doc), "status.phase").update(type="integer"),
     "status.phase: type string became integer"),
    (lambda doc: at(version_schema(doc), "spec.include")["items"].update(maxLength=64),
     "spec.include[]: maxLength lowered to 64"),
    (lambda doc: at(version_schema(doc), "status.result.summary").pop("x-kubernetes-preserve-unknown-fields"),
     "status.result.summary: unknown fields are no longer kept"),
    (lambda doc: doc["spec"]["versions"][0]["additionalPrinterColumns"].pop(0),
     "printer column Phase removed"),
    (lambda doc: doc["spec"]["versions"][0].update(name="v1beta1"),
     "version v1alpha1: removed"),
], ids=["removed-field", "new-required-field", "enum-shrunk", "type-changed", "bound-tightened",
        "pruning-turned-on", "printer-column-removed", "version-removed"])
def test_a_narrowed_crd_fails_naming_the_change(baseline, narrow, named):
    narrowed = copy.deepcopy(baseline)
    narrow(narrowed)
    problems = breaking_changes(baseline, narrowed)
    assert any(named in problem for problem in problems), problems
