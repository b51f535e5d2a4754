import { useCallback, useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { ApiError } from "../api/client";
import { followJob } from "../api/events";
import { PHASES, TERMINAL_PHASES, type JobList, type JobSnapshot, type JobSummary } from "../api/types";
import { useAccount } from "../auth/account";
import { age } from "../common/format";
import { PhaseBadge } from "../common/PhaseBadge";
import { ProgressBar } from "../common/ProgressBar";

const PAGE_SIZE = 20;
// Progress is live (one event stream for the page's unfinished jobs, GET /jobs/events); the
// page itself is read again now and then for jobs created or removed meanwhile.
const LIST_REFRESH_MS = 15000;
const NAME_DEBOUNCE_MS = 300;

const finished = (job: { phase: JobSummary["phase"] }) => job.phase !== null && TERMINAL_PHASES.includes(job.phase);

export function JobsPage() {
  const { client, whoami, logout } = useAccount();
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const namespace = params.get("namespace") ?? "";
  const phase = params.get("phase") ?? "";
  const name = params.get("name") ?? "";
  const [nameInput, setNameInput] = useState(name);
  // The `continue` tokens of the pages before the current one: the way back.
  const [pageTokens, setPageTokens] = useState<(string | null)[]>([null]);
  const [list, setList] = useState<JobList | null>(null);
  const [live, setLive] = useState<Record<string, JobSnapshot>>({});
  const [error, setError] = useState<string | null>(null);
  const current = pageTokens[pageTokens.length - 1];

  const setFilter = useCallback((key: string, value: string) => {
    setParams((old) => {
      const next = new URLSearchParams(old);
      if (value) next.set(key, value);
      else next.delete(key);
      return next;
    }, { replace: true });
    setPageTokens([null]);
  }, [setParams]);

  useEffect(() => {
    if (nameInput === name) return;
    const timer = window.setTimeout(() => setFilter("name", nameInput), NAME_DEBOUNCE_MS);
    return () => window.clearTimeout(timer);
  }, [nameInput, name, setFilter]);

  useEffect(() => {
    const controller = new AbortController();
    let timer = 0;
    async function load() {
      try {
        const page = await client.get<JobList>("/jobs",
          { namespace, phase, name, limit: PAGE_SIZE, continue: current }, controller.signal);
        setList(page);
        setError(null);
      } catch (caught) {
        if (controller.signal.aborted) return;
        if (caught instanceof ApiError && caught.status === 410) {
          setPageTokens([null]); // the continue token expired: start again from the first page
          return;
        }
        setError(caught instanceof ApiError ? caught.message : "The API cannot be reached.");
      }
      if (!controller.signal.aborted) timer = window.setTimeout(load, LIST_REFRESH_MS);
    }
    load();
    return () => {
      controller.abort();
      window.clearTimeout(timer);
    };
  }, [client, namespace, phase, name, current]);

  // One stream for the unfinished jobs of the page; it starts again when that set changes.
  const followed = useMemo(() => (list?.items ?? []).filter((job) => !finished(job)).map((job) => job.id)
    .sort().join(","), [list]);
  useEffect(() => {
    if (!followed) return;
    return followJob(`/jobs/events?ids=${followed}`, client.token, {
      onStatus: (snapshot) => setLive((old) => ({ ...old, [snapshot.id]: snapshot })),
      onEnd: () => {},
      onUnauthorized: () => logout(),
    });
  }, [followed, client, logout]);

  return (
    <main className="page">
      <div className="page-head">
        <h1>Jobs</h1>
        <button type="button" className="primary" data-testid="new-job" onClick={() => navigate("/new")}>New job</button>
      </div>
      <form className="filters" role="search" aria-label="Filter jobs" onSubmit={(event) => event.preventDefault()}>
        <label>
          Namespace
          {whoami.namespaces ? (
            <select data-testid="filter-namespace" value={namespace}
              onChange={(event) => setFilter("namespace", event.target.value)}>
              <option value="">All of mine</option>
              {whoami.namespaces.map((item) => <option key={item} value={item}>{item}</option>)}
            </select>
          ) : (
            <input data-testid="filter-namespace" defaultValue={namespace} placeholder="all"
              onBlur={(event) => setFilter("namespace", event.target.value.trim())}
              onKeyDown={(event) => {
                if (event.key === "Enter") setFilter("namespace", event.currentTarget.value.trim());
              }} />
          )}
        </label>
        <label>
          Phase
          <select data-testid="filter-phase" value={phase} onChange={(event) => setFilter("phase", event.target.value)}>
            <option value="">Any</option>
            {PHASES.map((item) => <option key={item} value={item}>{item}</option>)}
          </select>
        </label>
        <label>
          Name contains
          <input data-testid="filter-name" type="search" value={nameInput}
            onChange={(event) => setNameInput(event.target.value)} />
        </label>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
      <div className="table-wrap">
        <table data-testid="jobs-table" className="jobs">
          <caption className="visually-hidden">Jobs, with live progress</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Namespace</th>
              <th scope="col">Phase</th>
              <th scope="col">Progress</th>
              <th scope="col">Throughput</th>
              <th scope="col">Shards</th>
              <th scope="col">Errors</th>
              <th scope="col">Age</th>
            </tr>
          </thead>
          <tbody>
            {list?.items.map((job) => {
              const detail = live[job.id];
              const progress = detail?.progress;
              const done = finished(detail ?? job);
              return (
                <tr key={job.id} data-testid={`job-row-${job.name}`}>
                  <th scope="row" data-label="Name"><Link to={`/jobs/${job.id}`}>{job.name}</Link></th>
                  <td data-label="Namespace">{job.namespace}</td>
                  <td data-label="Phase"><PhaseBadge phase={detail?.phase ?? job.phase} testId={`phase-${job.name}`} /></td>
                  <td data-label="Progress">
                    <ProgressBar percent={progress?.percent ?? job.percent} label={`Progress of ${job.name}`}
                      testId={`progress-${job.name}`} />
                  </td>
                  <td data-label="Throughput">{done ? "–" : progress?.throughput ?? "–"}</td>
                  <td data-label="Shards">{(detail?.shards ?? job.shards)?.ready ?? "–"}</td>
                  <td data-label="Errors">{detail?.errors.count ?? job.errorCount}</td>
                  <td data-label="Age"><time dateTime={job.createdAt ?? undefined}>{age(job.createdAt)}</time></td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {list && list.items.length === 0 && <p className="empty">No jobs on this page.</p>}
        {!list && !error && <p role="status">Loading…</p>}
      </div>
      <div className="pager" role="group" aria-label="Job pages">
        <button type="button" data-testid="page-prev" disabled={pageTokens.length <= 1}
          onClick={() => setPageTokens((tokens) => tokens.slice(0, -1))}>Previous</button>
        <span>Page {pageTokens.length}</span>
        <button type="button" data-testid="page-next" disabled={!list?.next}
          onClick={() => list?.next && setPageTokens((tokens) => [...tokens, list.next])}>Next</button>
      </div>
    </main>
  );
}
