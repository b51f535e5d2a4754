"""Which Jobs hold a place under the per-namespace cap, read from the Job itself."""

from __future__ import annotations

import pytest

from pravah_operator.pravahjob import runs


def job(suspend: bool | None = None, *conditions: tuple[str, str]) -> dict:
    spec = {} if suspend is None else {"suspend": suspend}
    return {"metadata": {}, "spec": spec,
            "status": {"conditions": [{"type": kind, "status": value} for kind, value in conditions]}}


@pytest.mark.parametrize("candidate, holds", [
    (job(), True),
    (job(False, ("Complete", "False")), True),
    (job(True), False),
    (job(None, ("Complete", "True")), False),
    (job(None, ("Failed", "True")), False),
], ids=["started", "not-yet-complete", "suspended-for-kueue", "complete", "failed"])
def test_a_job_holds_a_place_while_it_is_unsuspended_and_unfinished(candidate, holds):
    assert runs(candidate) is holds
