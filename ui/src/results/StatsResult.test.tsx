import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import statsFixture from "./__fixtures__/stats.json";
import sniffedFixture from "./__fixtures__/stats-sniffed.json";
import { visibleCharacter } from "./mapping";
import { StatsResult } from "./StatsResult";
import type { StatsDocument } from "./types";

// `pravah run sales --op stats --delimiter auto --quote auto --header-rows auto`
// over a `;`-delimited CSV and a `'`-quoted one.
const sniffed = sniffedFixture as StatsDocument;
const stats = statsFixture as StatsDocument;

describe("the dialects a stats job sniffed", () => {
  it("lists each sniffed file with the dialect it was read with", () => {
    render(<StatsResult document={sniffed} />);
    const rows = within(screen.getByTestId("stats-dialects")).getAllByRole("row").slice(1);
    expect(rows.map((row) => within(row).getAllByRole("cell").map((cell) => cell.textContent))).toEqual(
      sniffed.result.dialects!.map((dialect) => [
        dialect.path, visibleCharacter(dialect.delimiter), dialect.quote ?? "none", String(dialect.headerRows),
      ]),
    );
    expect(new Set(sniffed.result.dialects!.map((dialect) => dialect.delimiter)).size).toBe(2);
  });

  it("shows no dialect table when nothing was sniffed", () => {
    render(<StatsResult document={stats} />);
    expect(screen.queryByTestId("stats-dialects")).toBeNull();
  });

  it("names a tab delimiter", () => {
    expect(visibleCharacter("\t")).toBe("\\t (tab)");
    expect(visibleCharacter(";")).toBe(";");
  });
});
