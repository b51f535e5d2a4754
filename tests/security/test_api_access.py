"""Attacks on the installed REST API (kubernetes auth mode): it must act as its caller and
authorize before doing any work.

Callers are service accounts with a Role in one namespace. What the API did is read from
the platform itself: the kube-apiserver's own request counters (no cluster-wide LIST of
pravahjobs), admission (a policy that sees who really asked), a TCP listener (no
connection to a job's chosen S3 endpoint).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
import sseclient
from prometheus_client.parser import text_string_to_metric_families

from api.helpers import CLAIMS, STATS_SPEC, apply, assert_error, service_account
from e2e.harness import get_json, wait_for
from pravah.store import JobRecord, Store
from pravah_api.settings import ApiSettings

READ = ["get", "list", "watch"]
ALL_VERBS = ["get", "list", "watch", "create", "patch", "delete"]


# -- helpers --------------------------------------------------------------------------------

def cluster_wide_lists(control_plane) -> float:
    """LISTs of pravahjobs across all namespaces the kube-apiserver has served so far."""
    text = control_plane.kubectl("get", "--raw", "/metrics").stdout
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "apiserver_request_total" and sample.labels.get("resource") == "pravahjobs"
               and sample.labels.get("verb") == "LIST" and sample.labels.get("scope") == "cluster")


def deployed_setting(control_plane, name: str) -> Any:
    """A setting of the installed API: its ConfigMap's value, else the code's default."""
    data = get_json(control_plane, "configmap", "pravah-api-config", "-n", "pravah-system").get("data") or {}
    default = ApiSettings.model_fields[name].default
    return type(default)(data.get(f"PRAVAH_{name.upper()}", default))


def make_job(control_plane, namespace: str, name: str, spec: dict[str, Any] | None = None) -> str:
    """A PravahJob created with the admin credential; its uid."""
    apply(control_plane, {"apiVersion": "pravah.io/v1alpha1", "kind": "PravahJob",
                          "metadata": {"name": name, "namespace": namespace}, "spec": spec or STATS_SPEC})
    return get_json(control_plane, "pravahjob", name, "-n", namespace)["metadata"]["uid"]


def phase_of(control_plane, namespace: str, name: str) -> str | None:
    return (get_json(control_plane, "pravahjob", name, "-n", namespace).get("status") or {}).get("phase")


def running_job(control_plane, namespace: str, name: str) -> str:
    """A job the operator has started and that stays unfinished: its runners wait for a
    volume claim that the namespace does not have."""
    uid = make_job(control_plane, namespace, name)
    wait_for(lambda: phase_of(control_plane, namespace, name) == "Running", 90, f"{name} to be Running")
    return uid


@contextmanager
def stream(api, path: str, token: str) -> Iterator[requests.Response]:
    answer = requests.get(api.url + path, headers={"Authorization": f"Bearer {token}",
                                                  "Accept": "text/event-stream"}, stream=True, timeout=(10, 60))
    try:
        yield answer
    finally:
        answer.close()


def events(answer: requests.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a Server-Sent Events stream, until the server ends it."""
    for event in sseclient.SSEClient(answer.iter_content(chunk_size=None)).events():
        yield event.event, json.loads(event.data)


@contextmanager
def cluster_objects(control_plane, *documents: dict[str, Any]) -> Iterator[None]:
    apply(control_plane, *documents)
    try:
        yield
    finally:
        for doc in documents:
            control_plane.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "--wait=false",
                                  check=False)


