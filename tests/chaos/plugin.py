"""Chaos mode for the e2e suite (`PRAVAH_CHAOS=1`, `make test-chaos`).

For the whole session the operator reaches the API server through a fault-injecting proxy
and its pod is deleted at random moments. Each test still checks its own phases and exact
results; after each test this module also checks what must hold however often the operator
was interrupted: one batch/v1 Job per PravahJob, and no file or batch stored twice. The end
of the run prints how many faults were injected, by kind, and how many pods were deleted.

Settings (environment): PRAVAH_CHAOS_FAULT_RATE (fraction of the operator's requests that
fail, default 0.1), PRAVAH_CHAOS_WATCH_CUT_RATE (fraction of its watches ended early,
default 0.2), PRAVAH_CHAOS_KILL_EVERY (seconds between pod deletions, `min-max`, default
20-60), PRAVAH_CHAOS_SEED (to replay a run's choices; printed at the end).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest
from chaos.killer import OperatorKiller
from chaos.proxy import CreatedJob, FaultPlan, FaultProxy
from e2e.harness import OPERATOR_DEPLOYMENT, InstalledOperator, db_fetch, wait_for
from pravah.localcluster.network import HOST_IP

SWITCH = "PRAVAH_CHAOS"
CHAOS = pytest.StashKey["Chaos"]()

# A file in two batches, or a batch or file stored twice, shows up in one of these.
DUPLICATE_QUERIES = {
    "file recorded twice": "SELECT job_uid, path, count(*) AS copies FROM file_records "
                           "GROUP BY job_uid, path HAVING count(*) > 1",
    "batch stored twice": "SELECT job_uid, shard, batch, count(*) AS copies FROM batches "
                          "GROUP BY job_uid, shard, batch HAVING count(*) > 1",
    "batch whose file records disagree with its counts (a file claimed by another batch)":
        "SELECT b.job_uid, b.shard, b.batch, b.files, b.bytes, count(f.path) AS records, "
        "coalesce(sum(f.bytes), 0) AS record_bytes FROM batches b LEFT JOIN file_records f "
        "ON f.job_uid = b.job_uid AND f.shard = b.shard AND f.batch = b.batch "
        "GROUP BY b.job_uid, b.shard, b.batch, b.files, b.bytes "
        "HAVING count(f.path) <> b.files OR coalesce(sum(f.bytes), 0) <> b.bytes",
}


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(SWITCH, "") == "1"


def _number(environ: Mapping[str, str], name: str, default: str) -> float:
    raw = environ.get(name, default)
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _fraction(environ: Mapping[str, str], name: str, default: str) -> float:
    value = _number(environ, name, default)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return value


def _interval(environ: Mapping[str, str], name: str, default: str) -> tuple[float, float]:
    raw = environ.get(name, default)
    low, sep, high = raw.partition("-")
    try:
        interval = (float(low), float(high if sep else low))
    except ValueError:
        raise ValueError(f"{name} must be `min-max` seconds, got {raw!r}") from None
    if not 0 < interval[0] <= interval[1]:
        raise ValueError(f"{name} must be `min-max` seconds with 0 < min <= max, got {raw!r}")
    return interval


@dataclass(frozen=True)
class ChaosSettings:
    plan: FaultPlan
    kill_every: tuple[float, float]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ChaosSettings:
        seed = int(_number(environ, "PRAVAH_CHAOS_SEED", str(random.SystemRandom().randrange(2**31))))
        plan = FaultPlan(rate=_fraction(environ, "PRAVAH_CHAOS_FAULT_RATE", "0.1"),
                         watch_cut_rate=_fraction(environ, "PRAVAH_CHAOS_WATCH_CUT_RATE", "0.2"), seed=seed)
        return cls(plan, _interval(environ, "PRAVAH_CHAOS_KILL_EVERY", "20-60"))


def jobs_per_owner(created: list[CreatedJob]) -> list[str]:
    """PravahJobs the API server created more than one Job for (or Jobs with no owner)."""
    by_owner: dict[tuple[str, ...], list[CreatedJob]] = {}
    for job in created:
        by_owner.setdefault(job.owners, []).append(job)
    return [f"{len(jobs)} Jobs created for the PravahJob with uid {', '.join(owners) or '(no owner)'}: "
            + ", ".join(f"{job.namespace}/{job.name} ({job.uid})" for job in jobs)
            for owners, jobs in by_owner.items() if len(jobs) > 1 or not owners]


@dataclass
class Chaos:
    """The proxy and the killer of one session, and the violations already reported."""

    settings: ChaosSettings
    proxy: FaultProxy
    killer: OperatorKiller
    reported: set[str] = field(default_factory=set)

    def violations(self, control_plane, database_url: str) -> list[str]:
        """What breaks the invariants now and was not reported before."""
        _, _, created = self.proxy.snapshot()
        found = jobs_per_owner(created) + unaudited_jobs(control_plane, created)
        for what, query in DUPLICATE_QUERIES.items():
            found += [f"{what}: {dict(row)}" for row in db_fetch(database_url, query)]
        new = [line for line in found if line not in self.reported]
        self.reported.update(new)
        return new

    def summary(self) -> list[str]:
        faults, forwarded, created = self.proxy.snapshot()
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(faults.items())) or "none"
        plan = self.settings.plan
        return [f"faults injected into the operator's API calls: {sum(faults.values())} ({kinds}); "
                f"{forwarded} requests forwarded",
                f"operator pods deleted: {len(self.killer.deleted)}",
                f"Jobs created through the proxy: {len(created)} for "
                f"{len({job.owners for job in created})} PravahJobs",
                f"settings: fault rate {plan.rate}, watch cut rate {plan.watch_cut_rate}, a pod deleted every "
                f"{self.settings.kill_every[0]:g}-{self.settings.kill_every[1]:g} s, "
                f"PRAVAH_CHAOS_SEED={plan.seed}"]


def unaudited_jobs(control_plane, created: list[CreatedJob]) -> list[str]:
    """Jobs of PravahJobs that exist but were not created through the proxy: the operator
    bypassed it, so the one-Job count above would prove nothing."""
    seen = {job.uid for job in created}
    jobs = json.loads(control_plane.kubectl("get", "jobs", "--all-namespaces", "-o", "json").stdout)["items"]
    return [f"Job {job['metadata']['namespace']}/{job['metadata']['name']} was not created through the chaos proxy"
            for job in jobs
            if job["metadata"]["uid"] not in seen
            and any(owner.get("kind") == "PravahJob" for owner in job["metadata"].get("ownerReferences", []))]


def route_operator(control_plane, port: int | None) -> None:
    """Point the operator's in-cluster configuration at the proxy (or back at the API server)."""
    operator = InstalledOperator(control_plane)
    changes = [f"KUBERNETES_SERVICE_HOST={HOST_IP}", f"KUBERNETES_SERVICE_PORT={port}"] if port else \
        ["KUBERNETES_SERVICE_HOST-", "KUBERNETES_SERVICE_PORT-"]
    operator.kubectl("set", "env", f"deployment/{OPERATOR_DEPLOYMENT}", *changes)
    operator.rollout()


