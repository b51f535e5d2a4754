"""Data-quality checks: every rule against what the data says, the refusals that name the
field, and `pravah run --checks` as a user meets it.

The data is generated here; what each rule must observe is computed from it with Python's
csv and statistics (tests/e2e/reference.py), and the engine runs once per data set.
"""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from e2e import reference
from pravah import checks
from pravah.local import LocalJob, execute
from pravah.spec import OperationSpec, PravahJobSpec, describe_errors
from pravah_operator import crd
from unit.test_crd import strict

PRAVAH = str(Path(sys.executable).parent / "pravah")
TOP = 10
QUANTILES = [0.5, 0.9, 0.99]
RULES = TypeAdapter(list[checks.Check])


def write_data(root: Path) -> None:
    """Two files: `orders` has a flag column and an always-empty note column, `more` has
    neither; prices have gaps and one negative value; regions repeat; ids are unique."""
    draw = random.Random(7)
    root.mkdir()
    regions = ["north", "south", "east", "west"]
    with (root / "orders.csv").open("w") as out:
        out.write("id,price,region,flag,note\n")
        for row in range(300):
            price = "" if row % 17 == 0 else f"{draw.uniform(1, 500):.2f}"
            out.write(f"{row},{price},{draw.choice(regions)},{draw.choice(['true', 'false'])},\n")
    with (root / "more.csv").open("w") as out:
        out.write("id,price,region\n")
        for row in range(300, 420):
            price = "-4.25" if row == 333 else f"{draw.uniform(1, 500):.2f}"
            out.write(f"{row},{price},{draw.choice(regions + [''])}\n")


class Data:
    """A data set profiled once by the engine, and the same data read with Python's csv."""

    def __init__(self, root: Path):
        job = LocalJob(root=root, operation=OperationSpec.model_validate(
            {"type": "stats", "stats": {"quantiles": QUANTILES, "top": TOP}}), threads=2)
        self.result = execute(job)["result"]
        files = reference.source_files(root)
        tables, failed = reference.read_tables(files, ",", True)
        assert failed == []
        self.rows = sum(len(table.rows) for table in tables.values())
        self.columns = {column.name: column for column in reference.columns_of(tables)}

    def judge(self, *rules: dict[str, Any]) -> list[dict[str, Any]]:
        return checks.judge(RULES.validate_python(list(rules)), self.result)["results"]

    def one(self, rule: dict[str, Any]) -> dict[str, Any]:
        (entry,) = self.judge(rule)
        return entry

    def missing(self, name: str) -> int:
        return self.rows - len(self.columns[name].values)

    def ranked(self, name: str) -> list[tuple[str, int]]:
        """The column's values by count, ties by value: the engine's top list, in full."""
        return sorted(Counter(self.columns[name].values).items(), key=lambda item: (-item[1], item[0].encode()))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Data:
    root = tmp_path_factory.mktemp("checks") / "data"
    write_data(root)
    return Data(root)


# -- each rule against the data ------------------------------------------------------------

def test_not_null_counts_empty_fields_and_rows_of_files_without_the_column(data):
    price, flag, ids = (data.one({"column": name, "rule": "notNull"}) for name in ("price", "flag", "id"))
    assert (price["observed"], price["passed"]) == (data.columns["price"].nulls, False)
    assert flag["observed"] == data.missing("flag") == 120 and not flag["passed"]
    assert (ids["observed"], ids["passed"]) == (0, True)


def test_null_ratio(data):
    ratio = data.missing("region") / data.rows
    assert ratio > 0
    at, below = data.judge({"column": "region", "rule": "nullRatio", "max": ratio},
                           {"column": "region", "rule": "nullRatio", "max": ratio * 0.99})
    assert math.isclose(at["observed"], ratio) and at["passed"] and not below["passed"]


def test_between_reads_the_exact_min_and_max(data):
    numbers = data.columns["price"].numbers()
    low, high = min(numbers), max(numbers)
    assert low == -4.25
    inside, above_min, below_max, only_min = data.judge(
        {"column": "price", "rule": "between", "min": low, "max": high},
        {"column": "price", "rule": "between", "min": 0},
        {"column": "price", "rule": "between", "max": high - 0.01},
        {"column": "price", "rule": "between", "min": low})
    assert inside["observed"] == {"min": low, "max": high} and inside["passed"]
    assert [above_min["passed"], below_max["passed"], only_min["passed"]] == [False, False, True]