class Listener:
    """A TCP port that records every connection made to it."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.peers: list[Any] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, peer = self.sock.accept()
            except TimeoutError:
                continue
            self.peers.append(peer)
            connection.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


# -- ids: authorize before looking ----------------------------------------------------------

def test_foreign_and_unknown_ids_are_refused_alike_without_a_cluster_wide_list(
        kubernetes_api, control_plane, namespace, other_namespace):
    api = kubernetes_api
    mine = service_account(control_plane, namespace, "team-a", ["create", "get", "list"], CLAIMS)
    theirs_owner = service_account(control_plane, other_namespace, "team-b", ALL_VERBS, CLAIMS)
    made = api.request("POST", "/jobs", theirs_owner, json={**STATS_SPEC, "name": "secret-project",
                                                            "namespace": other_namespace})
    assert made.status_code == 201, made.text
    theirs = made.json()["id"]
    random_id = str(uuid.uuid4())

    before = cluster_wide_lists(control_plane)
    answers = {path: api.request(method, path, mine) for method, path in (
        ("GET", f"/jobs/{random_id}"), ("GET", f"/jobs/{theirs}"), ("GET", f"/jobs/{theirs}/results"),
        ("GET", f"/jobs/{theirs}/logs"), ("GET", f"/jobs/{theirs}/events"), ("DELETE", f"/jobs/{theirs}"),
        ("DELETE", f"/jobs/{theirs}?purge=true"))}
    assert cluster_wide_lists(control_plane) == before, "the API listed pravahjobs in all namespaces"

    unknown = assert_error(answers[f"/jobs/{random_id}"], 404, "id")
    for path, answer in answers.items():
        error = assert_error(answer, 404, "id")
        # The same words for a job that exists elsewhere as for one that exists nowhere.
        assert error["message"].replace(theirs, random_id) == unknown["message"], (path, error)
        assert other_namespace not in answer.text and "secret-project" not in answer.text
    assert get_json(control_plane, "pravahjob", "secret-project", "-n", other_namespace)["spec"].get("suspend") \
        is not True

    # The counter does see a cluster-wide listing: a caller allowed to list everywhere gets
    # the fallback search for an id, made with that caller's own rights.
    name = f"lister-{namespace}"
    with cluster_objects(
            control_plane,
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
             "rules": [{"apiGroups": ["pravah.io"], "resources": ["pravahjobs"], "verbs": ["get", "list"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": namespace}]}):
        lister = service_account(control_plane, namespace, "lister", ["get"])
        before = cluster_wide_lists(control_plane)
        assert_error(api.request("GET", f"/jobs/{random_id}", lister), 404, "id")
        assert cluster_wide_lists(control_plane) > before
        assert api.request("GET", f"/jobs/{theirs}", lister).status_code == 200


# -- listing: the API server's pages, only where the caller may list ------------------------

def test_jobs_are_listed_in_pages_only_where_the_caller_may_list(
        kubernetes_api, control_plane, namespace, other_namespace):
    api = kubernetes_api
    caller = service_account(control_plane, namespace, "lister", ["get", "list"])
    suspended = {**STATS_SPEC, "suspend": True}
    made = {make_job(control_plane, namespace, f"job-{index}", suspended): f"job-{index}" for index in range(5)}
    make_job(control_plane, other_namespace, "elsewhere", suspended)

    before = cluster_wide_lists(control_plane)
    for query in ("", f"&namespace={namespace}"):
        pages, token = [], None
        while True:
            answer = api.request("GET", f"/jobs?limit=2{query}" + (f"&continue={token}" if token else ""), caller)
            assert answer.status_code == 200, answer.text
            pages.append(answer.json()["items"])
            token = answer.json()["next"]
            if token is None:
                break
        assert [len(page) for page in pages] == [2, 2, 1], pages
        listed = [(job["id"], job["name"], job["namespace"]) for page in pages for job in page]
        # In the API server's order: by namespace, then by name.
        assert listed == sorted(((uid, name, namespace) for uid, name in made.items()), key=lambda item: item[1])
    assert cluster_wide_lists(control_plane) == before, "the API listed pravahjobs in all namespaces"

    # A continue token forged to point into another namespace is refused, not followed.
    forged = base64.urlsafe_b64encode(json.dumps([other_namespace, None]).encode()).decode().rstrip("=")
    refused = assert_error(api.request("GET", f"/jobs?continue={forged}", caller), 400, "continue")
    assert "elsewhere" not in json.dumps(refused)


# -- writes: the API server authorizes, admits and audits the caller ------------------------

def test_jobs_are_created_cancelled_and_purged_as_the_caller(kubernetes_api, control_plane, namespace):
    """An admission policy that admits pravahjob changes in this namespace from one user
    only: the API's writes pass for that user and are refused for another, with the API
    server's own words, so they reach admission as the caller and not as the API."""
    api = kubernetes_api
    alice = service_account(control_plane, namespace, "alice", ALL_VERBS, CLAIMS)
    mallory = service_account(control_plane, namespace, "mallory", ALL_VERBS, CLAIMS)
    allowed = f"system:serviceaccount:{namespace}:alice"
    name = f"only-alice-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{
                     "apiGroups": ["pravah.io"], "apiVersions": ["*"], "resources": ["pravahjobs"],
                     "operations": ["CREATE", "UPDATE", "DELETE"]}]},
                 "validations": [{
                     "expression": f"request.userInfo.username in ['{allowed}', "
                                   "'system:serviceaccount:pravah-system:pravah-operator']",
                     "messageExpression": "'only alice changes pravahjobs here, not ' + request.userInfo.username",
                     "reason": "Forbidden"}]}}
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}}}
    probe = json.dumps({"apiVersion": "pravah.io/v1alpha1", "kind": "PravahJob",
                        "metadata": {"name": "probe", "namespace": namespace}, "spec": STATS_SPEC})
    with cluster_objects(control_plane, policy, binding):
        wait_for(lambda: control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=probe,
                                               check=False).returncode != 0, 60, "the admission policy to apply")
        body = {**STATS_SPEC, "namespace": namespace}
        refused = assert_error(api.request("POST", "/jobs", mallory, json={**body, "name": "by-mallory"}), 403)
        assert f"not system:serviceaccount:{namespace}:mallory" in refused["message"], refused
        assert control_plane.kubectl("get", "pravahjob", "by-mallory", "-n", namespace, check=False).returncode != 0

        made = api.request("POST", "/jobs", alice, json={**body, "name": "by-alice"})
        assert made.status_code == 201, made.text
        job = made.json()["id"]
        for path in (f"/jobs/{job}", f"/jobs/{job}?purge=true"):
            error = assert_error(api.request("DELETE", path, mallory), 403)
            assert f"not system:serviceaccount:{namespace}:mallory" in error["message"], error
        assert get_json(control_plane, "pravahjob", "by-alice", "-n", namespace)["spec"].get("suspend") is not True
        assert api.request("DELETE", f"/jobs/{job}", alice).status_code == 202
        assert get_json(control_plane, "pravahjob", "by-alice", "-n", namespace)["spec"]["suspend"] is True
        assert api.request("DELETE", f"/jobs/{job}?purge=true", alice).status_code == 204


