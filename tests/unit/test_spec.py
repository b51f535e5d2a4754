import json
import re

import pravah_engine
import pytest
from pydantic import ValidationError

from pravah.spec import OperationSpec, PravahJobSpec, describe_errors

VALID = {"source": {"volume": {"path": "data"}}, "operation": {"type": "count"}}


def errors_of(spec: dict) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        PravahJobSpec.model_validate(spec)
    return describe_errors(caught.value, "spec")


def test_minimal_spec_gets_defaults():
    spec = PravahJobSpec.model_validate(VALID)
    assert spec.parallelism == "auto" and spec.resources.cpu == "auto" and spec.maxRetriesPerShard == 2


@pytest.mark.parametrize(("patch", "field"), [
    ({"operation": {"type": "md5"}}, "spec.operation.type"),
    ({"source": {"volume": {}, "s3": {"bucket": "raw"}}}, "spec.source"),
    ({"parallelism": -1}, "spec.parallelism"),
    ({"operation": {"type": "grep", "grep": {"pattern": "("}}}, "spec.operation.grep.pattern"),
    ({"operation": {"type": "stats", "stats": {"quantiles": [1.5]}}}, "spec.operation.stats.quantiles"),
    ({"operation": {"type": "stats", "stats": {"delimiter": ";;"}}}, "spec.operation.stats.delimiter"),
    ({"resources": {"cpu": 0}}, "spec.resources.cpu"),
    ({"colour": "blue"}, "spec.colour"),
])
def test_bad_fields_are_named(patch, field):
    assert any(line.startswith(field + ":") for line in errors_of({**VALID, **patch}))


def test_engine_options_use_the_engine_vocabulary():
    grep = OperationSpec.model_validate({"type": "grep", "grep": {"pattern": "x", "ignoreCase": True}})
    assert grep.engine_options() == {"pattern": "x", "ignore_case": True, "max_matches_per_file": 100}
    stats = OperationSpec.model_validate({"type": "stats", "stats": {"delimiter": "\\t"}})
    assert stats.engine_options()["delimiter"] == "\t"
    assert OperationSpec.model_validate({"type": "checksum"}).engine_options() == {"algorithm": "sha256", "decompressed": False}
    convert = OperationSpec.model_validate({"type": "convert", "convert": {"badRows": "pad"}})
    assert convert.engine_options() == {
        "to": "parquet", "compression": "zstd", "delimiter": ",", "header": True, "quote": '"', "escape": None,
        "comment": None, "skip_rows": 0, "footer_rows": 0, "encoding": "auto", "bad_rows": "pad", "max_bad_rows": 100,
        "format": "auto"}


@pytest.mark.parametrize("op", ["stats", "convert"])
def test_dialect_options_map_to_the_engine(op):
    dialect = {"delimiter": "auto", "quote": None, "escape": "\\", "comment": "#", "skipRows": 2, "headerRows": 3,
               "footerRows": 1}
    options = OperationSpec.model_validate({"type": op, op: dialect}).engine_options()
    assert {k: options.get(k) for k in ("delimiter", "quote", "escape", "comment", "skip_rows", "header_rows",
                                        "footer_rows", "header")} == {
        "delimiter": "auto", "quote": "", "escape": "\\", "comment": "#", "skip_rows": 2, "header_rows": 3,
        "footer_rows": 1, "header": None}
    if op == "convert":
        options["output_dir"] = "/out"
    pravah_engine.check_options(op, json.dumps(options))
    sniffed = OperationSpec.model_validate({"type": op, op: {"quote": "auto", "headerRows": "auto"}}).engine_options()
    pravah_engine.check_options(op, json.dumps({**sniffed, "output_dir": "/out"} if op == "convert" else sniffed))


@pytest.mark.parametrize(("dialect", "message"), [
    ({"quote": ";", "delimiter": ";"}, "quote must differ from the delimiter"),
    ({"comment": "'", "quote": "'"}, "comment must differ from the quote"),
    ({"comment": "\n"}, "comment must not be a line end"),
    ({"header": False, "headerRows": 2}, "give headerRows or header, not both"),
    ({"escape": "ab"}, "at most 1 character"),
    ({"quote": "ab"}, "must be a single byte, or empty for none"),
    ({"delimiter": "ab"}, "delimiter must be a single byte"),
    ({"skipRows": -1}, "greater than or equal to 0"),
    ({"footerRows": pravah_engine.MAX_TRIMMED_LINES + 1}, "less than or equal to"),
    ({"headerRows": pravah_engine.MAX_HEADER_ROWS + 1}, "headerRows must be between 0 and"),
    ({"headerRows": "some"}, "headerRows"),
])
@pytest.mark.parametrize("op", ["stats", "convert"])
def test_bad_dialect_options_are_refused(op, dialect, message):
    with pytest.raises(ValidationError, match=message):
        OperationSpec.model_validate({"type": op, op: dialect})


