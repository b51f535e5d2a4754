"""Data-quality checks: rules judged against a `stats` result.

This is the one place where rules are defined and judged: `pravah run` judges the local
result, and on the cluster the runner that merges the shards judges the merged result.
A rule reads only what the stats profile holds — rows, and per column the inferred type,
the count of values, min, max, the distinct estimate, the quantile estimates and the most
frequent values — so checking costs no second pass over the data. Where the profile is an
estimate, the rule judges the estimate; docs/checks.md says how far that goes.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, NamedTuple, Self, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_CHECKS = 100
MAX_TEXT = 1024
MAX_EXPECTED_COLUMNS = 1000
MAX_ALLOWED_VALUES = 100  # the most top values a stats profile keeps (operation.stats.top)
MAX_MESSAGES = 10
NUMERIC_TYPES = ("int", "float")
# The engine's distinct-count sketch keeps the exact set of value hashes up to 2,048 values
# and HyperLogLog registers (2^14 of them) beyond.
DISTINCT_EXACT_UP_TO = 2048
DISTINCT_STANDARD_ERROR = 1.04 / math.sqrt(2 ** 14)
# Past the exact range a unique column may show an estimate this far below its value count
# (four standard errors: a truly unique column fails about once in 30,000 runs).
UNIQUE_TOLERANCE = 4 * DISTINCT_STANDARD_ERROR
BOUNDS_NEEDED = "give min, max or both"
BOUNDS_ORDER = "min must not be greater than max"

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class Judgement(NamedTuple):
    observed: Any
    passed: bool
    reason: str | None = None


class Rule(BaseModel):
    """Base of every rule: unknown fields are errors, so a misspelt bound never passes silently."""

    model_config = ConfigDict(extra="forbid")
    severity: Literal["error", "warn"] = Field(
        default="error", description="error: a failure fails the job; warn: a failure is only reported.")

    def judge(self, result: dict[str, Any]) -> Judgement:
        raise NotImplementedError

    def unmeasured(self, quantiles: list[float], top: int) -> tuple[str, str] | None:
        """(field, why) when stats with these options do not measure what the rule reads."""
        return None


class Bounded(Rule):
    """A rule with an inclusive range: min, max or both."""

    min: float | None = Field(default=None, description="Lower bound, inclusive.")
    max: float | None = Field(default=None, description="Upper bound, inclusive.")

    @model_validator(mode="after")
    def _a_range(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError(BOUNDS_NEEDED)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(BOUNDS_ORDER)
        return self

    def within(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Counted(Bounded):
    """A range of counts: whole numbers."""

    min: int | None = Field(default=None, description="Lower bound, inclusive.")
    max: int | None = Field(default=None, description="Upper bound, inclusive.")


class ColumnRule(Rule):
    """A rule on one column; a column that no file has fails it."""

    column: Text = Field(description="The column's name: its header, or column_1, column_2, ... without one.")

    def judge(self, result: dict[str, Any]) -> Judgement:
        column = next((column for column in result["columns"] if column["name"] == self.column), None)
        if column is None:
            return Judgement(None, False, f"no column named {self.column!r}")
        return self.judge_column(column, result["rows"])

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        raise NotImplementedError


def missing(column: dict[str, Any], rows: int) -> int:
    """Rows without a value in the column: empty fields, and the rows of files without the column."""
    return rows - column["count"]


class NotNull(ColumnRule):
    """Every row has a value in the column."""

    rule: Literal["notNull"]

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        nulls = missing(column, rows)
        return Judgement(nulls, nulls == 0)


class NullRatio(ColumnRule):
    """At most this share of the rows has no value in the column."""

    rule: Literal["nullRatio"]
    max: float = Field(ge=0, le=1, description="Largest share of rows without a value, from 0 to 1.")

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        ratio = missing(column, rows) / rows if rows else 0.0
        return Judgement(ratio, ratio <= self.max)


class Between(ColumnRule, Bounded):
    """Every value of a numeric column lies in the range (its min and max do); a column
    without values passes."""

    rule: Literal["between"]

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        observed = {"min": column["min"], "max": column["max"]}
        if column["count"] == 0:
            return Judgement(observed, True)
        if column["type"] not in NUMERIC_TYPES:
            return Judgement(observed, False, f"the column's type is {column['type']}, not a number")
        return Judgement(observed, self.within(column["min"]) and self.within(column["max"]))


class Distinct(ColumnRule, Counted):
    """The number of distinct values lies in the range (exact up to 2,048 values, estimated beyond)."""

    rule: Literal["distinct"]

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        return Judgement(column["distinct"], self.within(column["distinct"]))


class AllowedValues(ColumnRule):
    """Every value of the column is one of these (compared as written in the file)."""

    rule: Literal["allowedValues"]
    values: list[Text] = Field(min_length=1, max_length=MAX_ALLOWED_VALUES,
                               description="The allowed values; at most operation.stats.top of them.")

    def unmeasured(self, quantiles: list[float], top: int) -> tuple[str, str] | None:
        # With at most `top` allowed values, a column that passes has at most `top` distinct
        # values, all of them in its top list with exact counts; so values outside that list
        # prove a value that is not allowed.
        if len(self.values) > top:
            return "values", (f"{len(self.values)} values, but stats keep only the {top} most frequent values "
                              f"of a column: raise operation.stats.top to at least {len(self.values)}")
        return None

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        allowed = set(self.values)
        unexpected = [entry["value"] for entry in column["top"] if entry["value"] not in allowed]
        beyond_top = column["count"] - sum(entry["count"] for entry in column["top"])
        return Judgement({"unexpected": unexpected, "beyondTop": beyond_top}, not unexpected and beyond_top == 0)


class Unique(ColumnRule):
    """No value of the column appears twice (exact up to 2,048 values; beyond, the distinct
    estimate must be within the sketch's error of the value count)."""

    rule: Literal["unique"]

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        values, distinct = column["count"], column["distinct"]
        repeated = [entry["value"] for entry in column["top"] if entry["count"] > 1]
        observed = {"values": values, "distinct": distinct, "repeated": repeated}
        if repeated:
            return Judgement(observed, False)
        if values <= DISTINCT_EXACT_UP_TO:
            return Judgement(observed, distinct == values)
        return Judgement(observed, distinct >= values * (1 - UNIQUE_TOLERANCE),
                         f"estimated: distinct counts beyond {DISTINCT_EXACT_UP_TO} values are within "
                         f"{UNIQUE_TOLERANCE:.2%}")


class Quantile(ColumnRule, Bounded):
    """The estimate of a quantile of a numeric column lies in the range."""

    rule: Literal["quantile"]
    quantile: float = Field(ge=0, le=1, description="Which quantile, e.g. 0.99; one of operation.stats.quantiles.")

    def unmeasured(self, quantiles: list[float], top: int) -> tuple[str, str] | None:
        if self.quantile not in quantiles:
            return "quantile", f"{self.quantile} is not one of operation.stats.quantiles {quantiles}"
        return None

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        estimates = {float(q): value for q, value in (column["quantiles"] or {}).items()}
        value = estimates.get(self.quantile)
        if value is None:
            why = "the column has no values" if column["count"] == 0 else \
                f"the column's type is {column['type']}, not a number"
            return Judgement(None, False, why)
        return Judgement(value, self.within(value))


class TypeIs(ColumnRule):
    """The column's inferred type is this one (a column of ints and floats is float; of
    anything mixed, string)."""

    rule: Literal["type"]
    type: Literal["int", "float", "bool", "date", "string"] = Field(description="The expected type.")

    def judge_column(self, column: dict[str, Any], rows: int) -> Judgement:
        return Judgement(column["type"], column["type"] == self.type)


class RowCount(Counted):
    """The number of rows of all files lies in the range."""

    rule: Literal["rowCount"]

    def judge(self, result: dict[str, Any]) -> Judgement:
        return Judgement(result["rows"], self.within(result["rows"]))


class NoNewColumns(Rule):
    """Every column is one of the expected ones (a missing one is not judged)."""

    rule: Literal["noNewColumns"]
    columns: list[Text] = Field(min_length=1, max_length=MAX_EXPECTED_COLUMNS, description="The expected columns.")

    def judge(self, result: dict[str, Any]) -> Judgement:
        expected = set(self.columns)
        new = [column["name"] for column in result["columns"] if column["name"] not in expected]
        return Judgement(new, not new)


RULES = (NotNull, NullRatio, Between, Distinct, AllowedValues, Unique, Quantile, TypeIs, RowCount, NoNewColumns)
Check = Annotated[Union[RULES], Field(discriminator="rule", description="One rule; `rule` says which.")]


def judge(checks: list[Rule], result: dict[str, Any]) -> dict[str, Any]:
    """The check report of a stats result: every rule as written, what was observed, whether it passed."""
    results = []
    for check in checks:
        observed, passed, reason = check.judge(result)
        written = check.model_dump(mode="json", exclude_none=True)
        named = {key: written.pop(key) for key in ("rule", "column") if key in written}
        severity = written.pop("severity")
        entry = {**named, **written, "severity": severity, "observed": observed, "passed": passed}
        if reason:
            entry["reason"] = reason
        results.append(entry)
    failed = [entry for entry in results if not entry["passed"]]
    errors = sum(entry["severity"] == "error" for entry in failed)
    return {"passed": errors == 0, "failed": errors, "warned": len(failed) - errors, "results": results}


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The few lines of a report that go into the job's status: counts and the failures, errors first."""
    failures = sorted((entry["severity"] != "error", index, entry)
                      for index, entry in enumerate(report["results"]) if not entry["passed"])
    return {"passed": report["passed"], "checked": len(report["results"]), "failed": report["failed"],
            "warned": report["warned"],
            "messages": [describe(index, entry) for _, index, entry in failures[:MAX_MESSAGES]]}


def verdict(summary: dict[str, Any]) -> str:
    """One line that names the failing rules, for a status message, an Event or the terminal."""
    counts = [f"{summary[key]} {key}" for key in ("failed", "warned") if summary[key]]
    head = f"checks: {' and '.join(counts) or 'all passed'} of {summary['checked']}"
    return "; ".join([head, *summary["messages"]])


def describe(index: int, entry: dict[str, Any]) -> str:
    """`checks[1] price between min=0, max=1000 failed: observed {...}` and the reason, if any."""
    options = {key: value for key, value in entry.items()
               if key not in ("rule", "column", "severity", "observed", "passed", "reason")}
    words = [f"checks[{index}]", entry.get("column"), entry["rule"],
             ", ".join(f"{key}={compact(value)}" for key, value in options.items())]
    outcome = "failed" if entry["severity"] == "error" else "warned"
    text = f"{' '.join(filter(None, words))} {outcome}: observed {compact(entry['observed'])}"
    return f"{text} ({entry['reason']})" if entry.get("reason") else text


def compact(value: Any) -> str:
    """A value as short JSON, floats to six significant digits (whole ones without a point)."""
    def rounded(item: Any) -> Any:
        if isinstance(item, float):
            short = float(f"{item:.6g}")
            return int(short) if short.is_integer() else short
        if isinstance(item, dict):
            return {key: rounded(sub) for key, sub in item.items()}
        if isinstance(item, list):
            return [rounded(sub) for sub in item]
        return item

    return json.dumps(rounded(value), ensure_ascii=False)


def failure(errors: int, max_errors: int | None, summary: dict[str, Any] | None) -> tuple[str, str] | None:
    """Why a finished job failed, as (reason, message), or None: more files failed than
    `maxErrors` allows, or a check of severity error failed. `pravah run` and the operator
    judge a job by this one rule."""
    if max_errors is not None and errors > max_errors:
        return "TooManyErrors", f"{errors} files failed, more than maxErrors={max_errors}"
    if summary and not summary["passed"]:
        return "ChecksFailed", verdict(summary)
    return None
