import { describe, expect, it } from "vitest";

import checksumFixture from "./__fixtures__/checksum.json";
import convertFixture from "./__fixtures__/convert.json";
import countFixture from "./__fixtures__/count.json";
import grepFixture from "./__fixtures__/grep.json";
import engineManifest from "./__fixtures__/sha256sums.txt?raw";
import statsFixture from "./__fixtures__/stats.json";
import statsMixedFixture from "./__fixtures__/stats-mixed.json";
import {
  baseName, checksumManifest, columnCards, convertOutputs, countTotals, distribution, highlight, largestFiles,
  manifestFileName, matchesPerFile, quantileLabel, sortColumns,
} from "./mapping";
import type { ChecksumDocument, ConvertDocument, CountDocument, GrepDocument, StatsDocument } from "./types";

// Real result documents written by `pravah run` over examples/data.
const stats = statsFixture as StatsDocument;
const count = countFixture as CountDocument;
const checksum = checksumFixture as ChecksumDocument;
const grep = grepFixture as GrepDocument;
const convert = convertFixture as ConvertDocument;
// `pravah run --op stats` over one CSV and one NDJSON file with a bad line.
const statsMixed = statsMixedFixture as StatsDocument;

describe("stats over mixed formats", () => {
  const cards = columnCards(statsMixed);

  it("names the formats of each column only when the job mixed them", () => {
    expect(cards.map((card) => card.formats)).toEqual(statsMixed.result.columns.map((column) => column.formats));
    expect(cards.find((card) => card.name === "id")!.formats).toEqual(["csv", "ndjson"]);
    expect(columnCards(stats).every((card) => card.formats.length === 0)).toBe(true);
  });

  it("lists JSON kinds most frequent first", () => {
    const code = cards.find((card) => card.name === "code")!;
    const kinds = Object.entries(statsMixed.result.columns.find((column) => column.name === "code")!.jsonTypes!);
    expect(code.jsonTypes).toEqual([...kinds].sort(([, a], [, b]) => b - a));
    expect(code.jsonTypes.length).toBeGreaterThan(1);
  });

  it("keeps the bad rows the engine reported", () => {
    expect(statsMixed.result.badRows!.total).toBe(statsMixed.result.badRows!.rows.length);
    expect(statsMixed.result.badRows!.rows[0].line).toBe(3);
  });
});

describe("stats", () => {
  const cards = columnCards(stats);

  it("makes one card per column, in the document's order", () => {
    expect(cards.map((card) => card.name)).toEqual(stats.result.columns.map((column) => column.name));
  });

  it("counts nulls against every row of the column", () => {
    for (const column of stats.result.columns) {
      const card = cards.find((item) => item.name === column.name)!;
      expect(card.rows).toBe(stats.result.rows);
      expect(card.nullFraction).toBeCloseTo(column.nulls / stats.result.rows, 12);
    }
    const withNulls = stats.result.columns.filter((column) => column.nulls > 0).map((column) => column.name);
    expect(cards.filter((card) => card.nullFraction > 0).map((card) => card.name)).toEqual(withNulls);
  });

  it("draws the distribution from min through the quantiles to max, in quantile order", () => {
    const numeric = stats.result.columns.find((column) => column.quantiles && typeof column.min === "number")!;
    const points = distribution(numeric);
    const quantiles = Object.keys(numeric.quantiles!).map(Number).sort((a, b) => a - b);
    expect(points.map((point) => point.quantile)).toEqual([0, ...quantiles, 1]);
    expect(points[0].value).toBe(numeric.min);
    expect(points[points.length - 1].value).toBe(numeric.max);
    for (const q of quantiles) {
      expect(points.find((point) => point.quantile === q)!.value).toBe(numeric.quantiles![String(q)]);
    }
    const values = points.map((point) => point.value);
    expect(values).toEqual([...values].sort((a, b) => a - b)); // a distribution never goes down
  });

  it("has no distribution for text columns", () => {
    const text = stats.result.columns.find((column) => column.type === "string")!;
    expect(distribution(text)).toEqual([]);
  });

  it("keeps the top values, most frequent first", () => {
    for (const column of stats.result.columns) {
      const top = cards.find((card) => card.name === column.name)!.top;
      expect(top).toHaveLength(column.top?.length ?? 0);
      const counts = top.map((entry) => entry.count);
      expect(counts).toEqual([...counts].sort((a, b) => b - a));
      expect(new Set(top.map((entry) => entry.value))).toEqual(new Set((column.top ?? []).map((entry) => entry.value)));
    }
  });

  it("sorts the table by a numeric column, missing values last both ways", () => {
    const withMean = stats.result.columns.filter((column) => column.mean !== null);
    const ascending = sortColumns(cards, "mean", "ascending").map((card) => card.name);
    const expected = [...withMean].sort((a, b) => a.mean! - b.mean!).map((column) => column.name);
    expect(ascending.slice(0, withMean.length)).toEqual(expected);
    const descending = sortColumns(cards, "mean", "descending").map((card) => card.name);
    expect(descending.slice(0, withMean.length)).toEqual([...expected].reverse());
    expect(descending.slice(withMean.length).every((name) =>
      stats.result.columns.find((column) => column.name === name)!.mean === null)).toBe(true);
  });

  it("sorts the table by name", () => {
    const names = stats.result.columns.map((column) => column.name);
    expect(sortColumns(cards, "name", "ascending").map((card) => card.name))
      .toEqual([...names].sort((a, b) => a.localeCompare(b)));
  });

  it("labels quantiles as percentiles", () => {
    expect(quantileLabel(0.5)).toBe("p50");
    expect(quantileLabel(0.99)).toBe("p99");
    expect(quantileLabel(0.999)).toBe("p99.9");
    expect(quantileLabel(0)).toBe("min");
    expect(quantileLabel(1)).toBe("max");
  });
});

