"""The PravahJob and PravahCronJob CustomResourceDefinitions, generated from the pydantic models.

`pravah.spec.PravahJobSpec` and `pravah_operator.status.PravahJobStatus` (and for the
PravahCronJob `pravah.cronspec.PravahCronJobSpec` and `PravahCronJobStatus`) are the one source
of truth: their JSON schemas are turned into a Kubernetes structural schema (every $ref
inlined, Optional[X] as an optional X, Literal as enum, int-or-"auto" as int-or-string with
a CEL rule) and the rules that pydantic checks in Python code are restated as CEL rules
(x-kubernetes-validations), so that `kubectl apply` refuses what `pravah run -f` refuses.

    python -m pravah_operator.crd            # print the PravahJob CRD
    python -m pravah_operator.crd --write    # write both CRDs under crds/ and their copies
    python -m pravah_operator.crd --check    # exit 1 if a checked-in file is stale
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema, to_jsonable_python

from pravah.checks import BOUNDS_NEEDED, BOUNDS_ORDER, RULES, AllowedValues, Bounded, Quantile
from pravah.spec import (CHECKS_NEED_STATS, FORMATS, OPERATIONS, PARENT_SEGMENT, RERUN_OR_INCREMENTAL,
                         VOLUME_PATH_MESSAGE, Location, OperationSpec, PravahJobSpec, StatsOptions, format_refusal)
from pravah.cronspec import (INCREMENTAL_CONFLICT, INCREMENTAL_NEEDS_HISTORY, MAX_NAME, SCHEDULE_MESSAGE,
                             SCHEDULE_PATTERN, PravahCronJobSpec)
from pravah_operator.status import PravahCronJobStatus, PravahJobStatus

GROUP = "pravah.io"
VERSION = "v1alpha1"
KIND = "PravahJob"
PLURAL = "pravahjobs"
SINGULAR = "pravahjob"
SHORT_NAMES = ["pj"]
CATEGORIES = ["pravah"]
CRD_NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"

CRON_KIND = "PravahCronJob"
CRON_PLURAL = "pravahcronjobs"
CRON_SHORT_NAMES = ["pjc"]
CRON_CRD_NAME = f"{CRON_PLURAL}.{GROUP}"

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / f"{CRD_NAME}.yaml"
CRON_CRD_FILE = REPO_ROOT / "crds" / f"{CRON_CRD_NAME}.yaml"
# Kustomize and Helm load files only from below their own directory: each gets a copy.
COPY_DIRS = (REPO_ROOT / "manifests" / "base" / "crds", REPO_ROOT / "charts" / "pravah" / "crds")

HEADER = (
    "# Generated from pravah.spec.PravahJobSpec and pravah_operator.status.PravahJobStatus.\n"
    "# Do not edit: change the models, then run `python -m pravah_operator.crd --write`.\n"
)
CRON_HEADER = HEADER.replace("pravah.spec.PravahJobSpec", "pravah.cronspec.PravahCronJobSpec").replace(
    "PravahJobStatus", "PravahCronJobStatus")

IMMUTABLE_MESSAGE = "spec is immutable once created; only spec.suspend may change"
MUTABLE_SPEC_FIELDS = ("suspend",)

# Keywords a structural schema may carry (besides the x-kubernetes-* extensions).
_KEPT = {
    "type", "description", "properties", "required", "items", "enum", "default", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "uniqueItems", "multipleOf", "nullable",
}
_DROPPED = {"title", "$schema", "additionalProperties", "examples"}


class _Generator(GenerateJsonSchema):
    """Pydantic's JSON schema, with the values of default factories as defaults."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return to_jsonable_python(factory())
        return super().get_default_value(schema)


class SchemaError(ValueError):
    """A model uses a JSON schema construct that has no structural equivalent."""


# -- CEL rules ----------------------------------------------------------------------------

def location_rules() -> list[dict[str, str]]:
    """Location (source and output): exactly one of its storage kinds."""
    kinds = list(Location.model_fields)
    if len(kinds) != 2:  # pragma: no cover - guards the wording below
        raise SchemaError(f"Location must have two kinds of storage, has {kinds}")
    first, second = kinds
    return [{
        "rule": f"has(self.{first}) != has(self.{second})",
        "message": f"exactly one of {first} or {second} must be set",
    }]


