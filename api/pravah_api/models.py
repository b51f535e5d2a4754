"""Request and response bodies of the REST API, as pydantic models.

The OpenAPI document is generated from these models (see openapi.py); the PravahJob spec
and status are the very models the CRD is generated from, so REST, kubectl and GitOps see
one contract.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pravah.spec import DNS_LABEL, DNS_SUBDOMAIN, PravahJobSpec
from pravah_operator.status import Errors, Phase, Progress, PravahJobStatus, Shards

DATE_TIME = {"format": "date-time"}
USERNAME = r"^[a-z0-9]([-a-z0-9_.@]*[a-z0-9])?$"
Role = Literal["viewer", "submitter", "admin"]
Namespace = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- errors -------------------------------------------------------------------------------

class ErrorDetail(ApiModel):
    code: str = Field(description="Machine-readable kind, e.g. validation_failed or not_found.")
    message: str = Field(description="What went wrong, for people.")
    field: str | None = Field(description="Dotted path of the offending field, when one is to blame.")


class ErrorResponse(ApiModel):
    """The one error shape of every endpoint."""

    error: ErrorDetail


# -- jobs ---------------------------------------------------------------------------------

class JobCreate(PravahJobSpec):
    """A PravahJob spec, plus where to create it and under which name."""

    name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        description="metadata.name of the PravahJob; generated (job-xxxxx) when left out.")
    namespace: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=DNS_LABEL,
        description="Namespace of the PravahJob; the service's default namespace when left out.")


class JobRerun(ApiModel):
    """Options of a re-run."""

    name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        description="metadata.name of the new PravahJob; the job's name + -rerun- + 5 characters when left out.")


class JobLinks(ApiModel):
    self: str
    results: str
    events: str
    logs: str


class Timings(ApiModel):
    createdAt: str | None = Field(default=None, json_schema_extra=DATE_TIME)
    startedAt: str | None = Field(default=None, json_schema_extra=DATE_TIME)
    completedAt: str | None = Field(default=None, json_schema_extra=DATE_TIME)
    durationSeconds: float | None = Field(default=None, ge=0, description="Run time so far, or in total.")


class JobSummary(ApiModel):
    id: str = Field(description="The job's id: the PravahJob's metadata.uid.", json_schema_extra={"format": "uuid"})
    name: str
    namespace: str
    phase: Phase | None = Field(default=None, description="None until the operator has seen the job.")
    percent: int | None = Field(default=None, ge=0, le=100)
    shards: Shards | None = None
    errorCount: int = Field(default=0, ge=0, description="Files that failed so far.")
    createdAt: str | None = Field(default=None, json_schema_extra=DATE_TIME)
    links: JobLinks


class Job(JobSummary):
    spec: PravahJobSpec
    status: PravahJobStatus | None = None
    progress: Progress | None = None
    shards: Shards | None = None
    errors: Errors | None = None
    timings: Timings
    resultUri: str | None = None


class JobList(ApiModel):
    items: list[JobSummary]
    next: str | None = Field(default=None, description="Pass as ?continue= for the next page; None on the last.")


class LogEntry(ApiModel):
    shard: int | None = None
    pod: str
    log: str
    truncated: bool = Field(default=False, description="The log is longer than maxBytes: only its start is here.")
    createdAt: str | None = Field(default=None, json_schema_extra=DATE_TIME)


class JobLogs(ApiModel):
    source: Literal["pods", "archive", "none"] = Field(
        description="pods: read from the running pods; archive: kept in PostgreSQL after the pods ran.")
    maxBytes: int = Field(description="The most bytes of log served per entry; longer logs are cut there.")
    total: int = Field(ge=0, description="Entries in all pages (one per pod, or per archived pod log).")
    entries: list[LogEntry]


class FileError(ApiModel):
    path: str = Field(description="The file, as the runner read it.")
    line: int | None = Field(default=None, description="Line of the file, when known.")
    reason: str
    shard: int


class JobErrors(ApiModel):
    total: int = Field(ge=0, description="Files that failed, in all pages.")
    items: list[FileError]


class ShardProgress(ApiModel):
    shard: int = Field(ge=0, description="The shard (the runner pod's completion index).")
    filesTotal: int = Field(ge=0)
    filesDone: int = Field(ge=0, description="Files recorded done, failed ones included.")
    bytesTotal: int = Field(ge=0)
    bytesDone: int = Field(ge=0)
    errors: int = Field(ge=0, description="Files of the shard that failed.")


class JobShards(ApiModel):
    items: list[ShardProgress] = Field(description="One per shard; empty until the job's file list is stored.")


class HistoryEntry(ApiModel):
    time: str | None = Field(json_schema_extra=DATE_TIME)
    kind: Literal["condition", "event"]
    type: str = Field(description="The condition type, or the Event type (Normal, Warning).")
    status: str | None = Field(default=None, description="A condition's status: True, False or Unknown.")
    reason: str
    message: str
    count: int | None = Field(default=None, description="How often the Event was posted.")


class JobHistory(ApiModel):
    items: list[HistoryEntry]


class JobResult(ApiModel):
    """The merged result document (its shape depends on the operation)."""

    model_config = ConfigDict(extra="allow")


# -- configuration ------------------------------------------------------------------------

class OperationInfo(ApiModel):
    type: str
    description: str
    options: dict[str, Any] | None = Field(description="JSON Schema of the operation's options block.")
    defaults: dict[str, Any] = Field(description="The options used when the block is left out.")


class Range(ApiModel):
    minimum: int
    maximum: int


class Limits(ApiModel):
    maxGlobs: int
    maxGlobLength: int
    parallelism: Range
    cpuPerRunner: Range
    maxRetriesPerShard: Range
    maxBodyBytes: int
    maxPageSize: int
    tokenTtlSeconds: int | None = None


class ConfigInfo(ApiModel):
    apiVersion: str
    kind: str
    authMode: Literal["kubernetes", "standalone"]
    operations: list[OperationInfo]
    spec: dict[str, Any] = Field(description="JSON Schema of the whole spec (the body of POST /jobs).")
    defaults: dict[str, Any] = Field(description="Spec defaults.")
    limits: Limits


# -- health -------------------------------------------------------------------------------

class Health(ApiModel):
    status: Literal["ok"]


class Check(ApiModel):
    """Whether one dependency answers (nothing more: readiness is public)."""

    ok: bool


class Readiness(ApiModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Check]


# -- auth and users -----------------------------------------------------------------------

class TokenRequest(ApiModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(ApiModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(ge=0, description="Seconds until the token expires.")


class WhoAmI(ApiModel):
    name: str
    groups: list[str]
    mode: Literal["kubernetes", "standalone"]
    role: Role | None = None
    namespaces: list[str] | None = None


class UserCreate(ApiModel):
    username: str = Field(min_length=1, max_length=128, pattern=USERNAME)
    password: str = Field(min_length=8, max_length=1024)
    role: Role
    namespaces: list[Namespace] = Field(
        default_factory=list, max_length=256, description="Namespaces the user may act in (admins act in all).")


class UserUpdate(ApiModel):
    password: str | None = Field(default=None, min_length=8, max_length=1024,
                                 description="A new password; the user's earlier tokens stop working.")
    role: Role | None = None
    namespaces: list[Namespace] | None = Field(default=None, max_length=256)
    disabled: bool | None = Field(
        default=None, description="True: the user can neither log in nor use a token, and its earlier tokens "
                                  "stay revoked when it is enabled again (false).")


class User(ApiModel):
    username: str
    role: Role
    namespaces: list[str]
    disabled: bool
    createdAt: str = Field(json_schema_extra=DATE_TIME)
    updatedAt: str = Field(json_schema_extra=DATE_TIME)


class UserList(ApiModel):
    items: list[User]
