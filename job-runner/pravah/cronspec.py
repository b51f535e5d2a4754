"""The PravahCronJob spec: a PravahJob template run on a cron schedule, and its schedule maths.

Like a Kubernetes CronJob: `schedule` in cron syntax (five fields, or a macro such as
`@hourly`) read in `timeZone`; runs missed while the operator was away collapse into the
most recent one, which still runs only within `startingDeadlineSeconds`. The CRD schema is
generated from these models (pravah_operator.crd), and the operator validates every
PravahCronJob with them, so a bad field is named in the same words everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from pravah.spec import PravahJobSpec, SpecModel

# The macros Kubernetes CronJobs accept, as the five fields cronsim reads.
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# The shape the CRD schema checks at apply time: a macro, or five fields of cron characters.
# Whether the values are in range (minute 61) is for `parse_schedule`, run by the operator.
SCHEDULE_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"
SCHEDULE_MESSAGE = "must be five cron fields (minute hour day-of-month month day-of-week) or a macro such as @hourly"
# Past this many missed schedule times the operator warns, as the Kubernetes CronJob
# controller does: the clock or the deadline is probably wrong.
MAX_MISSED = 100
# Names of created jobs add `-` and the schedule time in minutes (8 digits until the year
# 2160); 52 characters leave them within the 63 of a label value, as Kubernetes CronJobs do.
MAX_NAME = 52
INCREMENTAL_CONFLICT = "incremental: true sets jobTemplate.spec.incremental itself; leave it and rerunOf unset there"
INCREMENTAL_NEEDS_HISTORY = "incremental: true needs successfulJobsHistoryLimit >= 1 (the baseline is kept)"
ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]


def parse_schedule(schedule: str, when: datetime, reverse: bool = False) -> CronSim:
    """The schedule's times after `when` (before it if `reverse`; exclusive either way); a
    ValueError says what is wrong with the schedule."""
    fields = MACROS.get(schedule.strip(), schedule)
    if len(fields.split()) != 5:
        raise ValueError(SCHEDULE_MESSAGE)
    try:
        return CronSim(fields, when, reverse=reverse)
    except CronSimError as exc:
        raise ValueError(f"{exc} in {schedule!r}: {SCHEDULE_MESSAGE}") from None


def zone(name: str | None) -> ZoneInfo:
    """The time zone a schedule is read in: UTC unless named."""
    return ZoneInfo(name or "UTC")


class JobTemplateMetadata(SpecModel):
    labels: dict[str, str] | None = Field(default=None, description="Labels of every created PravahJob.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations of every created PravahJob.")


class JobTemplate(SpecModel):
    metadata: JobTemplateMetadata | None = Field(default=None, description="Labels and annotations of the jobs.")
    spec: PravahJobSpec = Field(description="The spec of every created PravahJob.")


class PravahCronJobSpec(SpecModel):
    schedule: str = Field(
        max_length=256, description="When to run, in cron syntax (e.g. '30 2 * * *') or a macro (@hourly, @daily).")
    timeZone: str | None = Field(
        default=None, max_length=64, description="IANA time zone the schedule is read in, e.g. Europe/Berlin; "
                                                 "unset = UTC.")
    jobTemplate: JobTemplate = Field(description="The PravahJob to create at each scheduled time.")
    concurrencyPolicy: ConcurrencyPolicy = Field(
        default="Allow", description="When a run is due while an earlier one is unfinished: Allow runs both, "
                                     "Forbid skips the new one, Replace cancels the old one.")
    successfulJobsHistoryLimit: int = Field(default=3, ge=0, le=100, description="Succeeded jobs kept.")
    failedJobsHistoryLimit: int = Field(default=1, ge=0, le=100, description="Failed or cancelled jobs kept.")
    suspend: bool = Field(default=False, description="true creates no more jobs; running ones go on.")
    startingDeadlineSeconds: int | None = Field(
        default=None, ge=0, description="A run not started this many seconds after its time is skipped.")
    incremental: bool = Field(
        default=False, description="Each job reads only the files new or changed since the last successful one "
                                   "(spec.incremental.baseline); the first one's baseline is 'latest'.")

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, schedule: str) -> str:
        parse_schedule(schedule, datetime(2000, 1, 1, tzinfo=zone(None)))
        return schedule

    @field_validator("timeZone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        try:
            zone(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)") from None
        return name

    @model_validator(mode="after")
    def _incremental_owns_the_baseline(self) -> Self:
        template = self.jobTemplate.spec
        if self.incremental and (template.incremental is not None or template.rerunOf is not None):
            raise ValueError(INCREMENTAL_CONFLICT)
        if self.incremental and self.successfulJobsHistoryLimit < 1:
            raise ValueError(INCREMENTAL_NEEDS_HISTORY)
        return self


# -- the schedule -------------------------------------------------------------------------

@dataclass(frozen=True)
class Due:
    """The schedule as seen at one moment: the run due now, if any, and how many were missed."""

    time: datetime | None  # the most recent schedule time not run yet, within the deadline
    missed: int  # schedule times since the last run (within the deadline), counted up to MAX_MISSED + 1
    too_late: datetime | None = None  # the most recent one, when it is past the deadline


def most_recent(spec: PravahCronJobSpec, now: datetime) -> datetime:
    """The latest schedule time at or before `now` (the reverse walk is exclusive, and
    schedule times fall on whole minutes, hence the second added)."""
    start = now.astimezone(zone(spec.timeZone)).replace(microsecond=0) + timedelta(seconds=1)
    return next(parse_schedule(spec.schedule, start, reverse=True))


def count_between(spec: PravahCronJobSpec, after: datetime, until: datetime) -> int:
    """Schedule times in (after, until], counted up to MAX_MISSED + 1."""
    count = 0
    for time in parse_schedule(spec.schedule, after.astimezone(zone(spec.timeZone))):
        if time > until or count > MAX_MISSED:
            break
        count += 1
    return count


def due(spec: PravahCronJobSpec, last: datetime, now: datetime) -> Due:
    """What is due at `now` when the last run was scheduled at `last` (or the PravahCronJob
    was created then): as the Kubernetes CronJob controller decides, only the most recent
    missed time runs, and only while `startingDeadlineSeconds` have not passed since it."""
    latest = most_recent(spec, now)
    if latest <= last:
        return Due(time=None, missed=0)
    deadline = spec.startingDeadlineSeconds
    window = last if deadline is None else max(last, now - timedelta(seconds=deadline))
    if latest <= window:
        return Due(time=None, missed=0, too_late=latest)
    return Due(time=latest, missed=count_between(spec, window, now))


def next_after(spec: PravahCronJobSpec, now: datetime) -> datetime:
    """The first schedule time after `now`."""
    return next(parse_schedule(spec.schedule, now.astimezone(zone(spec.timeZone))))
