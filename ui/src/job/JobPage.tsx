import { useCallback, useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { stringify } from "yaml";

import { ApiError } from "../api/client";
import { followJob } from "../api/events";
import { TERMINAL_PHASES, type Job, type JobSummary } from "../api/types";
import { useAccount } from "../auth/account";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { formatBytes, formatDuration, formatTime } from "../common/format";
import { PhaseBadge } from "../common/PhaseBadge";
import { useBlobUrl } from "../common/useBlobUrl";
import { ProgressBar } from "../common/ProgressBar";
import { ResultsView } from "../results/ResultsView";
import type { ResultDocument } from "../results/types";
import { ErrorTable, LogsPanel, ShardBars, Timeline } from "./JobSections";
import { applySnapshot } from "./liveJob";

type Confirming = "cancel" | "delete" | null;

function messageOf(caught: unknown): string {
  return caught instanceof ApiError ? caught.message : "The API cannot be reached.";
}

export function JobPage() {
  const { id = "" } = useParams();
  const { client, logout } = useAccount();
  const navigate = useNavigate();
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [streamNotice, setStreamNotice] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<Confirming>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [result, setResult] = useState<{ document: ResultDocument; text: string } | null>(null);
  const [resultError, setResultError] = useState<string | null>(null);
  const jobPath = `/jobs/${encodeURIComponent(id)}`;
  const phase = job?.phase ?? null;
  const terminal = phase !== null && TERMINAL_PHASES.includes(phase);

  const load = useCallback(async (signal?: AbortSignal) => {
    try {
      setJob(await client.get<Job>(jobPath, undefined, signal));
      setError(null);
    } catch (caught) {
      if (!signal?.aborted) setError(messageOf(caught));
    }
  }, [client, jobPath]);

  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load]);

  // Live updates while the job runs; at its end the full job is read once more.
  useEffect(() => {
    if (!job || terminal) return;
    return followJob(job.links.events, client.token, {
      onStatus: (snapshot) => setJob((old) => (old ? applySnapshot(old, snapshot) : old)),
      onEnd: (reason, text) => {
        if (reason === "end") load();
        else if (reason === "deleted") setError("This job was deleted.");
        else setStreamNotice(text ?? "Live updates stopped.");
      },
      onUnauthorized: () => logout(),
    });
    // Connects again only when the job or its finished state changes, not on every update.
  }, [job?.id, terminal, client, load, logout]);

  const hasResult = phase === "Succeeded" || Boolean(job?.status?.result);
  const resultDownload = useBlobUrl(result?.text ?? null, "application/json");

  useEffect(() => {
    if (!hasResult) return;
    const controller = new AbortController();
    client.getText(`${jobPath}/results`, controller.signal).then(
      (text) => { setResult({ document: JSON.parse(text) as ResultDocument, text }); setResultError(null); },
      (caught) => { if (!controller.signal.aborted) setResultError(messageOf(caught)); });
    return () => controller.abort();
  }, [client, jobPath, hasResult]);

  // A new job over the files that failed or never finished here, merged with this job's good partials.
  async function rerun() {
    setActionError(null);
    try {
      const created = await client.post<JobSummary>(`${jobPath}/rerun`, {});
      navigate(`/jobs/${encodeURIComponent(created.id)}`);
    } catch (caught) {
      setActionError(messageOf(caught));
    }
  }

  async function act(kind: "cancel" | "delete") {
    setConfirming(null);
    setActionError(null);
    try {
      if (kind === "delete") {
        await client.delete(jobPath, { purge: true });
        navigate("/");
        return;
      }
      await client.delete(jobPath);
      await load();
    } catch (caught) {
      setActionError(messageOf(caught));
    }
  }

  if (error && !job) {
    return (
      <main className="page" data-testid="job-page">
        <p className="error" role="alert">{error}</p>
        <Link to="/">Back to the jobs</Link>
      </main>
    );
  }
  if (!job) return <main className="page" data-testid="job-page"><p role="status">Loading…</p></main>;

  const progress = job.progress;
  const operation = (job.spec.operation ?? {}) as { type?: string; grep?: { ignoreCase?: boolean } };
  const refresh = `${phase}/${job.errors?.count ?? 0}/${job.status?.reason ?? ""}`;

  return (
    <main className="page" data-testid="job-page">
      <p><Link to="/">← Jobs</Link></p>
      {error && <p className="error" role="alert">{error}</p>}
      <header className="card job-header">
        <div className="page-head">
          <h1>{job.name} <span className="muted">in {job.namespace}</span></h1>
          <div className="actions">
            {!terminal && <button type="button" data-testid="job-cancel" onClick={() => setConfirming("cancel")}>Cancel</button>}
            {terminal && !job.spec.rerunOf && (phase !== "Succeeded" || (job.errors?.count ?? 0) > 0) && (
              <button type="button" data-testid="job-rerun" onClick={rerun}
                title="A new job over the files that failed or never finished, merged with this job's good results">
                Re-run failed files
              </button>)}
            <button type="button" className="danger" data-testid="job-delete" onClick={() => setConfirming("delete")}>Delete</button>
          </div>
        </div>
        <div className="job-summary">
          <PhaseBadge phase={job.phase} testId="job-phase" />
          <ProgressBar percent={progress?.percent ?? job.percent} label="Job progress" testId="job-progress" />
          <span data-testid="job-throughput">{!terminal && progress?.throughput ? progress.throughput : ""}</span>
        </div>
        {job.status?.message && <p>{job.status.reason && <strong>{job.status.reason}: </strong>}{job.status.message}</p>}
        <dl className="facts wide">
          <dt>Operation</dt><dd>{operation.type ?? "–"}</dd>
          <dt>Files</dt><dd>{progress?.files ?? "–"}</dd>
          <dt>Bytes</dt><dd>{formatBytes(progress?.bytesDone)} of {formatBytes(progress?.bytesTotal)}</dd>
          <dt>Failed files</dt><dd>{job.errors?.count ?? 0}</dd>
          <dt>Created</dt><dd>{formatTime(job.timings.createdAt)}</dd>
          <dt>Started</dt><dd>{formatTime(job.timings.startedAt)}</dd>
          <dt>Finished</dt><dd>{formatTime(job.timings.completedAt)}</dd>
          <dt>Duration</dt><dd>{formatDuration(job.timings.durationSeconds)}</dd>
          <dt>Result</dt><dd>{job.resultUri ? <code data-testid="job-result-uri">{job.resultUri}</code> : "–"}</dd>
          <dt>Id</dt><dd><code>{job.id}</code></dd>
        </dl>
        {streamNotice && <p className="notice" role="status">{streamNotice}</p>}
        {actionError && <p className="error" role="alert">{actionError}</p>}
      </header>

      <div className="job-grid">
        <ShardBars shards={job.shards} jobPath={jobPath} refresh={`${refresh}/${job.progress?.filesDone ?? 0}`} />
        <Timeline jobPath={jobPath} refresh={refresh} />
      </div>

      <section className="card" aria-labelledby="results-title">
        <div className="section-head">
          <h2 id="results-title">Results</h2>
          {resultDownload && <a className="button" href={resultDownload} download={`${job.name}-result.json`}>Download result.json</a>}
        </div>
        {result ? <ResultsView document={result.document} ignoreCase={Boolean(operation.grep?.ignoreCase)} />
          : <p className="muted">{resultError ?? (terminal ? "This job has no result." : "Results appear when the job has succeeded.")}</p>}
      </section>

      <ErrorTable jobPath={jobPath} refresh={refresh} />
      <LogsPanel jobPath={jobPath} refresh={refresh} />

      <section className="card" aria-labelledby="spec-title">
        <h2 id="spec-title">Spec</h2>
        <pre data-testid="job-spec" tabIndex={0} aria-labelledby="spec-title">{stringify(job.spec)}</pre>
      </section>

      {confirming && (
        <ConfirmDialog
          title={confirming === "cancel" ? `Cancel ${job.name}?` : `Delete ${job.name}?`}
          message={confirming === "cancel"
            ? "The runner pods stop and the job ends as Cancelled. Files already processed stay processed."
            : "The PravahJob is deleted. Its history is kept, but it leaves this list."}
          confirmLabel={confirming === "cancel" ? "Cancel the job" : "Delete the job"}
          onConfirm={() => act(confirming)}
          onCancel={() => setConfirming(null)} />
      )}
    </main>
  );
}