def operation_rules() -> list[dict[str, str]]:
    """OperationSpec: options only for the chosen type; grep needs its pattern; a format only
    for the operations that read one, among those they read."""
    rules = []
    for name in OPERATIONS:
        if name not in OperationSpec.model_fields:
            continue
        rules.append({
            "rule": f"!has(self.{name}) || self.type == '{name}'",
            "message": f"options for '{name}' given but the operation type is not '{name}'",
            "messageExpression": f"\"options for '{name}' given but the operation type is '\" + self.type + \"'\"",
            "fieldPath": f".{name}",
            "reason": "FieldValueForbidden",
        })
    rules.append({
        "rule": "self.type != 'grep' || has(self.grep)",
        "message": "grep needs grep.pattern",
        "fieldPath": ".grep",
        "reason": "FieldValueRequired",
    })
    for name in OPERATIONS:
        allowed = FORMATS.get(name, ("auto",))
        rules.append({
            "rule": f"self.type != '{name}' || !has(self.format) || self.format in {list(allowed)}",
            "message": format_refusal(name),
            "fieldPath": ".format",
            "reason": "FieldValueInvalid",
        })
    return rules


def volume_path_rules(model: type[BaseModel] = PravahJobSpec, where: str = "spec") -> list[dict[str, str]]:
    """Every Location field of the spec: its volume path stays inside the volume.

    Stated on the spec, not on the shared VolumeLocation, so that the message can name the
    field (spec.source.volume.path or spec.output.volume.path; `where` is the spec's path).
    """
    rules = []
    for name, field in model.model_fields.items():
        if Location not in (field.annotation, *getattr(field.annotation, "__args__", ())):
            continue
        path = f"self.{name}.volume.path"
        guards = ([] if field.is_required() else [f"!has(self.{name})"]) + [
            f"!has(self.{name}.volume)", f"!has({path})"]
        inside = f"!{path}.startsWith('/') && !{path}.matches(r'{PARENT_SEGMENT}')"
        rules.append({
            "rule": " || ".join(guards + [f"({inside})"]),
            "message": f"{where}.{name}.volume.path {VOLUME_PATH_MESSAGE}",
            "fieldPath": f".{name}.volume.path",
            "reason": "FieldValueInvalid",
        })
    return rules


def immutability_rule(model: type[BaseModel] = PravahJobSpec) -> dict[str, str]:
    """A transition rule: every spec field except `suspend` keeps its value on update.

    Built from the model's field list so that a new field is covered without anyone
    remembering to add it; optional fields must be equally present or absent.
    """
    parts = []
    for name, field in model.model_fields.items():
        if name in MUTABLE_SPEC_FIELDS:
            continue
        if field.is_required():
            parts.append(f"self.{name} == oldSelf.{name}")
        else:
            parts.append(
                f"(has(self.{name}) ? has(oldSelf.{name}) && self.{name} == oldSelf.{name}"
                f" : !has(oldSelf.{name}))"
            )
    # One comparison per line: CEL reads line breaks as spaces, and the CRD stays readable.
    return {"rule": " &&\n".join(parts), "message": IMMUTABLE_MESSAGE, "reason": "FieldValueForbidden"}


def bounds_rules() -> list[dict[str, str]]:
    """A check with a range (pravah.checks.Bounded): at least one end, in order."""
    return [
        {"rule": "has(self.min) || has(self.max)", "message": BOUNDS_NEEDED, "reason": "FieldValueRequired"},
        {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": BOUNDS_ORDER,
         "fieldPath": ".min", "reason": "FieldValueInvalid"},
    ]


def tag(model: type[BaseModel]) -> str:
    """The `rule` name of a check model."""
    (name,) = typing.get_args(model.model_fields["rule"].annotation)
    return name


def checks_rules() -> list[dict[str, str]]:
    """The checks fit the operation, as pravah.spec.refuse_unfit_checks says: stats only, and
    only what it measures (the quantiles it estimates, as many values as it keeps top values)."""
    defaults = StatsOptions()
    stats = "has(self.operation.stats)"
    quantiles = f"({stats} ? self.operation.stats.quantiles : {defaults.quantiles})"
    top = f"({stats} ? self.operation.stats.top : {defaults.top})"
    every = "!has(self.checks) || self.checks.all(check, {})"
    return [
        {"rule": "!has(self.checks) || size(self.checks) == 0 || self.operation.type == 'stats'",
         "message": CHECKS_NEED_STATS, "fieldPath": ".checks", "reason": "FieldValueForbidden"},
        {"rule": every.format(f"check.rule != '{tag(Quantile)}' || !has(check.quantile) || "
                              f"check.quantile in {quantiles}"),
         "message": f"a {tag(Quantile)} check's quantile must be one of operation.stats.quantiles",
         "fieldPath": ".checks", "reason": "FieldValueInvalid"},
        {"rule": every.format(f"check.rule != '{tag(AllowedValues)}' || !has(check.values) || "
                              f"size(check.values) <= {top}"),
         "message": f"an {tag(AllowedValues)} check may list at most operation.stats.top values",
         "fieldPath": ".checks", "reason": "FieldValueInvalid"},
    ]


