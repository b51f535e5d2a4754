import { parse } from "yaml";
import { describe, expect, it } from "vitest";

import type { ConfigInfo } from "../api/types";
import configFixture from "./__fixtures__/config.json";
import { jobBody, manifestOf, manifestYaml, pruneEmpty } from "./manifest";

const config = configFixture as ConfigInfo;

describe("form data -> POST /jobs body", () => {
  it("keeps what was filled in, nested, and leaves blanks out", () => {
    const formData = {
      name: "sales-profile",
      namespace: "team-a",
      operation: { type: "stats", stats: { delimiter: ";", header: true, quantiles: [0.5, 0.9], top: 5 } },
      source: { volume: { claimName: "datasets", path: "data/sales" } },
      output: { s3: { bucket: "results", prefix: "", endpoint: undefined } },
      include: ["**/*.csv", ""],
      exclude: [],
      queueName: "",
      maxErrors: undefined,
    };
    expect(jobBody(formData, {})).toEqual({
      name: "sales-profile",
      namespace: "team-a",
      operation: { type: "stats", stats: { delimiter: ";", header: true, quantiles: [0.5, 0.9], top: 5 } },
      source: { volume: { claimName: "datasets", path: "data/sales" } },
      output: { s3: { bucket: "results" } },
      include: ["**/*.csv"],
    });
  });

  it("drops spec fields that only repeat /config's defaults, keeps changed ones", () => {
    const formData = {
      operation: { type: "count" },
      source: { volume: { claimName: "datasets" } },
      parallelism: "auto",
      resources: { ...(config.defaults.resources as object) },
      maxRetriesPerShard: 5,
      followSymlinks: false,
      suspend: false,
    };
    expect(jobBody(formData, config.defaults)).toEqual({
      operation: { type: "count" },
      source: { volume: { claimName: "datasets" } },
      maxRetriesPerShard: 5,
    });
    const bigger = jobBody({ ...formData, resources: { cpu: 4, memory: "2Gi" } }, config.defaults);
    expect(bigger.resources).toEqual({ cpu: 4, memory: "2Gi" });
  });

  it("keeps false, zero and numbers that are not blanks", () => {
    expect(pruneEmpty({ a: 0, b: false, c: { d: "" }, e: [0] })).toEqual({ a: 0, b: false, e: [0] });
  });
});

describe("body -> PravahJob manifest", () => {
  const body = {
    name: "log-timeouts",
    namespace: "team-a",
    operation: { type: "grep", grep: { pattern: "(ERROR|WARN) .*timeout" } },
    source: { volume: { claimName: "datasets", path: "data/logs" } },
  };

  it("puts name and namespace in metadata and the rest in spec", () => {
    expect(manifestOf(body)).toEqual({
      apiVersion: "pravah.io/v1alpha1",
      kind: "PravahJob",
      metadata: { name: "log-timeouts", namespace: "team-a" },
      spec: { operation: body.operation, source: body.source },
    });
  });

  it("names an unnamed job as the API does (job-xxxxx)", () => {
    const { name: _name, namespace: _namespace, ...spec } = body;
    expect(manifestOf(spec).metadata).toEqual({ generateName: "job-" });
  });

  it("writes YAML that reads back as the same manifest", () => {
    expect(parse(manifestYaml(body))).toEqual(manifestOf(body));
  });
});
