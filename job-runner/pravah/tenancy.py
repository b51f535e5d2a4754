"""Which S3 endpoints a PravahJob may name: one setting, read by the operator, the API and
the admission policy alike.

`PRAVAH_ALLOWED_S3_ENDPOINTS` is a comma-separated list of endpoint URLs (scheme, host and
port, as written in `spec.*.s3.endpoint`). It lives in the `pravah-tenancy` ConfigMap of
`pravah-system`: the operator and the API read it from their environment, and the
ValidatingAdmissionPolicy `pravah-tenancy` reads the same ConfigMap as its parameter, so a
job naming any other host is refused by `kubectl apply` before anything fetches from it.
A job that leaves `endpoint` out uses the SDK's default (AWS) endpoint, which is allowed.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENDPOINTS_SETTING = "PRAVAH_ALLOWED_S3_ENDPOINTS"


def normalize_endpoint(endpoint: str) -> str:
    """The form endpoints are compared in: no surrounding blanks, no trailing slash."""
    return endpoint.strip().rstrip("/")


def parse_endpoints(value: str) -> tuple[str, ...]:
    return tuple(normalize_endpoint(item) for item in value.split(",") if item.strip())


class TenancySettings(BaseSettings):
    """What tenants may reach; shared by the operator and the API."""

    model_config = SettingsConfigDict(env_prefix="PRAVAH_", extra="ignore")

    allowed_s3_endpoints: str = Field(
        default="",
        description="Comma-separated S3 endpoint URLs that jobs may name (spec.*.s3.endpoint); "
                    "empty = only the default (AWS) endpoint.")

    @property
    def endpoints(self) -> tuple[str, ...]:
        return parse_endpoints(self.allowed_s3_endpoints)

    def endpoint_allowed(self, endpoint: str | None) -> bool:
        return endpoint is None or normalize_endpoint(endpoint) in self.endpoints
