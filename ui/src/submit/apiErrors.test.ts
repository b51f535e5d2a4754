import { describe, expect, it } from "vitest";

import type { ConfigInfo, OperationInfo } from "../api/types";
import configFixture from "./__fixtures__/config.json";
import { formPath, placeApiError, splitValidationMessage } from "./apiErrors";
import { formSchema } from "./schema";

const config = configFixture as ConfigInfo;
const operation = (type: string) => config.operations.find((item) => item.type === type) as OperationInfo;
const grepSchema = formSchema(config.spec, operation("grep"));
const statsSchema = formSchema(config.spec, operation("stats"));

describe("API error field -> form field", () => {
  it("follows nested fields through $ref and the volume/S3 choice", () => {
    expect(formPath("source.volume.claimName", grepSchema)).toEqual(["source", "volume", "claimName"]);
    expect(formPath("output.s3.bucket", grepSchema)).toEqual(["output", "s3", "bucket"]);
    expect(formPath("operation.grep.pattern", grepSchema)).toEqual(["operation", "grep", "pattern"]);
    expect(formPath("resources.memory", grepSchema)).toEqual(["resources", "memory"]);
  });

  it("drops the Kubernetes API server's spec. prefix", () => {
    expect(formPath("spec.parallelism", grepSchema)).toEqual(["parallelism"]);
    expect(formPath("spec.source.volume.claimName", grepSchema)).toEqual(["source", "volume", "claimName"]);
  });

  it("goes into array items", () => {
    expect(formPath("include.3", grepSchema)).toEqual(["include", "3"]);
    expect(formPath("checks.0.column", statsSchema)).toEqual(["checks", "0", "column"]);
  });

  it("stops at the last field the form has (pydantic's union branch names)", () => {
    expect(formPath("parallelism.int", grepSchema)).toEqual(["parallelism"]);
    expect(formPath("resources.cpu.literal['auto']", grepSchema)).toEqual(["resources", "cpu"]);
  });

  it("knows no field for names outside the form", () => {
    expect(formPath("Idempotency-Key", grepSchema)).toBeNull();
    expect(formPath("(root)", grepSchema)).toBeNull();
    expect(formPath("status.result.uri", grepSchema)).toBeNull();
    expect(formPath(null, grepSchema)).toBeNull();
    expect(formPath("checks", grepSchema)).toBeNull(); // only stats jobs have checks
  });
});

describe("API error -> extraErrors", () => {
  it("puts a message next to the nested field it names", () => {
    const placed = placeApiError({ field: "spec.source.volume.claimName",
      message: "PersistentVolumeClaim \"datasets\" is not yours to read" }, grepSchema);
    expect(placed.general).toEqual([]);
    expect(placed.extraErrors).toEqual({
      source: { volume: { claimName: { __errors: ["PersistentVolumeClaim \"datasets\" is not yours to read"] } } },
    });
  });

  it("splits the API's list of validation errors over their fields", () => {
    const placed = placeApiError({
      field: "operation.grep.pattern",
      message: "operation.grep.pattern: Value error, regex parse error; parallelism: Value error, parallelism must "
        + "be between 1 and 1000, or 'auto'; resources.memory: String should match pattern",
    }, grepSchema);
    expect(placed.general).toEqual([]);
    expect(placed.extraErrors).toEqual({
      operation: { grep: { pattern: { __errors: ["Value error, regex parse error"] } } },
      parallelism: { __errors: ["Value error, parallelism must be between 1 and 1000, or 'auto'"] },
      resources: { memory: { __errors: ["String should match pattern"] } },
    });
  });

  it("sends an error on an unknown field, or on none, to the general area", () => {
    expect(placeApiError({ field: "Idempotency-Key", message: "this Idempotency-Key was used" }, grepSchema))
      .toEqual({ extraErrors: {}, general: ["this Idempotency-Key was used"] });
    expect(placeApiError({ field: null, message: "alice may not create jobs in namespace 'b'" }, grepSchema))
      .toEqual({ extraErrors: {}, general: ["alice may not create jobs in namespace 'b'"] });
  });

  it("keeps a listed error whose field the form lacks in the general area", () => {
    const placed = placeApiError({ field: "namespace", message: "namespace: too long; suspend2: unknown" }, grepSchema);
    expect(placed.extraErrors).toEqual({ namespace: { __errors: ["too long"] } });
    expect(placed.general).toEqual(["suspend2: unknown"]);
  });

  it("reads the API's joined message format", () => {
    expect(splitValidationMessage("a.b: first; c: second; with; semicolons")).toEqual([
      ["a.b", "first"], ["c", "second; with; semicolons"]]);
    expect(splitValidationMessage("no field here")).toEqual([["", "no field here"]]);
  });
});
