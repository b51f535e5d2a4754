"""A PravahJob lends its runner pods the Secrets and PersistentVolumeClaims it names and
makes them fetch from the S3 endpoint it names; the admission policy `pravah-tenancy`
(manifests/base/admission.yaml) lets a job (or a PravahCronJob's job template) name only what
its creator may `get`, and only allowed endpoints.

The attacker: a service account allowed only to create, get, list and watch PravahJobs in
its namespace. It tries to borrow a Secret and claims it may not read, and to point a job
at endpoints off the allowlist, by kubectl and by REST. Each attempt is refused naming the
field, and nothing is created, read or written. Granted `get` on exactly those objects, the
same job is accepted and runs: with two Secrets whose MinIO users may each do only their
side's part (read the source, write the result), so its success shows that each location
used its own credentials.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from minio import MinioAdmin
from minio.credentials import StaticProvider

from api.helpers import apply, service_account
from e2e import reference
from e2e.harness import ROOT, manifest_for, upload_sales, wait_for

POLICY = "ValidatingAdmissionPolicy 'pravah-tenancy'"
# Endpoints a job must not reach: the cloud metadata service, the same host as user info in
# front of it, the allowed server over another scheme.
OFF_LIST = ("http://169.254.169.254", "{allowed}@169.254.169.254", "{allowed_https}")


@dataclass
class Caller:
    """kubectl with nothing but one service account's token."""

    control_plane: Any
    namespace: str
    account: str
    token: str
    kubeconfig: Path

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        argv = [str(self.control_plane.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}",
                f"--server={self.control_plane.server}", f"--certificate-authority={self.control_plane.ca}",
                f"--token={self.token}", "-n", self.namespace, *args]
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60)

    def apply(self, manifest: dict[str, Any]) -> subprocess.CompletedProcess:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def grant_get(self, resource: str, names: list[str]) -> None:
        """Let this caller `get` exactly `names` of `resource` (and nothing else), and wait
        until the authorizer says so."""
        role = f"{self.account}-{resource}"
        apply(self.control_plane,
              {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": role, "namespace": self.namespace},
               "rules": [{"apiGroups": [""], "resources": [resource], "resourceNames": names, "verbs": ["get"]}]},
              {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": role, "namespace": self.namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
               "subjects": [{"kind": "ServiceAccount", "name": self.account, "namespace": self.namespace}]})
        for name in names:
            wait_for(lambda name=name: self.kubectl("auth", "can-i", "get", f"{resource}/{name}").stdout.strip()
                     == "yes", 30, f"{self.user} to be allowed to get {resource}/{name}")


@pytest.fixture
def caller(cluster, tmp_path) -> Caller:  # noqa: F811
    verbs = ["create", "get", "list", "watch"]
    token = service_account(cluster.control_plane, cluster.namespace, "submitter", verbs,
                            ({"apiGroups": ["pravah.io"], "resources": ["pravahcronjobs"], "verbs": verbs},))
    kubeconfig = tmp_path / "caller.kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    return Caller(cluster.control_plane, cluster.namespace, "submitter", token, kubeconfig)


