"""The Kubernetes side of the API: PravahJobs, their pods, and the review APIs.

Everything goes through kubernetes_asyncio, so the event loop never blocks. A `Kube` holds
one credential: the service's own (a kubeconfig or the in-cluster service account) for the
reviews, the namespace list and the pods, or, from `Kube.as_caller`, a caller's bearer
token on the same connection settings, with which the API touches PravahJobs and reads
Secrets in kubernetes auth mode (see jobs.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from pravah_api.settings import ApiSettings
from pravah_operator.planning import COMPLETION_INDEX, JOB_LABEL

GROUP, VERSION, PLURAL, KIND = "pravah.io", "v1alpha1", "pravahjobs", "PravahJob"
API_VERSION = f"{GROUP}/{VERSION}"
CREATED_BY_LABEL = "pravah.io/created-by"


async def api_client(settings: ApiSettings) -> client.ApiClient:
    configuration = client.Configuration()
    if settings.kubeconfig:
        await config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = settings.api_kube_pool_size
    return client.ApiClient(configuration)


# What a connection to the API server is, apart from its credential.
CALLER_POOL_SIZE = 4
CONNECTION_SETTINGS = ("ssl_ca_cert", "verify_ssl", "assert_hostname", "tls_server_name", "proxy", "proxy_headers",
                       "disable_strict_ssl_verification")


def caller_configuration(service: client.Configuration, token: str) -> client.Configuration:
    """The service's API server address and TLS trust with `token` as the only credential
    (no client certificate, no token refresh hook of the service's own)."""
    configuration = client.Configuration(host=service.host, api_key={"BearerToken": token},
                                         api_key_prefix={"BearerToken": "Bearer"})
    for name in CONNECTION_SETTINGS:
        setattr(configuration, name, getattr(service, name))
    configuration.connection_pool_maxsize = CALLER_POOL_SIZE
    return configuration


BUSY_RETRIES = 5


async def patiently(call, *args: Any, **kwargs: Any) -> Any:
    """Call the API, waiting out 429 answers (e.g. "storage is (re)initializing" just after a
    CRD is installed, or API Priority and Fairness pushing back) a few times."""
    for attempt in range(BUSY_RETRIES):
        try:
            return await call(*args, **kwargs)
        except ApiException as exc:
            if exc.status != 429 or attempt == BUSY_RETRIES - 1:
                raise
            retry_after = (exc.headers or {}).get("Retry-After", "1")
            await asyncio.sleep(min(float(retry_after) if retry_after.isdigit() else 1.0, 2.0) * (attempt + 1) / 2)
    raise AssertionError("unreachable")


class Kube:
    def __init__(self, api: client.ApiClient, timeout: float):
        self.api = api
        self.timeout = timeout
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.version = client.VersionApi(api)

    def as_caller(self, token: str) -> Kube:
        """A client on the same API server that presents the caller's bearer token, so the
        API server authorizes, admits and audits the caller; close it after use."""
        return Kube(client.ApiClient(caller_configuration(self.api.configuration, token)), self.timeout)

    async def close(self) -> None:
        await self.api.close()

    def plain(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)

    # -- PravahJobs ------------------------------------------------------------------------

    async def create_job(self, namespace: str, name: str | None, spec: dict[str, Any],
                         labels: dict[str, str] | None = None,
                         annotations: dict[str, str] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"namespace": namespace, "labels": labels or {}, "annotations": annotations or {}}
        if name:
            metadata["name"] = name
        else:
            metadata["generateName"] = "job-"
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
        return await patiently(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, body,
            _request_timeout=self.timeout)

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await patiently(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
                _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list_jobs(self, namespace: str | None, limit: int,
                        resume: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page (at most `limit` jobs, in the API server's order: namespace, then name)
        and the `continue` token of the next one (None on the last)."""
        options: dict[str, Any] = {"limit": limit, "_request_timeout": self.timeout}
        if resume:
            options["_continue"] = resume
        if namespace is None:
            listing = await patiently(self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, **options)
        else:
            listing = await patiently(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **options)
        return listing.get("items", []), (listing.get("metadata") or {}).get("continue") or None

    async def suspend_job(self, namespace: str, name: str) -> dict[str, Any]:
        return await patiently(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
            {"spec": {"suspend": True}}, _content_type="application/merge-patch+json", _request_timeout=self.timeout)

    async def delete_job(self, namespace: str, name: str, uid: str) -> None:
        await patiently(
            self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
            propagation_policy="Background", body={"preconditions": {"uid": uid}}, _request_timeout=self.timeout)

    async def namespaces(self) -> list[str]:
        listing = await patiently(self.core.list_namespace, _request_timeout=self.timeout)
        return [item.metadata.name for item in listing.items]

    # -- pods and their logs ---------------------------------------------------------------

    async def pod_logs(self, namespace: str, job_name: str, max_bytes: int) -> list[dict[str, Any]] | None:
        """Logs of the job's pods, each cut after `max_bytes` (the API server stops there:
        `limitBytes`) and marked `truncated`; None when there are none or any cannot be read."""
        pods = await patiently(
            self.core.list_namespaced_pod, namespace, label_selector=f"{JOB_LABEL}={job_name}",
            _request_timeout=self.timeout)
        if not pods.items:
            return None

        async def read(pod: Any) -> dict[str, Any]:
            answer = await patiently(
                self.core.read_namespaced_pod_log, pod.metadata.name, namespace, limit_bytes=max_bytes + 1,
                _preload_content=False, _request_timeout=min(self.timeout, 5))
            try:  # raw bytes: the cut may fall inside a character
                raw = await answer.read()
            finally:
                answer.release()
            if not 200 <= answer.status <= 299:
                raise ApiException(status=answer.status, reason=answer.reason)
            index = (pod.metadata.annotations or {}).get(COMPLETION_INDEX)
            return {"shard": int(index) if index and index.isdigit() else None, "pod": pod.metadata.name,
                    "log": raw[:max_bytes].decode(errors="ignore"), "truncated": len(raw) > max_bytes}

        try:
            entries = await asyncio.gather(*(read(pod) for pod in pods.items))
        except (ApiException, asyncio.TimeoutError, OSError):
            return None
        return sorted(entries, key=lambda entry: (entry["shard"] is None, entry["shard"] or 0, entry["pod"]))

    async def events_about(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        """The Kubernetes Events whose involved object is the PravahJob of this uid."""
        events = await patiently(self.core.list_namespaced_event, namespace, field_selector=f"involvedObject.uid={uid}",
                                 _request_timeout=self.timeout)
        return self.plain(events)["items"]

    async def secret(self, namespace: str, name: str) -> dict[str, str]:
        import base64

        secret = await patiently(self.core.read_namespaced_secret, name, namespace, _request_timeout=self.timeout)
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}

    # -- reviews ---------------------------------------------------------------------------

    async def token_review(self, token: str) -> dict[str, Any]:
        review = await patiently(
            self.authn.create_token_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
            _request_timeout=self.timeout)
        return self.plain(review.status) or {}

    async def access_review(self, user: str, groups: list[str], uid: str | None, extra: dict[str, list[str]],
                            verb: str, namespace: str | None, resource: str = PLURAL,
                            group: str = GROUP, subresource: str | None = None) -> tuple[bool, str]:
        attributes: dict[str, Any] = {"group": group, "resource": resource, "verb": verb}
        if namespace:
            attributes["namespace"] = namespace
        if subresource:
            attributes["subresource"] = subresource
        spec: dict[str, Any] = {"user": user, "groups": groups, "extra": extra, "resourceAttributes": attributes}
        if uid:
            spec["uid"] = uid
        review = await patiently(
            self.authz.create_subject_access_review,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
            _request_timeout=self.timeout)
        status = review.status
        return bool(status.allowed) and not bool(status.denied), status.reason or ""

    async def ready(self) -> str:
        info = await patiently(self.version.get_code, _request_timeout=min(self.timeout, 3))
        return f"Kubernetes {info.git_version}"
