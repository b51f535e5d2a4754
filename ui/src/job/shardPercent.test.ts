import { describe, expect, it } from "vitest";

import { shardPercent } from "./JobSections";

const row = (filesDone: number, filesTotal: number, bytesDone: number, bytesTotal: number) =>
  ({ shard: 0, filesDone, filesTotal, bytesDone, bytesTotal, errors: 0 });

describe("shardPercent", () => {
  it("goes by bytes, rounding down so that 100 means every byte is done", () => {
    expect(shardPercent(row(1, 3, 999, 1000))).toBe(99);
    expect(shardPercent(row(3, 3, 1000, 1000))).toBe(100);
  });
  it("goes by files when the shard's files are all empty", () => {
    expect(shardPercent(row(1, 4, 0, 0))).toBe(25);
  });
  it("calls a shard with nothing to do done", () => {
    expect(shardPercent(row(0, 0, 0, 0))).toBe(100);
  });
});