@pytest.fixture
def split_credentials(s3, bucket) -> dict[str, dict[str, str]]:
    """Two MinIO users: `reader` may list and read raw/ of the bucket, `writer` may only
    write under results/. Neither can do the other's part."""
    admin = MinioAdmin(endpoint=s3.endpoint.removeprefix("http://"), secure=False,
                       credentials=StaticProvider(s3.access_key, s3.secret_key))
    statements = {
        "reader": [{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]},
                   {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{bucket}/raw/*"]}],
        "writer": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [f"arn:aws:s3:::{bucket}/results/*"]}],
    }
    users = {}
    for role, statement in statements.items():
        user = {"AWS_ACCESS_KEY_ID": f"{bucket[:20]}-{role}", "AWS_SECRET_ACCESS_KEY": f"{role}-{bucket}"[:40]}
        admin.policy_add(user["AWS_ACCESS_KEY_ID"], policy={"Version": "2012-10-17", "Statement": statement})
        admin.user_add(user["AWS_ACCESS_KEY_ID"], user["AWS_SECRET_ACCESS_KEY"])
        admin.attach_policy([user["AWS_ACCESS_KEY_ID"]], user=user["AWS_ACCESS_KEY_ID"])
        users[role] = user
    yield users
    for user in users.values():
        admin.user_remove(user["AWS_ACCESS_KEY_ID"])
        admin.policy_remove(user["AWS_ACCESS_KEY_ID"])


def s3_as(s3, user: dict[str, str]):
    return boto3.client("s3", endpoint_url=s3.endpoint, region_name=s3.region,
                        aws_access_key_id=user["AWS_ACCESS_KEY_ID"], aws_secret_access_key=user["AWS_SECRET_ACCESS_KEY"])


def refused(result: subprocess.CompletedProcess, reason: str) -> str:
    """kubectl's error: a refusal by the policy, for `reason`."""
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert "(Forbidden)" in result.stderr and POLICY in result.stderr and reason in result.stderr, result.stderr
    return result.stderr


def assert_nothing_created(cluster, name: str) -> None:  # noqa: F811
    """No PravahJob, no Job, no pod: nothing ran with what was borrowed."""
    missing = cluster.kubectl("get", "pravahjob", name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stdout
    assert cluster.jobs() == [] and cluster.pods() == []


def s3_job(bucket: str, source: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    manifest = manifest_for("stats", source={"s3": {"bucket": bucket, "prefix": "raw/sales/", **source}},
                            output={"s3": {"bucket": bucket, "prefix": "results/sales/", **output}}, parallelism=2)
    manifest["metadata"]["name"] = "borrowed-secrets"
    return manifest


def test_a_job_names_only_secrets_its_creator_may_get(cluster, caller, s3, bucket, split_credentials):  # noqa: F811
    files = upload_sales(s3, bucket)
    admin = boto3.client("s3", **s3.client_kwargs())
    # The two users really are split: neither could do the job's other half.
    reader, writer = s3_as(s3, split_credentials["reader"]), s3_as(s3, split_credentials["writer"])
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.put_object(Bucket=bucket, Key="results/sales/probe", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        writer.list_objects_v2(Bucket=bucket, Prefix="raw/sales/")
    for role, user in split_credentials.items():
        cluster.kubectl("create", "secret", "generic", f"s3-{role}",
                        *(f"--from-literal={key}={value}" for key, value in user.items()))
    # The output endpoint carries a trailing slash: compared as the operator compares it.
    manifest = s3_job(bucket, {"endpoint": s3.endpoint, "credentialsSecret": "s3-reader"},
                      {"endpoint": f"{s3.endpoint}/", "credentialsSecret": "s3-writer"})

    # Refused for the first reference it may not get; granted that one, for the next.
    refused(caller.apply(manifest),
            f"spec.source.s3.credentialsSecret: user {caller.user} may not get secret s3-reader in namespace "
            f"{cluster.namespace}")
    assert_nothing_created(cluster, "borrowed-secrets")
    caller.grant_get("secrets", ["s3-reader"])
    message = refused(caller.apply(manifest),
                      f"spec.output.s3.credentialsSecret: user {caller.user} may not get secret s3-writer in "
                      f"namespace {cluster.namespace}")
    assert "spec.source.s3.credentialsSecret" not in message
    assert_nothing_created(cluster, "borrowed-secrets")
    assert "Contents" not in admin.list_objects_v2(Bucket=bucket, Prefix="results/")

    caller.grant_get("secrets", ["s3-reader", "s3-writer"])
    accepted = caller.apply(manifest)
    assert accepted.returncode == 0, accepted.stderr
    job = cluster.wait_phase("borrowed-secrets")
    assert job["status"]["result"]["uri"] == f"s3://{bucket}/results/sales/result.json"
    reference.check(cluster.result(job, s3), manifest["spec"]["operation"], files)


def test_a_job_names_only_claims_its_creator_may_get(cluster, caller, sample_data):  # noqa: F811
    manifest = yaml.safe_load((ROOT / "examples" / "count-volume.yaml").read_text())
    name = manifest["metadata"]["name"]
    refused(caller.apply(manifest),
            f"spec.source.volume.claimName: user {caller.user} may not get persistentvolumeclaim datasets "
            f"in namespace {cluster.namespace}")
    caller.grant_get("persistentvolumeclaims", ["datasets"])
    refused(caller.apply(manifest),
            f"spec.output.volume.claimName: user {caller.user} may not get persistentvolumeclaim results "
            f"in namespace {cluster.namespace}")
    assert_nothing_created(cluster, name)
    assert not any(cluster.results.iterdir()), "nothing may be written to the claim"

    caller.grant_get("persistentvolumeclaims", ["datasets", "results"])
    accepted = caller.apply(manifest)
    assert accepted.returncode == 0, accepted.stderr
    reference.count(cluster.result(cluster.wait_phase(name)), cluster.source_files(manifest["spec"]))


def test_a_cronjob_template_names_only_claims_its_creator_may_get(cluster, caller):  # noqa: F811
    """A PravahCronJob's template is held to its creator's rights; the PravahJobs the operator
    creates from it pass, and a PravahJob that only claims a PravahCronJob as its owner does not."""
    cronjob = yaml.safe_load((ROOT / "examples" / "cronjob-volume.yaml").read_text())
    refused(caller.apply(cronjob),
            f"spec.jobTemplate.spec.source.volume.claimName: user {caller.user} may not get persistentvolumeclaim "
            f"datasets in namespace {cluster.namespace}")
    assert cluster.kubectl("get", "pravahcronjobs", "-o", "name").stdout.split() == []
    job = yaml.safe_load((ROOT / "examples" / "count-volume.yaml").read_text())
    job["metadata"]["ownerReferences"] = [{"apiVersion": "pravah.io/v1alpha1", "kind": "PravahCronJob",
                                           "name": "nightly-count", "uid": "0b6f3c52-8d7e-4c1a-9f55-1d2e3f4a5b6c",
                                           "controller": True}]
    refused(caller.apply(job), f"spec.source.volume.claimName: user {caller.user} may not get")
    assert_nothing_created(cluster, job["metadata"]["name"])


def test_a_job_names_only_allowed_endpoints(cluster, caller, s3, bucket):  # noqa: F811
    allowed_https = s3.endpoint.replace("http://", "https://", 1)
    for index, template in enumerate(OFF_LIST):
        endpoint = template.format(allowed=s3.endpoint, allowed_https=allowed_https)
        side = ("source", "output")[index % 2]
        locations = {"source": {"endpoint": s3.endpoint}, "output": {"endpoint": s3.endpoint}}
        locations[side] = {"endpoint": endpoint}
        manifest = s3_job(bucket, locations["source"], locations["output"])
        message = refused(caller.apply(manifest),
                          f"spec.{side}.s3.endpoint: endpoint {endpoint} is not allowed")
        assert f"spec.{('output', 'source')[index % 2]}.s3.endpoint" not in message
        assert_nothing_created(cluster, manifest["metadata"]["name"])


def test_rest_jobs_name_only_what_the_caller_may_get(cluster, caller, kubernetes_api, s3, bucket):  # noqa: F811
    """The REST API creates jobs as its caller: the same refusals, whatever the API's own rights."""
    cluster.kubectl("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    volume_spec = yaml.safe_load((ROOT / "examples" / "count-volume.yaml").read_text())["spec"]
    secret_spec = s3_job(bucket, {"endpoint": s3.endpoint, "credentialsSecret": "s3-creds"},
                         {"endpoint": s3.endpoint, "credentialsSecret": "s3-creds"})["spec"]
    endpoint_spec = s3_job(bucket, {"endpoint": "http://169.254.169.254"}, {"endpoint": s3.endpoint})["spec"]
    attempts = [
        (secret_spec, f"spec.source.s3.credentialsSecret: user {caller.user} may not get secret s3-creds"),
        (volume_spec, f"spec.source.volume.claimName: user {caller.user} may not get persistentvolumeclaim datasets"),
        (endpoint_spec, "spec.source.s3.endpoint: endpoint http://169.254.169.254 is not allowed"),
    ]
    for index, (spec, reason) in enumerate(attempts):
        answer = kubernetes_api.request("POST", "/jobs", caller.token,
                                        json={**spec, "name": f"rest-{index}", "namespace": cluster.namespace})
        assert answer.status_code == 403, answer.text
        assert reason in answer.json()["error"]["message"], answer.text
        assert_nothing_created(cluster, f"rest-{index}")
    listed = kubernetes_api.request("GET", f"/jobs?namespace={cluster.namespace}", caller.token)
    assert listed.status_code == 200 and listed.json()["items"] == [], listed.text

    caller.grant_get("secrets", ["s3-creds"])
    upload_sales(s3, bucket)
    answer = kubernetes_api.request("POST", "/jobs", caller.token,
                                    json={**secret_spec, "name": "rest-granted", "namespace": cluster.namespace})
    assert answer.status_code == 201, answer.text
    cluster.wait_phase("rest-granted")
