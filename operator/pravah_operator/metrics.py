"""Prometheus metrics of the operator, served on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

JOBS = Gauge("pravah_jobs", "PravahJobs seen by this operator, by phase.", ["phase"])
DURATION = Histogram("pravah_job_duration_seconds", "Wall time from start to completion of finished jobs.",
                     buckets=(1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 7200, 21600, 86400))
FILES = Counter("pravah_files_processed_total", "Files processed by finished jobs.", ["operation"])
BYTES = Counter("pravah_bytes_processed_total", "Bytes processed by finished jobs.", ["operation"])
ERRORS = Counter("pravah_file_errors_total", "Files that could not be processed.", ["operation"])
ENDED = Counter("pravah_jobs_ended_total", "Jobs that reached a final phase, by phase and reason.",
                ["phase", "reason"])
PHASES = ("Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled")

_phase_of: dict[str, str] = {}


def serve(port: int) -> None:
    if port:
        start_http_server(port)
    for phase in PHASES:
        JOBS.labels(phase=phase).set(0)


def phase_changed(uid: str, phase: str) -> None:
    previous = _phase_of.get(uid)
    if previous == phase:
        return
    if previous is not None:
        JOBS.labels(phase=previous).dec()
    JOBS.labels(phase=phase).inc()
    _phase_of[uid] = phase


def forget(uid: str) -> None:
    phase = _phase_of.pop(uid, None)
    if phase is not None:
        JOBS.labels(phase=phase).dec()


def job_ended(phase: str, reason: str) -> None:
    ENDED.labels(phase=phase, reason=reason).inc()


def job_finished(operation: str, files: int, bytes_done: int, errors: int, seconds: float) -> None:
    DURATION.observe(seconds)
    FILES.labels(operation=operation).inc(files)
    BYTES.labels(operation=operation).inc(bytes_done)
    ERRORS.labels(operation=operation).inc(errors)
