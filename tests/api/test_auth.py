"""Authentication and authorization in both modes: the same rules over REST as with kubectl."""

from __future__ import annotations

import subprocess
from pathlib import Path

from api.helpers import CLAIMS, STATS_SPEC, assert_error, service_account

ALL_VERBS = ["get", "list", "watch", "create", "patch", "delete"]


# -- standalone mode: users in PostgreSQL, JWTs ----------------------------------------------

def test_standalone_roles_and_namespaces(standalone_api, namespace, other_namespace):
    api = standalone_api
    admin = api.admin_token()
    assert_error(api.request("GET", "/jobs"), 401)
    assert_error(api.request("POST", "/auth/token", json={"username": "admin", "password": "wrong"}), 401)
    assert_error(api.request("POST", "/auth/token", json={"username": "nobody", "password": "wrong"}), 401)
    viewer = api.add_user("vera", "viewer", [namespace])
    alice = api.add_user("alice", "submitter", [namespace])
    bob = api.add_user("bob", "submitter", [other_namespace])

    assert api.request("GET", "/auth/whoami", alice).json()["namespaces"] == [namespace]
    # A viewer cannot create.
    assert_error(api.request("POST", "/jobs", viewer, json={**STATS_SPEC, "namespace": namespace}), 403)
    # A submitter creates in its namespace only.
    mine = api.request("POST", "/jobs", alice, json={**STATS_SPEC, "namespace": namespace})
    assert mine.status_code == 201, mine.text
    assert_error(api.request("POST", "/jobs", alice, json={**STATS_SPEC, "namespace": other_namespace}), 403)
    theirs = api.request("POST", "/jobs", bob, json={**STATS_SPEC, "namespace": other_namespace}).json()
    # ... and cannot see or cancel the jobs of another namespace (answered as for no job).
    assert_error(api.request("GET", f"/jobs/{theirs['id']}", alice), 404)
    assert_error(api.request("GET", f"/jobs/{theirs['id']}/results", alice), 404)
    assert_error(api.request("DELETE", f"/jobs/{theirs['id']}", alice), 404)
    assert_error(api.request("GET", f"/jobs?namespace={other_namespace}", alice), 403)
    listed = {job["id"] for job in api.request("GET", "/jobs", alice).json()["items"]}
    assert mine.json()["id"] in listed and theirs["id"] not in listed
    # The viewer sees the jobs of its namespace but cannot cancel them.
    assert api.request("GET", f"/jobs/{mine.json()['id']}", viewer).status_code == 200
    assert_error(api.request("DELETE", f"/jobs/{mine.json()['id']}", viewer), 403)
    assert api.request("DELETE", f"/jobs/{mine.json()['id']}", alice).status_code == 202
    # Admins see everything; only admins manage users.
    everything = {job["id"] for job in api.request("GET", "/jobs", admin).json()["items"]}
    assert {mine.json()["id"], theirs["id"]} <= everything
    assert_error(api.request("GET", "/users", alice), 403)
    assert {user["username"] for user in api.request("GET", "/users", admin).json()["items"]} >= {
        "admin", "vera", "alice", "bob"}
    # Changing a user's namespaces takes effect at once; deleting a user revokes its tokens.
    changed = api.request("PATCH", "/users/bob", admin, json={"namespaces": [other_namespace, namespace]})
    assert changed.status_code == 200, changed.text
    assert api.request("GET", f"/jobs/{mine.json()['id']}", bob).status_code == 200
    assert api.request("DELETE", "/users/vera", admin).status_code == 204
    assert_error(api.request("GET", "/jobs", viewer), 401)
    assert_error(api.request("POST", "/users", admin, json={"username": "alice", "password": "password-123",
                                                           "role": "viewer"}), 409)


# -- kubernetes mode: TokenReview + SubjectAccessReview --------------------------------------

def kubectl_can(control_plane, token: str, verb: str, namespace: str, workdir: Path) -> bool:
    """What kubectl says the same token may do (a kubeconfig with that token only)."""
    kubeconfig = workdir / "token.kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    argv = [str(control_plane.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", f"--server={control_plane.server}",
            f"--certificate-authority={control_plane.ca}", f"--token={token}",
            "auth", "can-i", verb, "pravahjobs.pravah.io", "-n", namespace]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return result.stdout.strip() == "yes"


def test_kubernetes_mode_follows_rbac(kubernetes_api, control_plane, namespace, other_namespace, tmp_path):
    api = kubernetes_api
    creator = service_account(control_plane, namespace, "creator", ["create"], CLAIMS)
    viewer = service_account(control_plane, namespace, "viewer", ["get", "list", "watch"])
    submitter = service_account(control_plane, namespace, "submitter", ALL_VERBS, CLAIMS)
    stranger = service_account(control_plane, other_namespace, "submitter", ALL_VERBS, CLAIMS)

    assert_error(api.request("GET", "/jobs"), 401)
    assert_error(api.request("GET", "/jobs", "not-a-kubernetes-token"), 401)
    assert api.request("GET", "/auth/whoami", creator).json()["name"] == \
        f"system:serviceaccount:{namespace}:creator"

    # A service account granted `create` in one namespace creates there and nowhere else.
    made = api.request("POST", "/jobs", creator, json={**STATS_SPEC, "namespace": namespace})
    assert made.status_code == 201, made.text
    for elsewhere in (other_namespace, "default"):
        assert_error(api.request("POST", "/jobs", creator, json={**STATS_SPEC, "namespace": elsewhere}), 403)
    assert_error(api.request("GET", f"/jobs/{made.json()['id']}", creator), 404)  # no `get`: not visible
    # A viewer reads but cannot create or cancel.
    assert api.request("GET", f"/jobs/{made.json()['id']}", viewer).status_code == 200
    assert_error(api.request("POST", "/jobs", viewer, json={**STATS_SPEC, "namespace": namespace}), 403)
    assert_error(api.request("DELETE", f"/jobs/{made.json()['id']}", viewer), 403)
    # Namespace A cannot see or cancel the jobs of namespace B.
    theirs = api.request("POST", "/jobs", stranger, json={**STATS_SPEC, "namespace": other_namespace})
    assert theirs.status_code == 201, theirs.text
    theirs_id = theirs.json()["id"]
    assert_error(api.request("GET", f"/jobs/{theirs_id}", submitter), 404)
    assert_error(api.request("DELETE", f"/jobs/{theirs_id}", submitter), 404)
    assert_error(api.request("GET", f"/jobs?namespace={other_namespace}", submitter), 403)
    listed = {job["id"] for job in api.request("GET", "/jobs", submitter).json()["items"]}
    assert made.json()["id"] in listed and theirs_id not in listed
    assert api.request("DELETE", f"/jobs/{made.json()['id']}", submitter).status_code == 202
    # REST agrees with kubectl for the same tokens.
    for token, verb, where, expected in ((creator, "create", namespace, True),
                                         (creator, "create", other_namespace, False),
                                         (viewer, "create", namespace, False),
                                         (submitter, "patch", other_namespace, False)):
        assert kubectl_can(control_plane, token, verb, where, tmp_path) is expected
