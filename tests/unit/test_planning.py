import json

import pytest

from pravah.spec import PravahJobSpec
import itertools

from pravah_operator.planning import (
    EXIT_BAD_INPUT,
    PlanningError,
    WaitForCPU,
    job_manifest,
    job_name,
    size_runners,
)
from pravah_operator.settings import OperatorSettings

SETTINGS = OperatorSettings(database_url="postgresql://db/pravah", runner_service_account=None)


NODE_NUMBERS = itertools.count()


def node(cpu: str, ready: str = "True", name: str | None = None, **spec) -> dict:
    return {"metadata": {"name": name or f"node-{next(NODE_NUMBERS)}"}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu}, "conditions": [{"type": "Ready", "status": ready}]}}


def pod(node_name: str, *cpus: str, phase: str = "Running", init: tuple[str, ...] = ()) -> dict:
    def containers(values):
        return [{"name": f"c{i}", "resources": {"requests": {"cpu": value}}} for i, value in enumerate(values)]
    return {"spec": {"nodeName": node_name, "containers": containers(cpus), "initContainers": containers(init)},
            "status": {"phase": phase}}


def spec(**changes) -> PravahJobSpec:
    return PravahJobSpec.model_validate({
        "source": {"volume": {"claimName": "datasets", "path": "in"}},
        "operation": {"type": "count"},
        "output": {"volume": {"claimName": "results", "path": "out"}}, **changes})


def test_auto_sizing_fits_a_runner_on_every_node_and_fills_them():
    sizing = size_runners(spec(), [node("2"), node("4"), node("3500m")], [])
    assert sizing.cpu_per_runner == 2
    assert sizing.shards == 1 + 2 + 1


def test_ineligible_nodes_are_ignored():
    nodes = [node("8", ready="False"), node("16", unschedulable=True),
             node("32", taints=[{"key": "gpu", "effect": "NoSchedule"}]), node("4")]
    sizing = size_runners(spec(), nodes, [])
    assert (sizing.cpu_per_runner, sizing.shards) == (4, 1)


def test_explicit_cpu_and_parallelism_win():
    sizing = size_runners(spec(parallelism=7, resources={"cpu": 3}), [node("4"), node("4")], [])
    assert (sizing.cpu_per_runner, sizing.shards) == (3, 7)


def test_more_cpu_than_the_largest_node_is_a_planning_error():
    with pytest.raises(PlanningError, match="resources.cpu=8 but the largest node has 4"):
        size_runners(spec(resources={"cpu": 8}), [node("4"), node("2")], [])


def test_no_eligible_node_is_a_planning_error():
    with pytest.raises(PlanningError, match="no Ready"):
        size_runners(spec(), [node("4", ready="False")], [])


def test_auto_sizing_counts_only_the_cpu_other_pods_left_free():
    nodes = [node("4", name="big"), node("2", name="small")]
    pods = [pod("big", "500m", "1"), pod("small", "250m", init=("1500m",)),
            pod("big", "3", phase="Succeeded"), pod("elsewhere", "8")]
    # big: 4 - 1.5 = 2.5 free -> 2 whole cores; small: 2 - max(0.25, 1.5) = 0.5 free -> none
    sizing = size_runners(spec(), nodes, pods)
    assert (sizing.cpu_per_runner, sizing.shards) == (2, 1)


def test_a_job_waits_when_no_node_has_a_whole_core_free():
    with pytest.raises(WaitForCPU, match="no node has a whole CPU free.*small 0.50 of 2 free"):
        size_runners(spec(), [node("2", name="small")], [pod("small", "1500m")])


def test_explicit_cpu_that_fits_a_node_but_not_its_free_cores_waits():
    with pytest.raises(WaitForCPU, match="resources.cpu=2: no node has 2 CPUs free"):
        size_runners(spec(resources={"cpu": 2}), [node("2", name="a")], [pod("a", "100m")])