def test_between_on_text_fails_saying_why_and_passes_a_column_without_values(data):
    region, note = data.judge({"column": "region", "rule": "between", "min": 0},
                              {"column": "note", "rule": "between", "min": 0})
    assert not region["passed"] and region["reason"] == "the column's type is string, not a number"
    assert data.columns["note"].values == [] and note["passed"]


def test_distinct(data):
    truth = len(set(data.columns["region"].values))
    exact, too_many = data.judge({"column": "region", "rule": "distinct", "min": truth, "max": truth},
                                 {"column": "region", "rule": "distinct", "max": truth - 1})
    assert exact["observed"] == truth and exact["passed"] and not too_many["passed"]


def test_allowed_values(data):
    seen = sorted(set(data.columns["region"].values))
    exact, short = data.judge({"column": "region", "rule": "allowedValues", "values": seen},
                              {"column": "region", "rule": "allowedValues", "values": seen[1:]})
    assert exact["observed"] == {"unexpected": [], "beyondTop": 0} and exact["passed"]
    assert short["observed"] == {"unexpected": [seen[0]], "beyondTop": 0} and not short["passed"]


def test_allowed_values_beyond_the_top_list_prove_a_value_not_allowed(data):
    ranked = data.ranked("price")
    assert len(ranked) > TOP
    allowed = [value for value, _ in ranked[:3]]
    entry = data.one({"column": "price", "rule": "allowedValues", "values": allowed})
    shown = ranked[:TOP]
    assert entry["observed"] == {"unexpected": [value for value, _ in shown if value not in allowed],
                                 "beyondTop": len(data.columns["price"].values) - sum(n for _, n in shown)}
    assert not entry["passed"]


def test_unique(data):
    ids, regions = data.judge({"column": "id", "rule": "unique"}, {"column": "region", "rule": "unique"})
    values = data.columns["id"].values
    assert ids["observed"] == {"values": len(values), "distinct": len(set(values)), "repeated": []}
    assert ids["passed"] and len(set(values)) == len(values)
    assert regions["observed"]["repeated"] == [value for value, n in data.ranked("region")[:TOP] if n > 1]
    assert not regions["passed"]