def reuse_rule() -> dict[str, str]:
    return {"rule": "!has(self.rerunOf) || !has(self.incremental)", "message": RERUN_OR_INCREMENTAL,
            "fieldPath": ".incremental", "reason": "FieldValueForbidden"}


# Rules attached to the schema of a model wherever it is used (by $defs name).
def _model_rules() -> dict[str, list[dict[str, str]]]:
    rules = {Location.__name__: location_rules(), OperationSpec.__name__: operation_rules()}
    rules.update({model.__name__: bounds_rules() for model in RULES if issubclass(model, Bounded)})
    return rules


def _int_or_string_rule(strings: list[str], low: int | None, high: int | None) -> dict[str, str]:
    allowed = ", ".join(f"'{s}'" for s in strings)
    string_test = f"self == '{strings[0]}'" if len(strings) == 1 else f"self in [{allowed}]"
    bounds = []
    if low is not None:
        bounds.append(f"self >= {low}")
    if high is not None:
        bounds.append(f"self <= {high}")
    int_test = " && ".join(bounds) or "true"
    words = " or ".join(f"'{s}'" for s in strings)
    if low is not None and high is not None:
        number = f"an integer from {low} to {high}"
    elif low is not None:
        number = f"an integer of at least {low}"
    elif high is not None:
        number = f"an integer of at most {high}"
    else:
        number = "an integer"
    return {
        "rule": f"type(self) == string ? {string_test} : ({int_test})",
        "message": f"must be {words} or {number}",
    }


# -- JSON schema -> structural schema ----------------------------------------------------

def _structural(node: dict[str, Any], defs: dict[str, Any], rules: dict[str, list], where: str) -> dict[str, Any]:
    node = dict(node)
    extra_rules: list[dict[str, str]] = []

    ref = node.pop("$ref", None)
    if ref is None and "allOf" in node and len(node["allOf"]) == 1 and "$ref" in node["allOf"][0]:
        ref = node.pop("allOf")[0]["$ref"]
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name not in defs:
            raise SchemaError(f"{where}: unresolved reference {ref}")
        extra_rules.extend(rules.get(name, []))
        # The referencing node's own keywords (description, default) win over the model's.
        node = {**copy.deepcopy(defs[name]), **node}

    if "discriminator" in node:
        return _finish(_tagged_union(node, defs, rules, where), extra_rules, where)

    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if node.get("default", NoDefault) is None:
            node.pop("default")
        if len(branches) == 1:
            # Optional[X]: X, optional because it is not listed in `required`.
            return _finish(_structural({**branches[0], **node}, defs, rules, where), extra_rules, where)
        return _finish(_int_or_string(node, branches, where), extra_rules, where)

    if node.get("default", NoDefault) is None:
        node.pop("default")
    if "const" in node:
        node["enum"] = [node.pop("const")]

    unknown = set(node) - _KEPT - _DROPPED - {"additionalProperties"}
    unknown = {k for k in unknown if not k.startswith("x-kubernetes-")}
    if unknown:
        raise SchemaError(f"{where}: no structural equivalent for {sorted(unknown)}")

    extra_props = node.pop("additionalProperties", None)
    for key in _DROPPED:
        node.pop(key, None)

    kind = node.get("type")
    if kind == "object":
        if "properties" in node:
            node["properties"] = {
                name: _structural(sub, defs, rules, f"{where}.{name}") for name, sub in node["properties"].items()
            }
        elif isinstance(extra_props, dict) and extra_props:
            node["additionalProperties"] = _structural(extra_props, defs, rules, f"{where}.*")
        else:
            node["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        if "items" not in node:
            raise SchemaError(f"{where}: a list needs a type for its items")
        node["items"] = _structural(node["items"], defs, rules, f"{where}[]")
    elif kind == "string" and "enum" in node and "maxLength" not in node:
        # Bounds the CEL cost estimate of rules that compare the value.
        node["maxLength"] = max(len(v) for v in node["enum"])
    elif kind is None and not node.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{where}: no type")

    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node.get(bound), bool):
            node["minimum" if bound == "exclusiveMinimum" else "maximum"] = node[bound]
            node[bound] = True
    return _finish(node, extra_rules, where)


