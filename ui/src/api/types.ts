// Shapes of the REST API's answers (api/pravah_api/models.py, operator status.py).

export type Phase = "Pending" | "Queued" | "Running" | "Succeeded" | "Failed" | "Cancelled";
export const PHASES: Phase[] = ["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled"];
export const TERMINAL_PHASES: Phase[] = ["Succeeded", "Failed", "Cancelled"];

export type AuthMode = "kubernetes" | "standalone";

export interface OperationInfo {
  type: string;
  description: string;
  options: JsonSchema | null;
  defaults: Record<string, unknown>;
}

export type JsonSchema = Record<string, unknown>;

export interface ConfigInfo {
  apiVersion: string;
  kind: string;
  authMode: AuthMode;
  operations: OperationInfo[];
  spec: JsonSchema;
  defaults: Record<string, unknown>;
  limits: { maxPageSize: number; tokenTtlSeconds?: number | null } & Record<string, unknown>;
}

export interface WhoAmI {
  name: string;
  groups: string[];
  mode: AuthMode;
  role: "viewer" | "submitter" | "admin" | null;
  namespaces: string[] | null;
}

export interface JobLinks {
  self: string;
  results: string;
  events: string;
  logs: string;
}

export interface JobSummary {
  id: string;
  name: string;
  namespace: string;
  phase: Phase | null;
  percent: number | null;
  shards: Shards | null;
  errorCount: number;
  createdAt: string | null;
  links: JobLinks;
}

export interface JobList {
  items: JobSummary[];
  next: string | null;
}

export interface Shards {
  total?: number | null;
  active?: number | null;
  succeeded?: number | null;
  failed?: number | null;
  ready?: string | null;
}

export interface Progress {
  filesTotal?: number | null;
  filesDone?: number | null;
  bytesTotal?: number | null;
  bytesDone?: number | null;
  percent?: number | null;
  bytesPerSecond?: number | null;
  files?: string | null;
  throughput?: string | null;
}

export interface ErrorSample {
  path: string;
  reason: string;
  line?: number | null;
}

export interface Errors {
  count?: number;
  samples?: ErrorSample[];
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastTransitionTime: string;
}

export interface JobStatus {
  phase?: Phase | null;
  reason?: string | null;
  message?: string | null;
  startTime?: string | null;
  completionTime?: string | null;
  conditions?: Condition[] | null;
  shards?: Shards | null;
  progress?: Progress | null;
  errors?: Errors | null;
  result?: { uri?: string | null; summary?: Record<string, unknown> | null } | null;
}

export interface Timings {
  createdAt?: string | null;
  startedAt?: string | null;
  completedAt?: string | null;
  durationSeconds?: number | null;
}

export interface Job extends JobSummary {
  spec: Record<string, unknown>;
  status: JobStatus | null;
  progress: Progress | null;
  shards: Shards | null;
  errors: Errors | null;
  timings: Timings;
  resultUri: string | null;
}

/** The `status` and `end` events of GET /jobs/{id}/events (jobs.py `snapshot`). */
export interface JobSnapshot {
  id: string;
  phase: Phase | null;
  reason: string | null;
  message: string | null;
  progress: Progress | null;
  shards: Shards | null;
  errors: { count: number };
  result?: { uri?: string | null; summary?: Record<string, unknown> | null };
}

export interface LogEntry {
  shard: number | null;
  pod: string;
  log: string;
  truncated: boolean;
  createdAt: string | null;
}

export interface JobLogs {
  source: "pods" | "archive" | "none";
  maxBytes: number;
  total: number;
  entries: LogEntry[];
}

export interface FileError {
  path: string;
  line: number | null;
  reason: string;
  shard: number;
}

export interface JobErrors {
  total: number;
  items: FileError[];
}

export interface ShardProgress {
  shard: number;
  filesTotal: number;
  filesDone: number;
  bytesTotal: number;
  bytesDone: number;
  errors: number;
}

export interface HistoryEntry {
  time: string | null;
  kind: "condition" | "event";
  type: string;
  status?: string | null;
  reason: string;
  message: string;
  count?: number | null;
}

export interface JobHistory {
  items: HistoryEntry[];
}

export interface ApiErrorBody {
  error: { code: string; message: string; field: string | null };
}
