"""Helpers of the REST API tests: the API served in-process (its own thread and event loop)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests
import yaml
from aiohttp import web

from e2e.harness import wait_for
from pravah.localcluster.procs import free_port
from pravah_api.app import create_app
from pravah_api.settings import ApiSettings

ADMIN = ("admin", "admin-password-1")
# `extra_rules` for a caller that creates jobs naming volumes: admission lets a job name
# only the claims its creator may `get`.
CLAIMS = ({"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]},)
STATS_SPEC = {
    "source": {"volume": {"claimName": "datasets", "path": "data/sales"}},
    "include": ["**/*.csv"],
    "operation": {"type": "stats"},
    "output": {"volume": {"claimName": "results", "path": "out"}},
}


class ApiClient:
    """Requests to a running API; `url` is set by the subclass."""

    url: str

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def token(self, username: str, password: str) -> str:
        answer = self.request("POST", "/auth/token", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def admin_token(self) -> str:
        return self.token(*ADMIN)

    def add_user(self, username: str, role: str, namespaces: list[str], password: str = "password-123") -> str:
        answer = self.request("POST", "/users", self.admin_token(),
                              json={"username": username, "password": password, "role": role,
                                    "namespaces": namespaces})
        assert answer.status_code == 201, answer.text
        return self.token(username, password)


class DeployedApi(ApiClient):
    """The `pravah-api` Deployment that `kubectl apply -k` installed (kubernetes auth mode),
    reached through its Service."""

    def __init__(self, control_plane) -> None:
        service = json.loads(control_plane.kubectl("get", "service", "pravah-api", "-n", "pravah-system",
                                                   "-o", "json").stdout)
        self.url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"


class ApiServer(ApiClient):
    """The aiohttp application served on 127.0.0.1 from a background thread (for the
    settings the installed API does not run with: standalone auth, test limits)."""

    def __init__(self, settings: ApiSettings):
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="pravah-api", daemon=True)
        self.started = threading.Event()
        self.error: BaseException | None = None
        self.runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.app = create_app(self.settings)
            self.runner = web.AppRunner(self.app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        try:
            self.loop.run_until_complete(start())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc
            self.started.set()
            return
        self.started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def start(self) -> ApiServer:
        self.thread.start()
        self.started.wait(60)
        if self.error is not None:
            raise RuntimeError(f"the API did not start: {self.error!r}") from self.error
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)


def settings_for(control_plane, database: str, mode: str, **extra: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "database_url": database, "kubeconfig": str(control_plane.kubeconfig), "api_auth_mode": mode,
        "api_events_interval": 0.5, **extra}
    if mode == "standalone":
        values.update(api_jwt_secret=secrets.token_urlsafe(48), api_bootstrap_admin=f"{ADMIN[0]}:{ADMIN[1]}")
    return ApiSettings(**values)


def assert_error(answer: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The one error shape, with the expected status (and field), and no stack trace."""
    assert answer.status_code == status, f"{answer.status_code} {answer.text}"
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    if field is not None:
        assert body["error"]["field"] == field, body
    return body["error"]


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def apply(control_plane, *documents: dict) -> None:
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def service_account(control_plane, namespace: str, name: str, verbs: list[str],
                    extra_rules: tuple[dict[str, Any], ...] = ()) -> str:
    """A service account allowed `verbs` on pravahjobs (and `extra_rules`) in `namespace`
    through a Role and RoleBinding both called `name`; returns a token from the TokenRequest
    API (through the admin client)."""
    from kubernetes import client

    rules = [{"apiGroups": ["pravah.io"], "resources": ["pravahjobs"], "verbs": verbs}, *extra_rules]
    apply(control_plane,
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
          {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
           "metadata": {"name": name, "namespace": namespace}, "rules": rules},
          {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name, "namespace": namespace},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
           "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    api = control_plane.api_client()
    try:
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600))
        answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
        return answer.status.token
    finally:
        api.close()


def start_api(control_plane, database: str, mode: str, workdir: Path) -> tuple[subprocess.Popen, str, Path]:
    """`pravah-api` as a process of its own (its memory and its load measured apart from the tests)."""
    port = free_port()
    log = workdir / f"api-{mode}.log"
    env = {**os.environ, "PRAVAH_DATABASE_URL": database, "KUBECONFIG": str(control_plane.kubeconfig),
           "PRAVAH_API_AUTH_MODE": mode, "PRAVAH_API_JWT_SECRET": secrets.token_urlsafe(48),
           "PRAVAH_API_BOOTSTRAP_ADMIN": f"{ADMIN[0]}:{ADMIN[1]}"}
    process = subprocess.Popen([sys.executable, "-m", "pravah_api.main", "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", "WARNING"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"pravah-api exited: {log.read_text()[-3000:]}")
        try:
            return requests.get(url + "/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(up, 60, "pravah-api to be ready", 0.2)
    return process, url, log