def _int_or_string(node: dict[str, Any], branches: list[dict[str, Any]], where: str) -> dict[str, Any]:
    ints = [b for b in branches if b.get("type") == "integer"]
    strings = [b for b in branches if b.get("type") == "string" and ("const" in b or "enum" in b)]
    if len(ints) != 1 or len(strings) != 1 or len(branches) != 2:
        raise SchemaError(f"{where}: only `int | Literal[...]` unions are supported, got {branches}")
    words = [strings[0]["const"]] if "const" in strings[0] else list(strings[0]["enum"])
    low = node.pop("minimum", ints[0].get("minimum"))
    high = node.pop("maximum", ints[0].get("maximum"))
    result = {k: v for k, v in node.items() if k not in _DROPPED and k != "type"}
    result["x-kubernetes-int-or-string"] = True
    result.setdefault("x-kubernetes-validations", []).append(_int_or_string_rule(words, low, high))
    return result


def _tagged_union(node: dict[str, Any], defs: dict[str, Any], rules: dict[str, list], where: str) -> dict[str, Any]:
    """A pydantic discriminated union as one object.

    A structural schema cannot choose between objects (no oneOf of different properties),
    so the branches' properties are merged into one object whose tag lists the branches,
    and CEL rules restate the rest: which fields each branch allows and needs, what a field
    shared in a looser form demands in one branch, and each branch model's own rules,
    applied when its tag is chosen.
    """
    discriminator = node.pop("discriminator")["propertyName"]
    branches = {}
    for ref in node.pop("oneOf"):
        branch = _structural(ref, defs, rules, f"{where}<{ref.get('$ref', '?')}>")
        branches[branch["properties"][discriminator]["enum"][0]] = branch
    names = list(branches)
    shared: dict[str, dict[str, dict[str, Any]]] = {}
    for name, branch in branches.items():
        for field, schema in branch["properties"].items():
            if field != discriminator:
                shared.setdefault(field, {})[name] = schema
    properties = {discriminator: {"type": "string", "enum": names, "maxLength": max(map(len, names)),
                        "description": " ".join(f"`{name}`: {' '.join(branch.get('description', '').split())}"
                                                for name, branch in branches.items())}}
    required, validations = [discriminator], []
    for field, schemas in shared.items():
        properties[field], lost = _merged_field(field, schemas, f"{where}.{field}")
        validations += [_when(discriminator, name, rule) for name, rule in lost.items()]
        if len(schemas) < len(names):
            validations.append({"rule": f"!has(self.{field}) || self.{discriminator} in {_cel_list(schemas)}",
                                "message": f"{field} is allowed only with {discriminator}: {', '.join(schemas)}",
                                "fieldPath": f".{field}", "reason": "FieldValueForbidden"})
        needing = [name for name in schemas if field in branches[name].get("required", [])]
        if len(needing) == len(names):
            required.append(field)
        elif needing:
            validations.append({"rule": f"has(self.{field}) || !(self.{discriminator} in {_cel_list(needing)})",
                                "message": f"{field} is required with {discriminator}: {', '.join(needing)}",
                                "fieldPath": f".{field}", "reason": "FieldValueRequired"})
    for name, branch in branches.items():
        validations += [_when(discriminator, name, rule) for rule in branch.get("x-kubernetes-validations", [])]
    own = {keyword: value for keyword, value in node.items() if keyword not in _DROPPED}
    return {**own, "type": "object", "properties": properties, "required": required,
            "x-kubernetes-validations": validations}


