"""The operator writes its status through the model and only when a field changed, and
runs a handler that failed again after its own retry delay."""

from __future__ import annotations

import kopf
from kubernetes_asyncio import client

from pravah_operator.main import configure
from pravah_operator.pravahjob import Context, reconcile, write_status
from pravah_operator.settings import OperatorSettings
from pravah_operator.status import MAX_REASON_CHARS, error_sample

RUNNING = {"phase": "Running", "reason": "JobCreated", "message": "2 shards",
           "shards": {"total": 2, "active": 2, "succeeded": 0, "failed": 0, "ready": "0/2"},
           "progress": {"filesTotal": 10, "filesDone": 4, "bytesTotal": 100, "bytesDone": 40, "percent": 40,
                        "bytesPerSecond": 0, "files": "4/10", "throughput": "0 B/s"}}


def written(current: dict, new: dict) -> dict:
    patch = kopf.Patch()
    write_status(patch, current, new)
    return dict(patch.get("status") or {})


def test_an_unchanged_status_is_not_written():
    assert written(RUNNING, {**RUNNING, "shards": {"total": 2, "active": 2, "succeeded": 0, "failed": 0}}) == {}


def test_only_the_changed_fields_are_written_with_their_derived_strings():
    progress = {"filesTotal": 10, "filesDone": 7, "bytesTotal": 100, "bytesDone": 70, "bytesPerSecond": 1500}
    assert written(RUNNING, {**RUNNING, "progress": progress}) == {"progress": {
        **progress, "percent": 70, "files": "7/10", "throughput": "1.5 kB/s"}}


def test_error_reasons_are_cut_to_the_status_bound():
    sample = error_sample("a.csv", "x" * 10_000, 3)
    status = written(RUNNING, {**RUNNING, "errors": {"count": 1, "samples": [sample]}})
    [kept] = status["errors"]["samples"]
    assert len(kept["reason"]) == MAX_REASON_CHARS and kept["reason"].endswith("...")
    assert (kept["path"], kept["line"]) == ("a.csv", 3)


async def test_a_body_read_before_the_job_ended_gets_the_final_status_again():
    """The status timer can hold a body read before the result's wake-up finished the job; it
    writes that final status again instead of stepping (finishing, counting, announcing) twice.
    Stepping this body would fail the job: its spec is empty."""
    uid = "0b7e4c1a-5f3d-4e0b-9d8a-2c6f1e7a9b30"
    async with client.ApiClient() as api:
        ctx = Context(OperatorSettings.model_construct(), api, store=None)
    final = {**RUNNING, "phase": "Succeeded", "reason": "Completed", "message": "10 files, 100 bytes, 0 errors"}
    ctx.end(uid, final)
    body = kopf.Body({"metadata": {"uid": uid, "name": "counted", "namespace": "team-a"}, "spec": {},
                      "status": RUNNING})
    patch = kopf.Patch()
    await reconcile(body, patch, ctx)
    assert {key: patch["status"].get(key) for key in ("phase", "reason", "message")} == {
        key: final[key] for key in ("phase", "reason", "message")}


async def test_a_failed_handler_runs_again_after_the_configured_seconds_not_a_minute():
    """kopf holds a handler that raised for `default_backoff` (60 s) before its next run; the
    operator sets PRAVAH_RETRY_SECONDS instead, so one failed API call does not stop a job's
    roll-up, or a queued job's admission, for a minute."""
    kopf_settings = kopf.OperatorSettings()
    assert kopf_settings.execution.default_backoff == 60
    async with client.ApiClient() as api:
        ctx = Context(OperatorSettings.model_construct(retry_seconds=7.0), api, store=None)
    configure(settings=kopf_settings, memo=kopf.Memo(context=ctx))
    assert kopf_settings.execution.default_backoff == 7.0
    assert OperatorSettings.model_fields["retry_seconds"].default < 60