describe("count", () => {
  it("shows the document's totals, which are the sums over its files", () => {
    const totals = countTotals(count);
    const files = count.result.files;
    expect(totals.files).toBe(files.length);
    expect(totals.lines).toBe(files.reduce((sum, file) => sum + file.lines, 0));
    expect(totals.words).toBe(files.reduce((sum, file) => sum + file.words, 0));
    expect(totals.bytes).toBe(files.reduce((sum, file) => sum + file.bytes, 0));
  });

  it("lists the largest files first, limited", () => {
    const largest = largestFiles(count, 2);
    const bySize = [...count.result.files].map((file) => file.bytes).sort((a, b) => b - a);
    expect(largest.map((file) => file.bytes)).toEqual(bySize.slice(0, 2));
    expect(largest[0].label).toBe(baseName(largest[0].path));
    expect(largestFiles(count)).toHaveLength(count.result.files.length);
  });
});

describe("checksum", () => {
  it("writes the same manifest as the engine's sha256sum file", () => {
    expect(checksumManifest(checksum)).toBe(engineManifest);
    expect(manifestFileName(checksum)).toBe("sha256sums.txt");
  });

  it("writes one sha256sum -c line per file", () => {
    const lines = checksumManifest(checksum).trimEnd().split("\n");
    expect(lines).toHaveLength(checksum.result.files.length);
    for (const line of lines) expect(line).toMatch(/^[0-9a-f]{64} {2}\S/);
  });
});

describe("grep", () => {
  it("counts matches per file, most first", () => {
    const perFile = matchesPerFile(grep);
    expect(perFile.map((file) => file.matches).reduce((a, b) => a + b, 0)).toBe(grep.result.matches);
    const counts = perFile.map((file) => file.matches);
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
  });

  it("highlights exactly what the pattern matches in every matching line", () => {
    const expression = new RegExp(grep.result.pattern);
    for (const file of grep.result.files) {
      for (const line of file.lines) {
        const segments = highlight(line.text, grep.result.pattern);
        expect(segments.map((segment) => segment.text).join("")).toBe(line.text);
        const marked = segments.filter((segment) => segment.match);
        expect(marked).toHaveLength(1);
        expect(marked[0].text).toBe(expression.exec(line.text)![0]);
      }
    }
  });

  it("finds every occurrence, honours case folding and survives patterns JavaScript cannot read", () => {
    expect(highlight("a timeout, another Timeout", "timeout")).toEqual([
      { text: "a ", match: false }, { text: "timeout", match: true }, { text: ", another Timeout", match: false }]);
    expect(highlight("Timeout timeout", "timeout", true).filter((s) => s.match)).toHaveLength(2);
    expect(highlight("Timeout", "(?i)timeout").filter((s) => s.match)).toHaveLength(1);
    expect(highlight("x(?P<n>y)", "(?P<n>y)")).toEqual([{ text: "x(?P<n>y)", match: false }]);
  });
});

describe("convert", () => {
  it("lists one Parquet file per source with its rows", () => {
    const outputs = convertOutputs(convert);
    expect(outputs.map((output) => output.source)).toEqual(convert.result.outputs.map((output) => output.source));
    expect(outputs.reduce((sum, output) => sum + output.rows, 0)).toBe(convert.result.rows);
    for (const output of outputs) {
      expect(output.name).toBe(`${baseName(output.source)}.parquet`);
    }
  });
});
