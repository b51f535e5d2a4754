"""Operator settings: one class, read from PRAVAH_* environment variables."""

from __future__ import annotations

import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pravah.logs import LogSettings
from pravah.tenancy import TenancySettings


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRAVAH_")

    database_url: str = Field(description="PostgreSQL DSN for the operator (runners never get it).",
                              examples=["postgresql://pravah:PASSWORD@db.example.internal:5432/pravah"])
    runner_image: str = Field(default="ghcr.io/pravah-io/pravah-runner:latest", description="Image of the runner pods.")
    runner_command: list[str] = Field(default=["pravah-runner"], description="Command of the runner container.")
    runner_service_account: str | None = Field(
        default="pravah-runner", description="Runners' service account in the job's namespace; empty = `default`.")
    runner_scratch_dir: str = Field(default="/tmp/pravah", description="Runners' local space (an emptyDir).")
    runner_batch_files: int | None = Field(
        default=None, ge=1, description="Files per stored batch in runners (the unit a retried shard resumes from).")
    max_running_per_namespace: int = Field(default=10, ge=1, description="Jobs beyond this wait in phase Queued.")
    status_interval: float = Field(default=2.0, gt=0, description="Seconds between status roll-ups.")
    retry_seconds: float = Field(
        default=5.0, gt=0,
        description="Seconds before a handler that failed (a transient API or database error) runs again.")
    cron_interval: float = Field(
        default=10.0, gt=0,
        description="Seconds between looks at each PravahCronJob's schedule (how late a run may start).")
    namespaces: list[str] = Field(default=[], description="Namespaces to watch (a JSON list); empty = cluster-wide.")
    lease_name: str = Field(default="pravah-operator", description="The leader-election Lease.")
    lease_namespace: str = Field(default="pravah-system", description="Where that Lease lives.")
    lease_seconds: int = Field(default=15, ge=5, description="Lease duration: a failover takes about this long.")
    identity: str = Field(default_factory=socket.gethostname,
                          description="This replica's name in the Lease; unset = the host (pod) name.")
    metrics_port: int = Field(default=8080, ge=0, description="Prometheus /metrics port; 0 disables it.")
    health_port: int = Field(default=8081, ge=0, description="Liveness /healthz port; 0 disables it.")
    report_port: int = Field(default=8082, ge=0, description="Port where runners report their shards; 0 disables it.")
    report_url: str = Field(
        default="http://pravah-operator.pravah-system.svc:8082",
        description="How runner pods reach that port (the operator's Service).")
    report_audience: str = Field(
        default="pravah.io/operator", description="Audience of the runners' projected service-account tokens.")
    report_token_seconds: int = Field(
        default=600, ge=600, le=86400, description="Lifetime of a runner's token (the kubelet renews it).")
    report_max_body_bytes: int = Field(
        default=512 << 20, ge=1 << 20, description="Largest runner report (a batch's partial and file records).")
    runner_egress_cidrs: str = Field(
        default="0.0.0.0/0",
        description="Comma-separated CIDRs where S3 endpoints named by host live (runner egress NetworkPolicy).")
    tenancy: TenancySettings = Field(
        default_factory=TenancySettings,
        description="What jobs may reach (PRAVAH_ALLOWED_S3_ENDPOINTS, from the pravah-tenancy ConfigMap).")
    log: LogSettings = Field(default_factory=LogSettings, description="How the log is written (runners write alike).")