# -- event streams: re-checked, capped ------------------------------------------------------

def test_an_event_stream_ends_when_its_caller_loses_access(kubernetes_api, control_plane, namespace):
    api = kubernetes_api
    caller = service_account(control_plane, namespace, "watcher", READ)
    job = running_job(control_plane, namespace, "long-job")
    seen: list[tuple[str, dict[str, Any]]] = []
    with stream(api, f"/jobs/{job}/events", caller) as answer:
        assert answer.status_code == 200, answer.text
        received = events(answer)
        seen.append(next(received))
        assert seen[0][0] == "status" and seen[0][1]["phase"] == "Running", seen
        control_plane.kubectl("delete", "rolebinding", "watcher", "-n", namespace)
        limit = time.monotonic() + 120  # a bound for a hung stream, not a timing assertion
        for event in received:
            seen.append(event)
            assert time.monotonic() < limit, f"the stream is still open after losing access: {seen}"
    assert seen[-1][0] == "forbidden", seen
    assert [event for event, _ in seen[1:-1]] == ["status"] * (len(seen) - 2), seen
    assert_error(api.request("GET", f"/jobs/{job}", caller), 404, "id")


def test_event_streams_are_capped_per_caller(kubernetes_api, control_plane, namespace):
    api = kubernetes_api
    cap = deployed_setting(control_plane, "api_events_max_streams")
    greedy = service_account(control_plane, namespace, "greedy", READ)
    other = service_account(control_plane, namespace, "other", READ)
    job = running_job(control_plane, namespace, "watched")
    path = f"/jobs/{job}/events"
    opened = []
    try:
        for _ in range(cap):
            opened.append(requests.get(api.url + path, headers={"Authorization": f"Bearer {greedy}"},
                                       stream=True, timeout=(10, 60)))
            assert opened[-1].status_code == 200, opened[-1].text
            assert next(events(opened[-1]))[0] == "status"
        with stream(api, path, greedy) as refused:
            assert_error(refused, 429)
            assert refused.headers.get("Retry-After")
        with stream(api, path, other) as answer:  # the cap is the caller's, not the server's
            assert answer.status_code == 200, answer.text
        opened.pop().close()

        def admitted() -> bool:
            with stream(api, path, greedy) as answer:
                return answer.status_code == 200

        wait_for(admitted, 60, "the closed stream's slot to be free")
    finally:
        for answer in opened:
            answer.close()


# -- logs: capped ---------------------------------------------------------------------------

