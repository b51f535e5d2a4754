// Result document -> what the charts and tables draw. Pure functions, no React.
import type {
  ChecksumDocument, ConvertDocument, CountDocument, CountFile, GrepDocument, StatsColumn, StatsDocument,
} from "./types";

// -- stats ------------------------------------------------------------------------------

export interface DistributionPoint {
  /** Quantile in [0, 1]; 0 is the minimum and 1 the maximum. */
  quantile: number;
  label: string;
  value: number;
}

export interface ColumnCard {
  name: string;
  type: string;
  count: number;
  nulls: number;
  /** Values and nulls: every row of the column. */
  rows: number;
  /** nulls / rows, 0 for an empty column. */
  nullFraction: number;
  min: number | string | null;
  max: number | string | null;
  mean: number | null;
  stddev: number | null;
  distinct: number | null;
  distribution: DistributionPoint[];
  top: { value: string; count: number }[];
  /** Formats it came from; empty unless the job mixed formats. */
  formats: string[];
  /** JSON kinds and their counts, most frequent first; empty unless it came from NDJSON. */
  jsonTypes: [string, number][];
}

export function quantileLabel(quantile: number): string {
  if (quantile === 0) return "min";
  if (quantile === 1) return "max";
  return `p${Number((quantile * 100).toPrecision(4))}`;
}

/**
 * The column's value at each quantile, in quantile order, with the minimum and maximum as
 * its ends when they are numbers: the estimated cumulative distribution.
 */
export function distribution(column: StatsColumn): DistributionPoint[] {
  if (!column.quantiles) return [];
  const points = Object.entries(column.quantiles)
    .map(([key, value]) => ({ quantile: Number(key), value }))
    .filter((point) => Number.isFinite(point.quantile) && Number.isFinite(point.value));
  if (typeof column.min === "number") points.push({ quantile: 0, value: column.min });
  if (typeof column.max === "number") points.push({ quantile: 1, value: column.max });
  const byQuantile = new Map(points.map((point) => [point.quantile, point.value]));
  return [...byQuantile.entries()]
    .sort(([a], [b]) => a - b)
    .map(([quantile, value]) => ({ quantile, label: quantileLabel(quantile), value }));
}

export function columnCards(document: StatsDocument): ColumnCard[] {
  return document.result.columns.map((column) => {
    const rows = column.count + column.nulls;
    return {
      name: column.name,
      type: column.type,
      count: column.count,
      nulls: column.nulls,
      rows,
      nullFraction: rows === 0 ? 0 : column.nulls / rows,
      min: column.min,
      max: column.max,
      mean: column.mean,
      stddev: column.stddev,
      distinct: column.distinct,
      distribution: distribution(column),
      top: [...(column.top ?? [])].sort((a, b) => b.count - a.count),
      formats: column.formats ?? [],
      jsonTypes: Object.entries(column.jsonTypes ?? {}).sort(([, a], [, b]) => b - a),
    };
  });
}

export type StatsSortKey = "name" | "type" | "count" | "nulls" | "distinct" | "min" | "max" | "mean" | "stddev";
export type SortDirection = "ascending" | "descending";

function compareValues(a: unknown, b: unknown): number {
  const missingA = a === null || a === undefined;
  const missingB = b === null || b === undefined;
  if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1; // missing values last
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1; // numbers before text in a mixed column (min/max)
  if (typeof b === "number") return 1;
  return String(a).localeCompare(String(b));
}

/** The cards sorted by one column of the table; missing values stay last either way. */
export function sortColumns(cards: ColumnCard[], key: StatsSortKey, direction: SortDirection): ColumnCard[] {
  const sign = direction === "ascending" ? 1 : -1;
  return [...cards].sort((left, right) => {
    const a = left[key];
    const b = right[key];
    if (a === null || a === undefined || b === null || b === undefined) return compareValues(a, b);
    return sign * compareValues(a, b);
  });
}

// -- count ------------------------------------------------------------------------------

export interface CountTotals {
  files: number;
  lines: number;
  words: number;
  bytes: number;
}

export function countTotals(document: CountDocument): CountTotals {
  const { lines, words, bytes } = document.result;
  return { files: document.files, lines, words, bytes };
}

/** The `limit` largest files by bytes (ties by path), each with a short name for chart axes. */
export function largestFiles(document: CountDocument, limit = 10): (CountFile & { label: string })[] {
  return [...document.result.files]
    .sort((a, b) => b.bytes - a.bytes || a.path.localeCompare(b.path))
    .slice(0, limit)
    .map((file) => ({ ...file, label: baseName(file.path) }));
}

// -- checksum ---------------------------------------------------------------------------

/** The `sha256sum -c` (or b3sum) manifest: "<digest>  <path>" per file. */
export function checksumManifest(document: ChecksumDocument): string {
  return document.result.files.map((file) => `${file.digest}  ${file.path}\n`).join("");
}

export function manifestFileName(document: ChecksumDocument): string {
  return `${document.result.algorithm}sums.txt`;
}

// -- grep -------------------------------------------------------------------------------

export function matchesPerFile(document: GrepDocument): { path: string; label: string; matches: number }[] {
  return document.result.files
    .map((file) => ({ path: file.path, label: baseName(file.path), matches: file.matches }))
    .sort((a, b) => b.matches - a.matches || a.path.localeCompare(b.path));
}

export interface TextSegment {
  text: string;
  match: boolean;
}

/**
 * `text` cut into the parts the pattern matches and the rest. The engine speaks Rust regex;
 * a pattern JavaScript cannot compile is shown without highlights rather than wrongly.
 */
export function highlight(text: string, pattern: string, ignoreCase = false): TextSegment[] {
  let expression: RegExp;
  let source = pattern;
  let flags = "gu";
  if (source.startsWith("(?i)")) {
    source = source.slice(4);
    ignoreCase = true;
  }
  if (ignoreCase) flags += "i";
  try {
    expression = new RegExp(source, flags);
  } catch {
    return [{ text, match: false }];
  }
  const segments: TextSegment[] = [];
  let position = 0;
  for (const found of text.matchAll(expression)) {
    const start = found.index ?? 0;
    if (found[0] === "") continue; // empty matches highlight nothing
    if (start > position) segments.push({ text: text.slice(position, start), match: false });
    segments.push({ text: found[0], match: true });
    position = start + found[0].length;
  }
  if (position < text.length || segments.length === 0) segments.push({ text: text.slice(position), match: false });
  return segments;
}

// -- convert ----------------------------------------------------------------------------

export function convertOutputs(document: ConvertDocument): { source: string; path: string; name: string; rows: number }[] {
  return document.result.outputs.map((output) => ({ ...output, name: baseName(output.path) }));
}

// -- shared -----------------------------------------------------------------------------

export function baseName(path: string): string {
  const cut = path.replace(/\/+$/, "");
  return cut.slice(cut.lastIndexOf("/") + 1) || path;
}

/** A delimiter as people write it: a tab is invisible in a table cell. */
export function visibleCharacter(character: string): string {
  return character === "\t" ? "\\t (tab)" : character;
}