def test_job_manifest_is_an_indexed_job_with_per_index_retries():
    manifest = job_manifest(spec(maxRetriesPerShard=3, activeDeadlineSeconds=600, ttlSecondsAfterFinished=60),
                            "sales", "analytics", "uid-1", size_runners(spec(), [node("2"), node("2")], []), SETTINGS)
    job = manifest["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"] == 2
    assert job["backoffLimitPerIndex"] == 3 and job["activeDeadlineSeconds"] == 600
    assert job["ttlSecondsAfterFinished"] == 60 and job["suspend"] is False
    rule = job["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailIndex" and rule["onExitCodes"]["values"] == [EXIT_BAD_INPUT]
    container = job["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["PRAVAH_THREADS"] == "2" and env["PRAVAH_SHARDS"] == "2"
    assert env["PRAVAH_SOURCE_DIR"] == "/data/source/in" and env["PRAVAH_OUTPUT_DIR"] == "/data/output/out"
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "2"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in job["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims == {"datasets", "results"}


def test_queue_name_makes_the_job_kueue_admissible():
    manifest = job_manifest(spec(queueName="team-a"), "j", "ns", "uid", size_runners(spec(), [node("2")], []), SETTINGS)
    assert manifest["spec"]["suspend"] is True
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


def test_source_and_output_each_get_their_own_secret():
    s3_spec = spec(source={"s3": {"bucket": "raw", "credentialsSecret": "reader"}},
                   output={"s3": {"bucket": "out", "credentialsSecret": "writer"}})
    manifest = job_manifest(s3_spec, "j", "ns", "uid", size_runners(s3_spec, [node("2")], []), SETTINGS)
    env = {item["name"]: item for item in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    secrets = {name: item["valueFrom"]["secretKeyRef"] for name, item in env.items()
               if "secretKeyRef" in item.get("valueFrom", {})}
    assert secrets == {
        "PRAVAH_SOURCE_AWS_ACCESS_KEY_ID": {"name": "reader", "key": "AWS_ACCESS_KEY_ID"},
        "PRAVAH_SOURCE_AWS_SECRET_ACCESS_KEY": {"name": "reader", "key": "AWS_SECRET_ACCESS_KEY"},
        "PRAVAH_OUTPUT_AWS_ACCESS_KEY_ID": {"name": "writer", "key": "AWS_ACCESS_KEY_ID"},
        "PRAVAH_OUTPUT_AWS_SECRET_ACCESS_KEY": {"name": "writer", "key": "AWS_SECRET_ACCESS_KEY"}}


def test_job_names_are_deterministic_and_short():
    assert job_name("sales", "uid") == "pravah-sales"
    long = job_name("x" * 70, "uid-a")
    assert len(long) <= 63 and long == job_name("x" * 70, "uid-a") != job_name("x" * 70, "uid-b")


def test_runner_pods_hold_no_database_credentials_only_a_token_for_the_operator():
    manifest = job_manifest(spec(), "j", "ns", "uid", size_runners(spec(), [node("2")], []), SETTINGS)
    pod = manifest["spec"]["template"]["spec"]
    text = json.dumps(pod)
    assert "postgresql://" not in text and "DATABASE" not in text, "nothing of the database reaches a runner"
    assert pod["automountServiceAccountToken"] is False
    [projected] = [v["projected"] for v in pod["volumes"] if "projected" in v]
    token = projected["sources"][0]["serviceAccountToken"]
    assert token["audience"] == SETTINGS.report_audience and token["expirationSeconds"] == 600
    env = {item["name"]: item.get("value") for item in pod["containers"][0]["env"]}
    assert env["PRAVAH_REPORT_URL"] == SETTINGS.report_url
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "report-token")
    assert env["PRAVAH_REPORT_TOKEN_FILE"].startswith(mount["mountPath"] + "/") and mount["readOnly"]


def test_runner_egress_is_the_operator_dns_and_the_jobs_own_s3_endpoints():
    from pravah_operator.egress import egress_policy

    volume_only = egress_policy(spec(), "j", "ns", "uid", SETTINGS)["spec"]
    assert volume_only["podSelector"] == {"matchLabels": {"pravah.io/job": "j"}}
    assert volume_only["policyTypes"] == ["Egress"]
    [operator_rule, dns_rule] = volume_only["egress"]
    assert operator_rule["ports"] == [{"protocol": "TCP", "port": SETTINGS.report_port}]
    assert {port["port"] for port in dns_rule["ports"]} == {53}
    on_s3 = spec(source={"s3": {"bucket": "raw", "endpoint": "http://10.1.2.3:9000"}},
                 output={"s3": {"bucket": "out", "endpoint": "https://s3.example.com"}})
    rules = egress_policy(on_s3, "j", "ns", "uid", SETTINGS)["spec"]["egress"][2:]
    by_port = {rule["ports"][0]["port"]: [peer["ipBlock"]["cidr"] for peer in rule["to"]] for rule in rules}
    assert by_port == {9000: ["10.1.2.3/32"], 443: ["0.0.0.0/0"]}
