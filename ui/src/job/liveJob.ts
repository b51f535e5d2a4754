import type { Job, JobSnapshot } from "../api/types";

/** The job as last read, with a live `status` event's snapshot laid over it. */
export function applySnapshot(job: Job, snapshot: JobSnapshot): Job {
  const status = {
    ...(job.status ?? {}),
    phase: snapshot.phase,
    reason: snapshot.reason,
    message: snapshot.message,
    progress: snapshot.progress,
    shards: snapshot.shards,
    errors: { ...(job.status?.errors ?? {}), count: snapshot.errors.count },
    ...(snapshot.result ? { result: snapshot.result } : {}),
  };
  return {
    ...job,
    phase: snapshot.phase,
    percent: snapshot.progress?.percent ?? job.percent,
    progress: snapshot.progress,
    shards: snapshot.shards,
    errors: status.errors,
    status,
    resultUri: snapshot.result?.uri ?? job.resultUri,
  };
}
