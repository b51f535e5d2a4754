import pytest

from pravah.spec import PravahJobSpec
from pravah_operator.planning import EXIT_BAD_INPUT, PlanningError, job_manifest, job_name, size_runners
from pravah_operator.settings import OperatorSettings

SETTINGS = OperatorSettings(database_url="postgresql://db/pravah", runner_service_account=None)


def node(cpu: str, ready: str = "True", **spec) -> dict:
    return {"spec": spec, "status": {"allocatable": {"cpu": cpu},
                                     "conditions": [{"type": "Ready", "status": ready}]}}


def spec(**changes) -> PravahJobSpec:
    return PravahJobSpec.model_validate({
        "source": {"volume": {"claimName": "datasets", "path": "in"}},
        "operation": {"type": "count"},
        "output": {"volume": {"claimName": "results", "path": "out"}}, **changes})


def test_auto_sizing_fits_a_runner_on_every_node_and_fills_them():
    sizing = size_runners(spec(), [node("2"), node("4"), node("3500m")])
    assert sizing.cpu_per_runner == 2
    assert sizing.shards == 1 + 2 + 1


def test_ineligible_nodes_are_ignored():
    nodes = [node("8", ready="False"), node("16", unschedulable=True),
             node("32", taints=[{"key": "gpu", "effect": "NoSchedule"}]), node("4")]
    sizing = size_runners(spec(), nodes)
    assert (sizing.cpu_per_runner, sizing.shards) == (4, 1)


def test_explicit_cpu_and_parallelism_win():
    sizing = size_runners(spec(parallelism=7, resources={"cpu": 3}), [node("4"), node("4")])
    assert (sizing.cpu_per_runner, sizing.shards) == (3, 7)


def test_more_cpu_than_the_largest_node_is_a_planning_error():
    with pytest.raises(PlanningError, match="resources.cpu=8 but the largest node has 4"):
        size_runners(spec(resources={"cpu": 8}), [node("4"), node("2")])


def test_no_eligible_node_is_a_planning_error():
    with pytest.raises(PlanningError, match="no Ready"):
        size_runners(spec(), [node("4", ready="False")])


def test_job_manifest_is_an_indexed_job_with_per_index_retries():
    manifest = job_manifest(spec(maxRetriesPerShard=3, activeDeadlineSeconds=600, ttlSecondsAfterFinished=60),
                            "sales", "analytics", "uid-1", size_runners(spec(), [node("2"), node("2")]), SETTINGS)
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
    manifest = job_manifest(spec(queueName="team-a"), "j", "ns", "uid", size_runners(spec(), [node("2")]), SETTINGS)
    assert manifest["spec"]["suspend"] is True
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


def test_s3_credentials_come_from_the_named_secret():
    s3_spec = spec(source={"s3": {"bucket": "raw", "credentialsSecret": "creds"}})
    manifest = job_manifest(s3_spec, "j", "ns", "uid", size_runners(s3_spec, [node("2")]), SETTINGS)
    env = {item["name"]: item for item in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": "AWS_ACCESS_KEY_ID"}


def test_job_names_are_deterministic_and_short():
    assert job_name("sales", "uid") == "pravah-sales"
    long = job_name("x" * 70, "uid-a")
    assert len(long) <= 63 and long == job_name("x" * 70, "uid-a") != job_name("x" * 70, "uid-b")
