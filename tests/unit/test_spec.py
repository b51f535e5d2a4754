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
    assert OperationSpec.model_validate({"type": "checksum"}).engine_options() == {"algorithm": "sha256"}


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
