"""The PravahJob status: what the operator writes and what `kubectl get pravahjobs` shows.

The CRD's status schema is generated from `PravahJobStatus`, so the operator builds a
`PravahJobStatus` and patches `status.model_dump(exclude_none=True)`; anything the schema
does not know would be pruned by the API server.

The status stays small (etcd objects are capped near 1.5 MB): counts, rates, the first few
errors and a result summary. Per-file records live in PostgreSQL and the output storage.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Literal, Mapping, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Phase = Literal["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled"]
PHASES: tuple[str, ...] = ("Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled")
TERMINAL_PHASES: tuple[str, ...] = ("Succeeded", "Failed", "Cancelled")
ConditionStatus = Literal["True", "False", "Unknown"]

MAX_ERROR_SAMPLES = 10
MAX_SHARD_FAILURES = 10
MAX_CONDITIONS = 16
MAX_REASON_CHARS = 512
MAX_ACTIVE = 100

TIMESTAMP = {"format": "date-time"}


class StatusModel(BaseModel):
    """Base for every status part: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Shards(StatusModel):
    total: int | None = Field(default=None, ge=0, description="Shards (runner pods) of the job.")
    active: int | None = Field(default=None, ge=0, description="Shards running now.")
    succeeded: int | None = Field(default=None, ge=0, description="Shards finished successfully.")
    failed: int | None = Field(default=None, ge=0, description="Shards failed after their retries.")
    ready: str | None = Field(
        default=None, description="Finished shards out of all, e.g. 2/4 (filled in from the counts)."
    )

    @model_validator(mode="after")
    def _fill_ready(self) -> Self:
        if self.ready is None and self.total is not None:
            self.ready = fraction(self.succeeded or 0, self.total)
        return self


class Progress(StatusModel):
    filesTotal: int | None = Field(default=None, ge=0, description="Files selected for the job.")
    filesDone: int | None = Field(default=None, ge=0, description="Files processed (including failed files).")
    bytesTotal: int | None = Field(default=None, ge=0, description="Bytes of the selected files.")
    bytesDone: int | None = Field(default=None, ge=0, description="Bytes processed.")
    percent: int | None = Field(
        default=None, ge=0, le=100, description="Progress in percent, by bytes (by files when sizes are unknown)."
    )
    bytesPerSecond: int | None = Field(default=None, ge=0, description="Current processing rate.")
    files: str | None = Field(default=None, description="Files done out of all, e.g. 120/400.")
    throughput: str | None = Field(default=None, description="Current rate for people, e.g. 12.3 MB/s.")

    @model_validator(mode="after")
    def _fill_derived(self) -> Self:
        if self.percent is None:
            if self.bytesTotal:
                self.percent = percent(self.bytesDone or 0, self.bytesTotal)
            elif self.filesTotal:
                self.percent = percent(self.filesDone or 0, self.filesTotal)
        if self.files is None and self.filesTotal is not None:
            self.files = fraction(self.filesDone or 0, self.filesTotal)
        if self.throughput is None and self.bytesPerSecond is not None:
            self.throughput = human_rate(self.bytesPerSecond)
        return self


class ErrorSample(StatusModel):
    path: str = Field(description="File that failed, relative to the source.")
    reason: str = Field(description="Why it failed.")
    line: int | None = Field(default=None, ge=0, description="Line of the file, when known.")


class Errors(StatusModel):
    count: int = Field(default=0, ge=0, description="Files that failed.")
    samples: list[ErrorSample] = Field(
        default_factory=list,
        max_length=MAX_ERROR_SAMPLES,
        description=f"The first {MAX_ERROR_SAMPLES} failures; all of them are kept in the job's records.",
    )


class ShardFailure(StatusModel):
    """A runner pod that ended in failure (its shard was retried or, past its retries, failed the job)."""

    shard: int = Field(ge=0, description="The shard (completion index) the pod ran.")
    pod: str = Field(description="The runner pod.")
    reason: str = Field(description="Why its container ended, as the kubelet says: OOMKilled, Error, ...")
    exitCode: int | None = Field(default=None, description="The container's exit code.")
    message: str = Field(default="", description="Details for people.")


class Reuse(StatusModel):
    """What a re-run or an incremental run took over from the job it builds on."""

    mode: Literal["rerun", "incremental"] = Field(description="rerun (spec.rerunOf) or incremental.")
    of: str | None = Field(default=None, description="The job built on (none: an incremental run without a baseline).")
    reused: int = Field(default=0, ge=0, description="Files whose partials were taken over instead of read.")
    new: int | None = Field(default=None, ge=0, description="Files not in the baseline, read.")
    changed: int | None = Field(default=None, ge=0, description="Files whose size or version changed, read again.")
    retried: int | None = Field(default=None, ge=0, description="Files that failed in the baseline, read again.")
    removed: int | None = Field(default=None, ge=0, description="Baseline files no longer in the source.")
    rerun: int | None = Field(default=None, ge=0, description="Files that failed or never finished, read again.")
    gone: int | None = Field(default=None, ge=0, description="Files to re-run that are no longer in the source.")
    bytes_read: int = Field(default=0, ge=0, description="Bytes this job read itself.")


class Result(StatusModel):
    uri: str | None = Field(default=None, description="Where the full result is, e.g. s3://results/job/result.json.")
    summary: dict[str, Any] | None = Field(default=None, description="A small summary of the result.")
    reuse: Reuse | None = Field(default=None, description="What a re-run or incremental run reused and read.")