def _merged_field(field: str, schemas: dict[str, dict[str, Any]], where: str) -> tuple[dict[str, Any], dict]:
    """One schema for a field that several branches share, and per branch a CEL rule for what
    it loses. Branches may differ only as integer and number, in their bounds and in their
    descriptions; anything else is a model to rename a field in."""
    variants = []
    for schema in schemas.values():
        if schema not in variants:
            variants.append(schema)
    if len(variants) == 1:
        return variants[0], {}
    loose = ("type", "minimum", "maximum", "description")
    cores = [{k: v for k, v in schema.items() if k not in loose} for schema in variants]
    if any(core != cores[0] for core in cores) or {s.get("type") for s in variants} - {"integer", "number"}:
        raise SchemaError(f"{where}: the union's branches give it different schemas: {variants}")
    merged = dict(cores[0], type="number" if any(s["type"] == "number" for s in variants) else "integer")
    for bound in ("minimum", "maximum"):
        if len({json.dumps(s.get(bound)) for s in variants}) == 1 and bound in variants[0]:
            merged[bound] = variants[0][bound]
    described: dict[str, list[str]] = {}
    for name, schema in schemas.items():
        described.setdefault(schema.get("description", ""), []).append(name)
    merged["description"] = " ".join(f"{', '.join(names)}: {text}" for text, names in described.items())
    lost = {}
    for name, schema in schemas.items():
        tests = []
        if schema["type"] == "integer" and merged["type"] == "number":
            tests.append((f"self.{field} == double(int(self.{field}))", "a whole number"))
        for bound, operator, word in (("minimum", ">=", "at least"), ("maximum", "<=", "at most")):
            if bound in schema and bound not in merged:
                tests.append((f"self.{field} {operator} {float(schema[bound])}", f"{word} {schema[bound]}"))
        if tests:
            lost[name] = {"rule": f"!has(self.{field}) || ({' && '.join(test for test, _ in tests)})",
                          "message": f"{field} must be {' and '.join(word for _, word in tests)}",
                          "fieldPath": f".{field}", "reason": "FieldValueInvalid"}
    return merged, lost


def _when(discriminator: str, name: str, rule: dict[str, str]) -> dict[str, str]:
    """A branch's rule, applied only when its tag is chosen."""
    guarded = dict(rule, rule=f"self.{discriminator} != '{name}' || ({rule['rule']})")
    if "message" in guarded:
        guarded["message"] = f"{discriminator} {name}: {rule['message']}"
    return guarded


def _cel_list(names) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


def _finish(node: dict[str, Any], extra_rules: list[dict[str, str]], where: str) -> dict[str, Any]:
    if extra_rules:
        existing = node.get("x-kubernetes-validations", [])
        node["x-kubernetes-validations"] = existing + [copy.deepcopy(r) for r in extra_rules if r not in existing]
    return node


def structural_schema(model: type[BaseModel], rules: dict[str, list] | None = None) -> dict[str, Any]:
    """The Kubernetes structural schema of a pydantic model."""
    schema = model.model_json_schema(schema_generator=_Generator)
    defs = schema.pop("$defs", {})
    return _structural(schema, defs, _model_rules() if rules is None else rules, model.__name__)


def job_spec_rules(where: str = "spec") -> list[dict[str, str]]:
    """The rules on a whole PravahJobSpec (at `where`) that no model of its parts carries."""
    return volume_path_rules(where=where) + checks_rules() + [reuse_rule()]


def spec_schema() -> dict[str, Any]:
    schema = structural_schema(PravahJobSpec)
    schema["description"] = "What to process and how; immutable once created, except suspend."
    schema.setdefault("x-kubernetes-validations", []).extend(job_spec_rules() + [immutability_rule()])
    return schema


def cron_spec_schema() -> dict[str, Any]:
    """The PravahCronJob spec: mutable, its job template checked as a PravahJob's spec is."""
    schema = structural_schema(PravahCronJobSpec)
    schema["description"] = "When to run which PravahJob; every field may change."
    schema["properties"]["schedule"]["x-kubernetes-validations"] = [
        {"rule": f"self.matches(r'{SCHEDULE_PATTERN}')",
         "message": SCHEDULE_MESSAGE, "reason": "FieldValueInvalid"}]
    template = schema["properties"]["jobTemplate"]["properties"]["spec"]
    template.setdefault("x-kubernetes-validations", []).extend(job_spec_rules("spec.jobTemplate.spec"))
    schema["x-kubernetes-validations"] = [
        {"rule": "!self.incremental || (!has(self.jobTemplate.spec.incremental) && "
                 "!has(self.jobTemplate.spec.rerunOf))",
         "message": INCREMENTAL_CONFLICT, "fieldPath": ".incremental", "reason": "FieldValueForbidden"},
        {"rule": "!self.incremental || self.successfulJobsHistoryLimit >= 1",
         "message": INCREMENTAL_NEEDS_HISTORY, "fieldPath": ".successfulJobsHistoryLimit",
         "reason": "FieldValueInvalid"},
    ]
    return schema


def status_schema(model: type[BaseModel] = PravahJobStatus) -> dict[str, Any]:
    schema = structural_schema(model)
    schema["description"] = "Written by the operator."
    return schema


