"""API settings: one class, read from PRAVAH_* environment variables (and KUBECONFIG)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pravah.logs import LogSettings
from pravah.tenancy import TenancySettings


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRAVAH_", extra="ignore")

    database_url: str = Field(description="PostgreSQL DSN (the same database as the operator's).",
                              examples=["postgresql://pravah:PASSWORD@db.example.internal:5432/pravah"])
    kubeconfig: str | None = Field(
        default=None, validation_alias=AliasChoices("PRAVAH_KUBECONFIG", "KUBECONFIG"),
        description="Kubeconfig of the service's own credential; unset = in-cluster service account.")
    api_host: str = Field(default="0.0.0.0", description="Address to listen on.")
    api_port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on.")
    api_auth_mode: Literal["kubernetes", "standalone"] = Field(
        default="kubernetes",
        description="kubernetes: TokenReview + SubjectAccessReview; standalone: users in PostgreSQL and JWTs.")
    api_jwt_secret: SecretStr | None = Field(default=None, description="HMAC key of the JWTs (standalone mode).")
    api_jwt_ttl_seconds: int = Field(default=900, ge=30, le=86400, description="Lifetime of issued tokens.")
    api_jwt_issuer: str = Field(default="pravah-api", description="Issuer (iss) of the JWTs (standalone mode).")
    api_bootstrap_admin: str | None = Field(
        default=None,
        description="USER:PASSWORD of an admin created at start when no admin exists (standalone mode).")
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest accepted request body.")
    api_default_namespace: str = Field(default="default", description="Namespace of jobs posted without one.")
    api_idempotency_hours: float = Field(default=24.0, gt=0, description="How long an Idempotency-Key is honoured.")
    api_page_size: int = Field(default=50, ge=1, le=1000, description="Default page size of GET /jobs.")
    api_max_page_size: int = Field(default=500, ge=1, le=5000, description="Largest page size a caller may ask for.")
    api_inline_result_bytes: int = Field(
        default=8 * 1_048_576, ge=0,
        description="Results up to this size come from PostgreSQL; larger ones are streamed from storage.")
    api_events_interval: float = Field(default=1.0, gt=0, description="Seconds between progress checks (SSE).")
    api_events_heartbeat: float = Field(default=15.0, gt=0, description="Seconds between SSE keep-alives.")
    api_auth_cache_seconds: float = Field(
        default=10.0, ge=0, description="How long TokenReview and SubjectAccessReview answers are reused.")
    api_kube_timeout: float = Field(default=10.0, gt=0, description="Timeout of one Kubernetes API call.")
    api_database_pool_size: int = Field(default=10, ge=1, le=100, description="PostgreSQL connections held at most.")
    api_kube_pool_size: int = Field(default=64, ge=1, le=1000,
                                    description="Connections to the Kubernetes API server held at once.")
    api_docs_title: str = Field(default="Pravah API", description="Title of /docs and of the OpenAPI document.")
    api_hash_concurrency: int = Field(
        default=2, ge=1, le=64,
        description="Password hashes computed at once (standalone mode). Each takes argon2's memory cost "
                    "(64 MiB by default), so this bounds the memory that parallel logins can use.")
    api_login_user_failures: int = Field(
        default=5, ge=1, description="Failed logins of one user name per window; then 429 (standalone mode).")
    api_login_address_failures: int = Field(
        default=20, ge=1,
        description="Failed logins from one client address per window; then 429 (standalone mode). Behind a "
                    "proxy every caller shares the proxy's address.")
    api_login_window_seconds: int = Field(
        default=300, ge=1, le=86400, description="The window of the failed-login limits (a moving window).")
    api_events_max_streams: int = Field(
        default=5, ge=1, le=1000,
        description="Event streams one caller may hold open at once; more are answered 429.")
    api_events_recheck_seconds: float = Field(
        default=15.0, gt=0,
        description="How often an open event stream re-checks the caller's token and access (ends when gone).")
    api_events_max_seconds: float = Field(
        default=1800.0, gt=0,
        description="Longest life of one event stream: it then ends with a `reconnect` event.")
    api_logs_max_bytes: int = Field(
        default=1_048_576, ge=1024,
        description="Bytes of log served per pod (or archived runner log); a longer log is cut and marked.")
    api_ui: bool = Field(default=True, description="Serve the web dashboard at /ui/.")
    api_ui_dir: Path | None = Field(
        default=None, description="The built dashboard served at /ui/; by default the files packaged with the API.")
    tenancy: TenancySettings = Field(
        default_factory=TenancySettings,
        description="What jobs may reach (PRAVAH_ALLOWED_S3_ENDPOINTS): results are fetched only from there.")
    log: LogSettings = Field(default_factory=LogSettings, description="How the log is written.")