@pytest.mark.parametrize("op", ["stats", "convert"])
def test_every_csv_option_is_one_the_engine_accepts(op):
    """The spec's names, mapped, are the engine's: it refuses any key it does not know."""
    options = OperationSpec.model_validate({"type": op, op: {"badRows": "truncate", "maxBadRows": 0}}).engine_options()
    if op == "convert":
        options["output_dir"] = "/out"
    pravah_engine.check_options(op, json.dumps(options))
    with pytest.raises(ValidationError):
        OperationSpec.model_validate({"type": op, op: {"maxBadRows": pravah_engine.MAX_BAD_ROWS + 1}})


def test_options_for_another_operation_are_refused():
    with pytest.raises(ValidationError, match="operation type is 'count'"):
        OperationSpec.model_validate({"type": "count", "grep": {"pattern": "x"}})


# Volume paths: the same lists drive the CRD tests (tests/unit/test_crd.py).
INSIDE_VOLUME = ["", "data", "data/sales/", "./data", ".", ".hidden/x", "a..b", "...", "..x/y", "a//b"]
OUTSIDE_VOLUME = ["/etc", "/", "..", "../x", "a/..", "a/../b", "./..", "../../../../proc/self/environ"]


@pytest.mark.parametrize("where", ["source", "output"])
@pytest.mark.parametrize("path", OUTSIDE_VOLUME)
def test_volume_paths_that_leave_the_volume_are_refused(where, path):
    spec = {**VALID, where: {"volume": {"claimName": "data", "path": path}}}
    assert errors_of(spec) == [
        f"spec.{where}.volume.path: Value error, must be a relative path inside the volume, without '..' segments"]


@pytest.mark.parametrize("path", INSIDE_VOLUME)
def test_volume_paths_inside_the_volume_are_accepted(path):
    spec = PravahJobSpec.model_validate({**VALID, "source": {"volume": {"path": path}},
                                         "output": {"volume": {"path": path}}})
    assert spec.source.volume.path == spec.output.volume.path == path


# Python's `re` compiles these, the engine's regex crate refuses them: the spec must refuse them
# at admission, in the regex crate's words, instead of the runner failing on them.
ENGINE_REFUSES = [
    ("ERROR(?= timeout)", "look-around, including look-ahead and look-behind, is not supported"),
    ("(?<=user=)\\w+", "look-around, including look-ahead and look-behind, is not supported"),
    ("^(?!#)", "look-around, including look-ahead and look-behind, is not supported"),
    ("(ab)\\1", "backreferences are not supported"),
]


def grep_errors(**options) -> list[str]:
    return errors_of({**VALID, "operation": {"type": "grep", "grep": options}})


@pytest.mark.parametrize(("pattern", "says"), ENGINE_REFUSES)
def test_patterns_the_engine_cannot_run_are_refused_naming_the_field(pattern, says):
    re.compile(pattern)
    errors = grep_errors(pattern=pattern)
    assert len(errors) == 1 and errors[0].startswith("spec.operation.grep.pattern: "), errors
    assert says in errors[0]


@pytest.mark.parametrize("pattern", ["\\p{Greek}+", "(?<key>\\w+)=\\d+", "done\\z"])
def test_engine_only_syntax_is_accepted(pattern):
    with pytest.raises(re.error):
        re.compile(pattern)
    grep = OperationSpec.model_validate({"type": "grep", "grep": {"pattern": pattern, "ignoreCase": True}})
    assert grep.engine_options()["pattern"] == pattern


def test_max_matches_per_file_has_the_engine_bound():
    bound = pravah_engine.MAX_MATCHES_PER_FILE
    grep = OperationSpec.model_validate({"type": "grep", "grep": {"pattern": "x", "maxMatchesPerFile": bound}})
    pravah_engine.check_options("grep", json.dumps(grep.engine_options()))
    errors = grep_errors(pattern="x", maxMatchesPerFile=bound + 1)
    assert errors == [f"spec.operation.grep.maxMatchesPerFile: Input should be less than or equal to {bound}"]


@pytest.mark.parametrize("op", ["stats", "convert"])
def test_header_rows_beside_the_crd_default_header_is_accepted(op):
    """The API server stores `header: true` (the CRD's default) on every job: a job giving
    headerRows must still be read with its header rows."""
    stored = OperationSpec.model_validate({"type": op, op: {"header": True, "headerRows": 2}})
    options = stored.engine_options()
    assert options["header_rows"] == 2 and "header" not in options