class Condition(StatusModel):
    """A condition in the Kubernetes convention (as metav1.Condition)."""

    type: str = Field(description="Condition type, e.g. Complete or Failed.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word saying why.")
    message: str = Field(default="", description="Details for people.")
    observedGeneration: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set for."
    )
    lastTransitionTime: str = Field(
        description="When the status last changed (RFC 3339).", json_schema_extra=TIMESTAMP
    )


class ObjectStatus(StatusModel):
    """What every Pravah resource's status has: conditions, a message, the generation seen."""

    observedGeneration: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status describes."
    )
    message: str | None = Field(default=None, description="Details for people.")
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=MAX_CONDITIONS,
        description="Conditions in the Kubernetes convention (Complete, Failed, Ready, ...).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )

    def patch(self) -> dict[str, Any]:
        """The status as a merge patch body: camelCase, unset fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


class PravahJobStatus(ObjectStatus):
    phase: Phase | None = Field(default=None, description="Pending, Queued, Running, Succeeded, Failed or Cancelled.")
    startTime: str | None = Field(
        default=None, description="When the job started running (RFC 3339).", json_schema_extra=TIMESTAMP
    )
    completionTime: str | None = Field(
        default=None, description="When the job finished (RFC 3339).", json_schema_extra=TIMESTAMP
    )
    shards: Shards | None = Field(default=None, description="Runner pods of the job.")
    progress: Progress | None = Field(default=None, description="Files and bytes processed so far.")
    errors: Errors | None = Field(default=None, description="Files that failed.")
    result: Result | None = Field(default=None, description="The merged result.")
    shardFailures: list[ShardFailure] | None = Field(
        default=None, max_length=MAX_SHARD_FAILURES,
        description=f"The first {MAX_SHARD_FAILURES} runner pods that failed (OOMKilled, killed, crashed).")
    reason: str | None = Field(default=None, description="One CamelCase word saying why the job is in its phase.")
    threads: int | None = Field(default=None, ge=1, description="Engine threads per runner.")
    cpuPerRunner: int | None = Field(default=None, ge=1, description="Whole cores requested per runner pod.")
    jobName: str | None = Field(default=None, description="The Kubernetes Job running the shards.")


class PravahCronJobStatus(ObjectStatus):
    """What a PravahCronJob has scheduled; its jobs carry their own status."""

    lastScheduleTime: str | None = Field(
        default=None, description="The schedule time of the last job created (RFC 3339).", json_schema_extra=TIMESTAMP)
    lastSuccessfulTime: str | None = Field(
        default=None, description="When the last successful job finished (RFC 3339).", json_schema_extra=TIMESTAMP)
    lastJob: str | None = Field(default=None, description="The PravahJob created last.")
    lastSuccessfulJob: str | None = Field(
        default=None, description="The PravahJob that succeeded last: the baseline of the next incremental run.")
    active: list[str] | None = Field(
        default=None, max_length=MAX_ACTIVE, description="Its PravahJobs that have not finished.")
    activeCount: int | None = Field(
        default=None, ge=0, description="How many there are (filled in from the list, for the printer column).")

    @model_validator(mode="after")
    def _count_active(self) -> Self:
        if self.active is not None:
            self.activeCount = len(self.active)
        return self


# -- helpers ------------------------------------------------------------------------------

def now_rfc3339(now: datetime | None = None) -> str:
    """`now` (default: the current time) as an RFC 3339 UTC timestamp with second precision."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_rate(bytes_per_s: float) -> str:
    """A rate for people, in decimal units: 512 B/s, 12.3 MB/s, 1.5 GB/s."""
    value = max(float(bytes_per_s), 0.0)
    if value < 1000:
        return f"{value:.0f} B/s"
    for unit in ("kB/s", "MB/s", "GB/s", "TB/s"):
        value /= 1000
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} PB/s"


def fraction(done: int, total: int) -> str:
    """'done/total', as in the printer columns: fraction(120, 400) == '120/400'."""
    return f"{done}/{total}"


def percent(done: int, total: int) -> int:
    """Whole percent done, rounded down and kept in 0..100 (0 when total is 0)."""
    if total <= 0:
        return 0
    return max(0, min(100, (done * 100) // total))


def error_sample(path: str, reason: str, line: int | None = None) -> ErrorSample:
    """An error sample with the reason cut to a size that keeps the status small."""
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    return ErrorSample(path=path, reason=reason, line=line)


def condition(
    type: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str = "",
    generation: int | None = None,
    previous_conditions: Iterable[Mapping[str, Any]] | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """A condition dict; keeps the previous lastTransitionTime when the status is unchanged."""
    if isinstance(status, bool):
        status = "True" if status else "False"
    transition = now or now_rfc3339()
    for old in previous_conditions or ():
        if old.get("type") == type and old.get("status") == status and old.get("lastTransitionTime"):
            transition = old["lastTransitionTime"]
            break
    return Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        observedGeneration=generation,
        lastTransitionTime=transition,
    ).model_dump(exclude_none=True)


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None, new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The conditions with `new` replacing the one of the same type (appended if absent)."""
    result: list[dict[str, Any]] = []
    replaced = False
    for old in conditions or ():
        if old.get("type") == new["type"]:
            result.append(dict(new))
            replaced = True
        else:
            result.append(dict(old))
    if not replaced:
        result.append(dict(new))
    return result
