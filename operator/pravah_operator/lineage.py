"""The finished job a re-run or an incremental run builds on, and whether it may.

Both merge partials of another PravahJob of the namespace into their result, so that job
must compute the same thing: the same source, symbolic-link policy and operation. The file
set may differ (that is the point). A job that does not fit is refused, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pravah.spec import COMPUTED_FIELDS, LATEST, PravahJobSpec
from pravah_operator.crd import GROUP, PLURAL, VERSION
from pravah_operator.status import TERMINAL_PHASES


class Refused(Exception):
    """The job names an earlier job it cannot build on; the message names the field."""

    def __init__(self, reason: str, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Lineage:
    mode: str  # "rerun" or "incremental"
    uid: str | None  # None: an incremental run without a baseline yet


def first_difference(mine: Any, theirs: Any, where: str) -> tuple[str, Any, Any] | None:
    """The first field (dotted path) at which two dumped specs differ, with both values."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for key in sorted(set(mine) | set(theirs)):
            found = first_difference(mine.get(key), theirs.get(key), f"{where}.{key}")
            if found:
                return found
        return None
    return None if mine == theirs else (where, mine, theirs)


def difference(spec: PravahJobSpec, earlier: PravahJobSpec) -> tuple[str, Any, Any] | None:
    mine, theirs = spec.model_dump(mode="json"), earlier.model_dump(mode="json")
    for field in COMPUTED_FIELDS:
        found = first_difference(mine[field], theirs[field], f"spec.{field}")
        if found:
            return found
    return None


def named_earlier(spec: PravahJobSpec) -> tuple[str, str, str] | None:
    """The earlier job a spec names, with the reason and the field of a refusal: (name, reason, field)."""
    if spec.rerunOf is not None:
        return spec.rerunOf, "InvalidRerun", "spec.rerunOf"
    if spec.incremental is not None and spec.incremental.baseline != LATEST:
        return spec.incremental.baseline, "InvalidBaseline", "spec.incremental.baseline"
    return None


async def resolve(spec: PravahJobSpec, namespace: str, uid: str, ctx: Any) -> Lineage | None:
    """The job this one builds on, or None for a job of its own; Refused when it cannot.
    `ctx` is the operator's handler context (its `custom` API client)."""
    mode = "rerun" if spec.rerunOf is not None else "incremental"
    named = named_earlier(spec)
    if named is not None:
        earlier = await read(ctx, namespace, *named)
        check(spec, earlier)
        return Lineage(mode, earlier["metadata"]["uid"])
    if spec.incremental is None:
        return None
    listing = await ctx.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    candidates = [item for item in listing["items"] if item["metadata"]["uid"] != uid
                  and (item.get("status") or {}).get("phase") == "Succeeded" and computes_the_same(spec, item)]
    newest = max(candidates, key=lambda item: item["status"].get("completionTime") or "", default=None)
    return Lineage(mode, newest["metadata"]["uid"] if newest else None)


def check(spec: PravahJobSpec, earlier: dict[str, Any]) -> None:
    """Whether `spec` may build on the job `earlier` (as stored) that it names; Refused if not.
    The operator checks this at admission, the REST API when the job is created."""
    name, reason, field = named_earlier(spec)
    earlier_spec = earlier.get("spec") or {}
    if spec.rerunOf is not None and earlier_spec.get("rerunOf"):
        # Its result already holds the original's partials; a re-run merges one job's.
        raise Refused(reason, field, f"job {name} is itself a re-run of {earlier_spec['rerunOf']}: "
                                     f"re-run {earlier_spec['rerunOf']} instead")
    if spec.incremental is not None and not earlier_spec.get("incremental"):
        raise Refused(reason, field, f"job {name} kept no per-file partials: only a job with "
                                     "spec.incremental set can be a baseline")
    fits(spec, earlier, reason, field)


async def read(ctx: Any, namespace: str, name: str, reason: str, field: str) -> dict[str, Any]:
    """The earlier job, finished (listed by name: the operator lists PravahJobs, it does not get them)."""
    found = (await ctx.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, field_selector=f"metadata.name={name}"))["items"]
    if not found:
        raise Refused(reason, field, f"there is no PravahJob {name} in namespace {namespace}")
    earlier = found[0]
    phase = (earlier.get("status") or {}).get("phase")
    if phase not in TERMINAL_PHASES:
        raise Refused(reason, field, f"job {name} is {phase or 'Pending'}; only a finished job can be built on")
    return earlier


def fits(spec: PravahJobSpec, earlier: dict[str, Any], reason: str, field: str) -> None:
    name = earlier["metadata"]["name"]
    try:
        earlier_spec = PravahJobSpec.model_validate(earlier["spec"])
    except ValidationError:
        raise Refused(reason, field, f"job {name} has an invalid spec") from None
    found = difference(spec, earlier_spec)
    if found:
        where, mine, theirs = found
        raise Refused(reason, where, f"is {mine!r} here but {theirs!r} in job {name}: a job that builds on "
                                     f"another must compute the same (only the file set may differ)")


def computes_the_same(spec: PravahJobSpec, item: dict[str, Any]) -> bool:
    """An incremental job that computes what `spec` does (a candidate for 'latest')."""
    try:
        earlier = PravahJobSpec.model_validate(item["spec"])
    except ValidationError:
        return False
    return earlier.incremental is not None and difference(spec, earlier) is None