def test_logs_are_capped_per_pod_and_in_the_archive(kubernetes_api, control_plane, pravah, namespace):
    api = kubernetes_api
    cap = deployed_setting(control_plane, "api_logs_max_bytes")
    caller = service_account(control_plane, namespace, "reader", READ)
    uid = make_job(control_plane, namespace, "chatty", {**STATS_SPEC, "suspend": True})
    wait_for(lambda: phase_of(control_plane, namespace, "chatty") == "Cancelled", 60, "the job to be cancelled")
    line = "0123456789abcdefghijklmnopqrstuvwxyz\n"
    repeats = 2 * cap // len(line) + 1
    text = line * repeats
    apply(control_plane, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "chatty-runner", "namespace": namespace, "labels": {"pravah.io/job": "chatty"}},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                 "containers": [{"name": "runner", "image": pravah.images.ensure()["runner"].name,
                                 "imagePullPolicy": "Never",
                                 "command": ["python3", "-c", f"import sys; sys.stdout.write({line!r} * {repeats})"]}]}})
    wait_for(lambda: (get_json(control_plane, "pod", "chatty-runner", "-n", namespace).get("status") or {})
             .get("phase") == "Succeeded", 120, "the pod to finish")
    answer = api.request("GET", f"/jobs/{uid}/logs", caller)
    assert answer.status_code == 200, answer.text
    logs = answer.json()
    assert logs["source"] == "pods" and logs["maxBytes"] == cap
    [entry] = logs["entries"]
    assert entry["truncated"] is True and entry["log"] == text[:cap]

    control_plane.kubectl("delete", "pod", "chatty-runner", "-n", namespace, "--wait=true")

    async def archive() -> None:
        store = Store(pravah.database_url)
        try:
            await store.record_job(JobRecord(uid=uid, namespace=namespace, name="chatty", operation="stats",
                                             spec=STATS_SPEC, shards=2, threads=1))
            await store.save_log(uid, 0, "chatty-0", text)
            await store.save_log(uid, 1, "chatty-1", "é" * 10)
        finally:
            await store.close()

    asyncio.run(archive())
    logs = api.request("GET", f"/jobs/{uid}/logs", caller).json()
    assert logs["source"] == "archive"
    assert [(e["pod"], e["truncated"], e["log"]) for e in logs["entries"]] == [
        ("chatty-0", True, text[:cap]), ("chatty-1", False, "é" * 10)]


# -- results: never from a host the API does not trust --------------------------------------

@contextmanager
def admitted_endpoint(control_plane, endpoint: str) -> Iterator[None]:
    """Admission lets jobs name `endpoint` while inside: the allowlist ConfigMap, which the
    admission policy reads live, names it too. The running API keeps the list it started with."""
    def allow(value: str) -> None:
        control_plane.kubectl("patch", "configmap", "pravah-tenancy", "-n", "pravah-system", "--type=merge",
                              "-p", json.dumps({"data": {"PRAVAH_ALLOWED_S3_ENDPOINTS": value}}))

    data = get_json(control_plane, "configmap", "pravah-tenancy", "-n", "pravah-system").get("data") or {}
    current = data.get("PRAVAH_ALLOWED_S3_ENDPOINTS", "")
    allow(",".join(filter(None, [current, endpoint])))
    try:
        yield
    finally:
        allow(current)


def test_results_are_not_fetched_from_an_endpoint_that_is_not_allowed(kubernetes_api, control_plane, s3, namespace):
    api = kubernetes_api
    caller = service_account(control_plane, namespace, "reader", READ)
    host = urlsplit(s3.endpoint).hostname  # where pods reach the S3 server
    listener = Listener(host)
    endpoint = f"http://{host}:{listener.port}"
    try:
        spec = {**STATS_SPEC, "suspend": True,  # no runner ever talks to the endpoint
                "output": {"s3": {"bucket": "results", "prefix": "out/", "endpoint": endpoint,
                                  "credentialsSecret": "s3-creds"}}}
        job = json.dumps({"apiVersion": "pravah.io/v1alpha1", "kind": "PravahJob",
                          "metadata": {"name": "exfil", "namespace": namespace}, "spec": spec})
        with admitted_endpoint(control_plane, endpoint):
            wait_for(lambda: control_plane.kubectl("create", "-f", "-", input=job, check=False).returncode == 0,
                     60, "admission to take the job")
        uid = get_json(control_plane, "pravahjob", "exfil", "-n", namespace)["metadata"]["uid"]
        wait_for(lambda: phase_of(control_plane, namespace, "exfil") == "Cancelled", 60, "the job to be cancelled")
        control_plane.kubectl("patch", "pravahjob", "exfil", "-n", namespace, "--subresource=status",
                              "--type=merge", "-p", json.dumps({"status": {"result": {
                                  "uri": "s3://results/out/result.json"}}}))
        error = assert_error(api.request("GET", f"/jobs/{uid}/results", caller), 403, "spec.output.s3.endpoint")
        assert endpoint in error["message"]
        assert listener.peers == [], f"the API connected to the job's endpoint: {listener.peers}"
    finally:
        listener.close()
