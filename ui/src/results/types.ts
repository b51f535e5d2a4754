// Result documents as the engine writes them (result.json), per operation.

export interface FileFailure {
  path: string;
  reason: string;
  line?: number | null;
}

export interface CheckOutcome {
  rule: string;
  column?: string;
  severity: "error" | "warn";
  passed: boolean;
  observed?: unknown;
}

interface DocumentBase {
  files: number;
  bytes: number;
  errors: FileFailure[];
  threads?: number;
  shards?: number;
  checks?: { passed: boolean; failed: number; warned: number; results: CheckOutcome[] };
}

export interface StatsColumn {
  name: string;
  type: string;
  count: number;
  nulls: number;
  distinct: number | null;
  min: number | string | null;
  max: number | string | null;
  mean: number | null;
  stddev: number | null;
  quantiles: Record<string, number> | null;
  top: { value: string; count: number }[] | null;
  /** The formats of the files it came from, when a job mixed formats. */
  formats?: string[];
  /** How many values of each JSON kind it held, when it came from NDJSON. */
  jsonTypes?: Record<string, number>;
}

/** The CSV dialect a file was read with, when it was sniffed (`delimiter: auto`, ...). */
export interface SniffedDialect {
  path: string;
  delimiter: string;
  quote: string | null;
  headerRows: number;
}

export interface StatsDocument extends DocumentBase {
  operation: "stats";
  result: {
    rows: number;
    columns: StatsColumn[];
    badRows?: { total: number; rows: FileFailure[] };
    dialects?: SniffedDialect[];
  };
}

export interface CountFile {
  path: string;
  lines: number;
  words: number;
  bytes: number;
}

export interface CountDocument extends DocumentBase {
  operation: "count";
  result: { lines: number; words: number; bytes: number; files: CountFile[] };
}

export interface ChecksumFile {
  path: string;
  digest: string;
  bytes: number;
}

export interface ChecksumDocument extends DocumentBase {
  operation: "checksum";
  result: { algorithm: string; files: ChecksumFile[]; manifest?: string | null };
}

export interface GrepFile {
  path: string;
  matches: number;
  lines: { line: number; text: string }[];
}

export interface GrepDocument extends DocumentBase {
  operation: "grep";
  result: { pattern: string; matches: number; files_with_matches: number; files: GrepFile[] };
}

export interface ConvertOutput {
  path: string;
  source: string;
  rows: number;
}

export interface ConvertDocument extends DocumentBase {
  operation: "convert";
  result: {
    format: string;
    compression: string;
    rows: number;
    outputs: ConvertOutput[];
    schema: { name: string; type: string }[];
  };
}

export type ResultDocument = StatsDocument | CountDocument | ChecksumDocument | GrepDocument | ConvertDocument;
