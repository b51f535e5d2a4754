import { useEffect, useState } from "react";

import { ApiError } from "../api/client";
import type { HistoryEntry, JobErrors, JobLogs, ShardProgress, Shards } from "../api/types";
import { useAccount } from "../auth/account";
import { formatTime } from "../common/format";
import { Pager } from "../common/Pager";
import { ProgressBar } from "../common/ProgressBar";

function message(caught: unknown): string {
  return caught instanceof ApiError ? caught.message : "The API cannot be reached.";
}

/** Fetches `path` (a page of it, with limit/offset) whenever one of them or `refresh` changes. */
function useFetched<T>(path: string, refresh: string, limit?: number, offset?: number) {
  const { client } = useAccount();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    client.get<T>(path, limit === undefined ? undefined : { limit, offset }, controller.signal).then(
      (answer) => { setData(answer); setError(null); },
      (caught) => { if (!controller.signal.aborted) setError(message(caught)); });
    return () => controller.abort();
  }, [client, path, limit, offset, refresh]);
  return { data, error };
}

export function Timeline({ jobPath, refresh }: { jobPath: string; refresh: string }) {
  const { data, error } = useFetched<{ items: HistoryEntry[] }>(`${jobPath}/history`, refresh);
  const items = data?.items ?? null;
  return (
    <section className="card" aria-labelledby="timeline-title">
      <h2 id="timeline-title">Timeline</h2>
      {error && <p className="error" role="alert">{error}</p>}
      <ol className="timeline" data-testid="job-timeline">
        {items?.map((entry, index) => (
          <li key={index} className={`timeline-${entry.kind} ${entry.type === "Warning" || entry.status === "False" ? "warn" : ""}`}>
            <time dateTime={entry.time ?? undefined}>{formatTime(entry.time)}</time>
            <span className="badge">{entry.kind === "condition" ? `${entry.type}=${entry.status ?? "?"}` : entry.type}</span>
            <strong>{entry.reason}</strong>
            {entry.message && <span> — {entry.message}</span>}
            {entry.count && entry.count > 1 ? <span className="muted"> (×{entry.count})</span> : null}
          </li>
        ))}
      </ol>
      {items && items.length === 0 && <p className="empty">Nothing happened yet.</p>}
    </section>
  );
}

/** Done share of one shard: by bytes, by files when its files are empty. */
export function shardPercent(row: ShardProgress): number {
  if (row.bytesTotal > 0) return Math.floor((100 * row.bytesDone) / row.bytesTotal);
  return row.filesTotal > 0 ? Math.floor((100 * row.filesDone) / row.filesTotal) : 100;
}

export function ShardBars({ shards, jobPath, refresh }: { shards: Shards | null; jobPath: string; refresh: string }) {
  const { data, error } = useFetched<{ items: ShardProgress[] }>(`${jobPath}/shards`, refresh);
  const rows = data?.items ?? null;
  const states = shards?.total
    ? `${shards.succeeded ?? 0} succeeded, ${shards.active ?? 0} running, ${shards.failed ?? 0} failed of ${shards.total}`
    : "Not planned yet.";
  return (
    <section className="card" aria-labelledby="shards-title" data-testid="job-shards">
      <h2 id="shards-title">Shards</h2>
      <p>{states}</p>
      {error && <p className="error" role="alert">{error}</p>}
      {rows && rows.length === 0 && <p className="muted">The file list is not stored yet.</p>}
      <ul className="shard-list">
        {rows?.map((row) => (
          <li key={row.shard}>
            <span>Shard {row.shard}: {row.filesDone} of {row.filesTotal} files{row.errors ? `, ${row.errors} failed` : ""}</span>
            <ProgressBar percent={shardPercent(row)} label={`Progress of shard ${row.shard}`}
              testId={`shard-progress-${row.shard}`} />
          </li>
        ))}
      </ul>
    </section>
  );
}

const ERRORS_PAGE = 20;

export function ErrorTable({ jobPath, refresh }: { jobPath: string; refresh: string }) {
  const [offset, setOffset] = useState(0);
  const { data, error } = useFetched<JobErrors>(`${jobPath}/errors`, refresh, ERRORS_PAGE, offset);
  return (
    <section className="card" aria-labelledby="errors-title">
      <h2 id="errors-title">Failed files</h2>
      {error && <p className="error" role="alert">{error}</p>}
      <div className="table-wrap">
        <table data-testid="job-errors">
          <thead><tr><th scope="col">Path</th><th scope="col">Line</th><th scope="col">Reason</th><th scope="col">Shard</th></tr></thead>
          <tbody>
            {data?.items.map((item, index) => (
              <tr key={`${item.path}-${index}`}>
                <td className="path">{item.path}</td>
                <td>{item.line ?? "–"}</td>
                <td>{item.reason}</td>
                <td>{item.shard}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {data && <Pager label="Failed files" offset={offset} limit={ERRORS_PAGE} total={data.total}
        onOffset={setOffset} testIdPrefix="errors-page" />}
    </section>
  );
}

const LOGS_PAGE = 4;

export function LogsPanel({ jobPath, refresh }: { jobPath: string; refresh: string }) {
  const [offset, setOffset] = useState(0);
  const [reload, setReload] = useState(0);
  const { data, error } = useFetched<JobLogs>(`${jobPath}/logs`, `${refresh}/${reload}`, LOGS_PAGE, offset);
  return (
    <section className="card" aria-labelledby="logs-title" data-testid="job-logs">
      <div className="section-head">
        <h2 id="logs-title">Runner logs</h2>
        <button type="button" onClick={() => setReload((count) => count + 1)}>Refresh logs</button>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {data && <p className="muted">{data.source === "pods" ? "From the running pods." : data.source === "archive"
        ? "From the archive (the pods are gone)." : "No logs yet."}</p>}
      {data?.entries.map((entry) => (
        <details key={`${entry.pod}-${entry.createdAt ?? ""}`} className="log-entry" open={data.entries.length === 1}>
          <summary>
            Shard {entry.shard ?? "–"} · <span className="path">{entry.pod}</span>
            {entry.truncated && ` (first ${data.maxBytes} bytes)`}
          </summary>
          <pre tabIndex={0}>{entry.log}</pre>
        </details>
      ))}
      {data && <Pager label="Logs" offset={offset} limit={LOGS_PAGE} total={data.total} onOffset={setOffset}
        testIdPrefix="logs-page" />}
    </section>
  );
}