# -- the CRD ------------------------------------------------------------------------------

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase of the job."},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1,
     "description": "Why the job is in its phase, e.g. ChecksFailed."},
    {"name": "Progress", "type": "integer", "jsonPath": ".status.progress.percent",
     "description": "Percent done."},
    {"name": "Files", "type": "string", "jsonPath": ".status.progress.files",
     "description": "Files done out of all."},
    {"name": "Throughput", "type": "string", "jsonPath": ".status.progress.throughput",
     "description": "Current processing rate."},
    {"name": "Shards", "type": "string", "jsonPath": ".status.shards.ready",
     "description": "Finished shards out of all."},
    {"name": "Errors", "type": "integer", "jsonPath": ".status.errors.count", "priority": 1,
     "description": "Files that failed."},
    {"name": "Reused", "type": "integer", "jsonPath": ".status.result.reuse.reused", "priority": 1,
     "description": "Files whose partials a re-run or an incremental run took over instead of reading them."},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1,
     "description": "Why the job is in its phase."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


CRON_PRINTER_COLUMNS = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule", "description": "When jobs run."},
    {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend", "description": "No new jobs while true."},
    {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount", "description": "Unfinished jobs."},
    {"name": "Last Schedule", "type": "date", "jsonPath": ".status.lastScheduleTime",
     "description": "Schedule time of the last job created."},
    {"name": "Last Job", "type": "string", "jsonPath": ".status.lastJob", "description": "The job created last."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def definition(kind: str, plural: str, short_names: list[str], description: str, spec: dict[str, Any],
               status: dict[str, Any], columns: list[dict[str, Any]],
               rules: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A namespaced CustomResourceDefinition of group pravah.io with a status subresource."""
    root = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"APIVersion of this object ({API_VERSION})."},
            "kind": {"type": "string", "description": f"Kind of this object ({kind})."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if rules:
        root["x-kubernetes-validations"] = rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "pravah"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": list(short_names),
                "categories": list(CATEGORIES),
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": root},
                "subresources": {"status": {}},
                "additionalPrinterColumns": copy.deepcopy(columns),
            }],
        },
    }


def crd() -> dict[str, Any]:
    """The PravahJob CustomResourceDefinition as a dict."""
    return definition(KIND, PLURAL, SHORT_NAMES,
                      "A PravahJob processes a set of files in parallel shards and keeps one merged result.",
                      spec_schema(), status_schema(), PRINTER_COLUMNS)


def cron_crd() -> dict[str, Any]:
    """The PravahCronJob CustomResourceDefinition as a dict. Its name is capped as a
    Kubernetes CronJob's is, so that the names of the jobs it creates stay label values."""
    name_rule = {"rule": f"size(self.metadata.name) <= {MAX_NAME}",
                 "message": f"metadata.name must be at most {MAX_NAME} characters: the jobs' names add 9",
                 "reason": "FieldValueInvalid"}
    return definition(CRON_KIND, CRON_PLURAL, CRON_SHORT_NAMES,
                      "A PravahCronJob creates a PravahJob from its template at each time of its schedule.",
                      cron_spec_schema(), status_schema(PravahCronJobStatus), CRON_PRINTER_COLUMNS, [name_rule])


class _Dumper(yaml.SafeDumper):
    """Block style; lists indented under their key; multi-line strings as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(build=crd, header: str = HEADER) -> str:
    """A CRD (the PravahJob's unless told) as YAML text, byte-for-byte deterministic."""
    body = yaml.dump(build(), Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=120,
                     allow_unicode=True)
    return header + body


def rendered() -> dict[Path, str]:
    """Every generated file, the copies included, with its text."""
    texts = {CRD_FILE: render(), CRON_CRD_FILE: render(cron_crd, CRON_HEADER)}
    return {path: text for original, text in texts.items()
            for path in (original, *(folder / original.name for folder in COPY_DIRS))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pravah_operator.crd", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the CRDs under crds/ and their copies")
    action.add_argument("--check", action="store_true", help="exit 1 if a checked-in CRD is not up to date")
    args = parser.parse_args(argv)
    files = rendered()
    if args.write:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}", file=sys.stderr)
    elif args.check:
        stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path.relative_to(REPO_ROOT)} is stale: run `python -m pravah_operator.crd --write`",
                  file=sys.stderr)
        return 1 if stale else 0
    else:
        sys.stdout.write(files[CRD_FILE])
    return 0

if __name__ == "__main__":
    sys.exit(main())