@pytest.fixture(scope="session", autouse=True)
def chaos(request) -> Iterator[Chaos | None]:
    """With PRAVAH_CHAOS=1: the proxy and the killer for the whole e2e session."""
    if not enabled():
        yield None
        return
    settings = ChaosSettings.from_env()
    control_plane = request.getfixturevalue("control_plane")
    request.getfixturevalue("pravah")
    serving = control_plane.pki.issue("chaos-proxy", "pravah-chaos-proxy", server=True, ips=(HOST_IP,))
    proxy = FaultProxy(control_plane.server, control_plane.ca, serving.cert, serving.key, HOST_IP, settings.plan)
    port = proxy.start()
    killer = OperatorKiller(control_plane, settings.kill_every, settings.plan.seed)
    state = Chaos(settings, proxy, killer)
    request.config.stash[CHAOS] = state
    try:
        route_operator(control_plane, port)
        wait_for(lambda: proxy.snapshot()[1] + sum(proxy.snapshot()[0].values()), 120,
                 "the operator's first request through the chaos proxy")
        killer.start()
        yield state
    finally:
        killer.stop()
        route_operator(control_plane, None)
        proxy.stop()


@pytest.fixture(autouse=True)
def chaos_invariants(request, chaos) -> Iterator[None]:
    """After each test in chaos mode: one Job per PravahJob, nothing stored twice."""
    if chaos is None:
        yield
        return
    control_plane, pravah = request.getfixturevalue("control_plane"), request.getfixturevalue("pravah")
    yield
    found = chaos.violations(control_plane, pravah.database_url)
    if found:
        pytest.fail("chaos invariants broken:\n" + "\n".join(found), pytrace=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    state = config.stash.get(CHAOS, None)
    if state is None:
        return
    terminalreporter.section("chaos")
    for line in state.summary():
        terminalreporter.write_line(line)