def test_unique_beyond_the_exact_range_is_estimated(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    count = 3 * checks.DISTINCT_EXACT_UP_TO
    # `some` repeats every tenth value once: each repeated value is seen twice, far apart.
    (root / "big.csv").write_text("id,some\n" + "".join(
        f"{row},{row - count // 2 if row >= count // 2 and row % 10 == 0 else row}\n" for row in range(count)))
    big = Data(root)
    ids, some = big.judge({"column": "id", "rule": "unique"}, {"column": "some", "rule": "unique"})
    for name, entry in (("id", ids), ("some", some)):
        truth = len(set(big.columns[name].values))
        assert abs(entry["observed"]["distinct"] - truth) <= reference.DISTINCT_RELATIVE_BOUND * truth
        assert entry["observed"]["values"] == count
    assert ids["passed"] and ids["reason"].startswith("estimated")
    assert len(set(big.columns["some"].values)) < count * (1 - checks.UNIQUE_TOLERANCE) and not some["passed"]


def test_quantile(data):
    numbers = sorted(data.columns["price"].numbers())
    truth = numbers[math.floor(0.9 * (len(numbers) - 1) + 0.5)]
    entry = data.one({"column": "price", "rule": "quantile", "quantile": 0.9, "min": 0})
    estimate = entry["observed"]
    assert abs(estimate - truth) <= reference.QUANTILE_RELATIVE_ERROR * abs(truth) and entry["passed"]
    above, text = data.judge({"column": "price", "rule": "quantile", "quantile": 0.9, "min": estimate + 0.01},
                             {"column": "region", "rule": "quantile", "quantile": 0.9, "max": 1})
    assert not above["passed"]
    assert (text["observed"], text["passed"], text["reason"]) == (None, False, "the column's type is string, "
                                                                              "not a number")


def test_type(data):
    for name, column in data.columns.items():
        same, other = data.judge({"column": name, "rule": "type", "type": column.type},
                                 {"column": name, "rule": "type", "type": "bool" if column.type != "bool" else "int"})
        assert (same["observed"], same["passed"], other["passed"]) == (column.type, True, False), name
    assert {name: column.type for name, column in data.columns.items()} == {
        "id": "int", "price": "float", "region": "string", "flag": "bool", "note": "string"}


def test_row_count(data):
    assert data.rows == 420
    at, more = data.judge({"rule": "rowCount", "min": data.rows, "max": data.rows}, {"rule": "rowCount", "min": 421})
    assert at["observed"] == data.rows and at["passed"] and not more["passed"]


def test_no_new_columns(data):
    names = list(data.columns)
    every, fewer = data.judge({"rule": "noNewColumns", "columns": names + ["later"]},
                              {"rule": "noNewColumns", "columns": [name for name in names if name != "flag"]})
    assert every["observed"] == [] and every["passed"]
    assert fewer["observed"] == ["flag"] and not fewer["passed"]


def test_a_missing_column_fails_every_column_rule(data):
    for rule in ({"rule": "notNull"}, {"rule": "between", "min": 0}, {"rule": "type", "type": "int"}):
        entry = data.one({"column": "nope", **rule})
        assert (entry["observed"], entry["passed"], entry["reason"]) == (None, False, "no column named 'nope'")


def test_the_report_its_summary_and_the_verdict(data):
    rules = RULES.validate_python([
        {"rule": "rowCount", "min": 1},
        {"column": "region", "rule": "notNull", "severity": "warn"},
        {"column": "price", "rule": "between", "min": 0, "max": 1000}])
    report = checks.judge(rules, data.result)
    assert (report["passed"], report["failed"], report["warned"]) == (False, 1, 1)
    assert list(report["results"][2].items()) == [
        ("rule", "between"), ("column", "price"), ("min", 0.0), ("max", 1000.0), ("severity", "error"),
        ("observed", {"min": -4.25, "max": max(data.columns["price"].numbers())}), ("passed", False)]
    summary = checks.summarize(report)
    assert summary["messages"][0].startswith("checks[2] price between min=0, max=1000 failed: observed {\"min\": -4.25")
    assert summary["messages"][1] == f"checks[1] region notNull warned: observed {data.missing('region')}"
    assert checks.verdict(summary).startswith("checks: 1 failed and 1 warned of 3; checks[2] price between")
    assert checks.judge(rules[:1], data.result)["passed"]


# -- refusals that name the field ------------------------------------------------------------

STATS = {"source": {"volume": {"path": "data"}}, "operation": {"type": "stats", "stats": {"top": 3}}}


@pytest.mark.parametrize(("spec", "field"), [
    ({**STATS, "operation": {"type": "count"}, "checks": [{"rule": "rowCount", "min": 1}]}, "spec.checks"),
    ({**STATS, "checks": [{"column": "p", "rule": "quantile", "quantile": 0.95, "max": 1}]}, "spec.checks.0.quantile"),
    ({**STATS, "checks": [{"column": "r", "rule": "allowedValues", "values": ["a", "b", "c", "d"]}]},
     "spec.checks.0.values"),
    ({**STATS, "checks": [{"column": "p", "rule": "nullRatio", "max": 5}]}, "spec.checks.0.nullRatio.max"),
    ({**STATS, "checks": [{"rule": "rowCount", "min": 1.5}]}, "spec.checks.0.rowCount.min"),
    ({**STATS, "checks": [{"column": "p", "rule": "isPositive"}]}, "spec.checks.0"),
    ({**STATS, "checks": [{"column": "p", "rule": "notNull", "min": 0}]}, "spec.checks.0.notNull.min"),
    ({**STATS, "checks": [{"rule": "notNull"}]}, "spec.checks.0.notNull.column"),
    ({**STATS, "checks": [{"column": "p", "rule": "rowCount", "min": 1}]}, "spec.checks.0.rowCount.column"),
    ({**STATS, "checks": [{"column": "p", "rule": "between"}]}, "spec.checks.0.between"),
    ({**STATS, "checks": [{"column": "p", "rule": "distinct", "min": 5, "max": 3}]}, "spec.checks.0.distinct"),
    ({**STATS, "checks": [{"column": "p", "rule": "type", "type": "decimal"}]}, "spec.checks.0.type.type"),
    ({**STATS, "checks": [{"column": "p", "rule": "unique", "severity": "fatal"}]}, "spec.checks.0.unique.severity"),
])
def test_bad_checks_are_refused_naming_the_field(spec, field):
    with pytest.raises(ValidationError) as caught:
        PravahJobSpec.model_validate(spec)
    lines = describe_errors(caught.value, "spec")
    assert any(line.startswith(field + ":") for line in lines), lines


def test_checks_that_fit_are_accepted_with_defaults():
    spec = PravahJobSpec.model_validate({**STATS, "checks": [
        {"column": "p", "rule": "quantile", "quantile": 0.99, "max": 1},
        {"column": "r", "rule": "allowedValues", "values": ["a", "b", "c"]}]})
    assert [check.severity for check in spec.checks] == ["error", "error"]
    quantile = {"column": "p", "rule": "quantile", "quantile": 0.5, "min": 0}
    defaults = PravahJobSpec.model_validate({**STATS, "operation": {"type": "stats"}, "checks": [quantile]})
    assert defaults.checks[0].quantile == 0.5


# -- the CRD: one object per rule, what the schema cannot say restated as CEL -----------------

@pytest.fixture(scope="module")
def item_schema() -> dict[str, Any]:
    (version,) = yaml.safe_load(crd.render())["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["checks"]["items"]


def test_the_crd_lists_every_rule_and_field(item_schema):
    assert item_schema["properties"]["rule"]["enum"] == [crd.tag(model) for model in checks.RULES]
    fields = {name for model in checks.RULES for name in model.model_fields} - {"rule"}
    assert set(item_schema["properties"]) - {"rule"} == fields
    assert item_schema["required"] == ["rule"]


def test_each_field_is_allowed_and_required_only_where_its_rule_has_it(item_schema):
    rules = {(rule["fieldPath"], rule["reason"]): rule["rule"] for rule in item_schema["x-kubernetes-validations"]
             if rule.get("reason") in ("FieldValueForbidden", "FieldValueRequired") and "fieldPath" in rule}
    for field in item_schema["properties"]:
        having = [crd.tag(model) for model in checks.RULES if field in model.model_fields]
        needing = [crd.tag(model) for model in checks.RULES
                   if field in model.model_fields and model.model_fields[field].is_required()]
        if len(having) < len(checks.RULES):
            assert rules[(f".{field}", "FieldValueForbidden")] == f"!has(self.{field}) || self.rule in {listed(having)}"
        if needing and len(needing) < len(checks.RULES):
            needed = rules[(f".{field}", "FieldValueRequired")]
            assert needed == f"has(self.{field}) || !(self.rule in {listed(needing)})"


def listed(names: list[str]) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


def test_shared_bounds_restate_what_each_rule_demands(item_schema):
    rules = [rule for rule in item_schema["x-kubernetes-validations"] if rule.get("reason") == "FieldValueInvalid"]
    texts = {rule["rule"] for rule in rules}
    assert "self.rule != 'nullRatio' || (!has(self.max) || (self.max >= 0.0 && self.max <= 1.0))" in texts
    for name in ("rowCount", "distinct"):
        assert f"self.rule != '{name}' || (!has(self.min) || (self.min == double(int(self.min))))" in texts
    for model in checks.RULES:
        if issubclass(model, checks.Bounded):
            assert f"self.rule != '{crd.tag(model)}' || (has(self.min) || has(self.max))" in {
                rule["rule"] for rule in item_schema["x-kubernetes-validations"]}


def test_spec_rules_fit_the_checks_to_the_operation():
    rules = {rule["message"]: rule["rule"] for rule in crd.spec_schema()["x-kubernetes-validations"]}
    assert rules["checks judge a stats result: operation.type must be stats"].endswith(
        "self.operation.type == 'stats'")
    assert "self.operation.stats.quantiles : [0.5, 0.9, 0.99]" in \
        rules["a quantile check's quantile must be one of operation.stats.quantiles"]
    assert "self.operation.stats.top : 5" in rules["an allowedValues check may list at most operation.stats.top values"]


BASE = {"apiVersion": "pravah.io/v1alpha1", "kind": "PravahJob", "metadata": {"name": "x"}, "spec": STATS}


@pytest.mark.parametrize(("check", "field"), [
    ({"column": "p", "rule": "isPositive"}, "spec.checks.0.rule"),
    ({"column": "p", "rule": "between", "min": "zero"}, "spec.checks.0.min"),
    ({"column": "p", "rule": "notNull", "colour": "red"}, "spec.checks.0"),
    ({"column": "p", "rule": "allowedValues", "values": "a"}, "spec.checks.0.values"),
])
def test_the_schema_refuses_bad_rules(check, field):
    manifest = copy.deepcopy(BASE)
    manifest["spec"]["checks"] = [check]
    (version,) = yaml.safe_load(crd.render())["spec"]["versions"]
    validator = jsonschema.Draft4Validator(strict(version["schema"]["openAPIV3Schema"]))
    assert field in {".".join(map(str, error.absolute_path)) for error in validator.iter_errors(manifest)}


# -- pravah run --checks ----------------------------------------------------------------------

def pravah(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PRAVAH, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "data"
    write_data(root)
    return root


def checks_file(directory: Path, *rules: dict[str, Any]) -> Path:
    path = directory / "checks.yaml"
    path.write_text(yaml.safe_dump({"checks": list(rules)}))
    return path


def test_a_failed_error_check_exits_1_with_the_report(data_dir, tmp_path):
    rules = checks_file(tmp_path, {"column": "price", "rule": "between", "min": 0}, {"rule": "rowCount", "min": 1})
    result = pravah("run", str(data_dir), "--op", "stats", "--checks", str(rules), "--json",
                    "--output", str(tmp_path / "out"))
    assert result.returncode == 1, result.stderr
    assert "error: checks: 1 failed of 2; checks[0] price between min=0 failed: observed" in result.stderr
    document = json.loads(result.stdout)
    failed, passed = document["checks"]["results"]
    assert failed["observed"]["min"] == -4.25 and not failed["passed"] and passed["passed"]
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == document


def test_a_failed_warn_check_exits_0_with_a_warning(data_dir, tmp_path):
    rules = checks_file(tmp_path, {"column": "price", "rule": "between", "min": 0, "severity": "warn"})
    result = pravah("run", str(data_dir), "--op", "stats", "--checks", str(rules))
    assert result.returncode == 0, result.stderr
    assert "warning: checks: 1 warned of 1; checks[0] price between min=0 warned" in result.stderr
    assert "checks: 0 failed, 1 warned" in result.stdout and "price" in result.stdout


def test_checks_in_a_manifest_run_with_it(data_dir):
    manifest = data_dir.parent / "job.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "pravah.io/v1alpha1", "kind": "PravahJob", "metadata": {"name": "gate"},
        "spec": {"source": {"volume": {"path": data_dir.name}}, "operation": {"type": "stats"},
                 "checks": [{"column": "id", "rule": "unique"}, {"column": "flag", "rule": "notNull"}]}}))
    result = pravah("run", "-f", str(manifest), "--json")
    assert result.returncode == 1, result.stderr
    assert "checks[1] flag notNull failed: observed 120" in result.stderr
    assert [entry["passed"] for entry in json.loads(result.stdout)["checks"]["results"]] == [True, False]


@pytest.mark.parametrize(("op", "rule", "named"), [
    ("stats", {"column": "p", "rule": "nullRatio", "max": 5}, "checks.0.nullRatio.max"),
    ("stats", {"column": "p", "rule": "quantile", "quantile": 0.75, "max": 5}, "checks.0.quantile"),
    ("count", {"rule": "rowCount", "min": 1}, "checks: "),
])
def test_a_bad_checks_file_is_a_usage_error_naming_the_field(data_dir, tmp_path, op, rule, named):
    result = pravah("run", str(data_dir), "--op", op, "--checks", str(checks_file(tmp_path, rule)))
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_the_example_gate_passes_on_the_sample_data(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "stats-checks-volume.yaml"
    result = pravah("run", "-f", str(example), "--json", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["checks"]
    assert report["passed"] and [entry for entry in report["results"] if not entry["passed"]] == []


def test_help_tells_about_checks():
    text = pravah("run", "--help").stdout
    assert "--checks" in text and "a check of severity error" in " ".join(text.split())
