import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { getDefaultFormState } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { parse } from "yaml";
import { describe, expect, it, vi } from "vitest";

import { ApiError } from "../api/client";
import type { ConfigInfo, OperationInfo } from "../api/types";
import configFixture from "./__fixtures__/config.json";
import { formSchema, humanize } from "./schema";
import { JobForm } from "./SubmitPage";

// GET /config of a standalone API, as pravah_api.config.document writes it.
const config = configFixture as ConfigInfo;
const operation = (type: string) => config.operations.find((item) => item.type === type) as OperationInfo;

function preview() {
  return parse(screen.getByTestId("manifest-preview").textContent ?? "");
}

function field(id: string): HTMLInputElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`no field ${id}`);
  return element as HTMLInputElement;
}

describe("the schema for the form", () => {
  it("fills in defaults that the form's own validator accepts, for every operation", () => {
    for (const item of config.operations) {
      const schema = formSchema(config.spec, item);
      const defaults = getDefaultFormState(validator, schema, {}, schema);
      const errors = validator.validateFormData(defaults, schema).errors.filter((error) => error.name !== "required");
      expect(errors, item.type).toEqual([]);
    }
  });

  it("is valid JSON Schema for the form's validator, for every operation", () => {
    for (const item of config.operations) {
      const schema = formSchema(config.spec, item);
      expect(() => validator.isValid(schema, {}, schema)).not.toThrow();
    }
  });

  it("accepts a real job and refuses one without a source", () => {
    const schema = formSchema(config.spec, operation("grep"));
    const job = { operation: { type: "grep", grep: { pattern: "ERROR" } }, source: { volume: { claimName: "data" } } };
    expect(validator.validateFormData(job, schema).errors).toEqual([]);
    expect(validator.validateFormData({ operation: job.operation }, schema).errors.length).toBeGreaterThan(0);
    const both = { ...job, source: { volume: { claimName: "data" }, s3: { bucket: "abc" } } };
    expect(validator.validateFormData(both, schema).errors.length).toBeGreaterThan(0);
  });

  it("offers only the chosen operation's options", () => {
    const schema = formSchema(config.spec, operation("checksum")) as { properties: Record<string, { properties?: object }> };
    expect(Object.keys(schema.properties.operation.properties!)).toEqual(["type", "checksum"]);
    expect(schema.properties.checks).toBeUndefined();
    expect(Object.keys(config.spec.properties as object)).toContain("incremental");
    expect(schema.properties.incremental).toBeUndefined();
    expect(schema.properties.rerunOf).toBeUndefined();
    const stats = formSchema(config.spec, operation("stats")) as { properties: Record<string, unknown> };
    expect(stats.properties.checks).toBeDefined();
  });

  it("gives fields readable titles", () => {
    expect(humanize("maxRetriesPerShard")).toBe("Max retries per shard");
    expect(humanize("claimName")).toBe("Claim name");
  });
});

describe("the job form, generated from /config", () => {
  it("renders the spec's fields and one choice per operation", () => {
    render(<JobForm config={config} onSubmit={vi.fn()} />);
    const form = screen.getByTestId("submit-form");
    for (const item of config.operations) expect(within(form).getByTestId(`operation-${item.type}`)).toBeTruthy();
    for (const label of ["Name", "Namespace", "Include", "Exclude", "Parallelism", "Max retries per shard"]) {
      expect(within(form).getAllByText(label).length).toBeGreaterThan(0);
    }
    expect(field("job_operation_stats_top").value).toBe("5"); // the option's default, from the schema
  });

  it("previews the manifest as the fields change", async () => {
    render(<JobForm config={config} initialNamespace="team-a" onSubmit={vi.fn()} />);
    fireEvent.click(screen.getByTestId("operation-grep"));
    fireEvent.change(field("job_name"), { target: { value: "log-timeouts" } });
    fireEvent.change(field("job_operation_grep_pattern"), { target: { value: "timeout" } });
    fireEvent.change(field("job_source_volume_claimName"), { target: { value: "datasets" } });
    await waitFor(() => expect(preview().spec.source).toEqual({ volume: { claimName: "datasets" } }));
    const manifest = preview();
    expect(manifest.apiVersion).toBe("pravah.io/v1alpha1");
    expect(manifest.kind).toBe("PravahJob");
    expect(manifest.metadata).toEqual({ name: "log-timeouts", namespace: "team-a" });
    expect(manifest.spec.operation.type).toBe("grep");
    expect(manifest.spec.operation.grep.pattern).toBe("timeout");
  });

  it("sends the body and shows the API's refusal next to the field it names", async () => {
    const onSubmit = vi.fn().mockRejectedValueOnce(
      new ApiError(422, "validation_failed", "spec.source.volume.claimName: claim not found", "spec.source.volume.claimName"))
      .mockRejectedValueOnce(new ApiError(403, "forbidden", "alice may not create jobs in namespace 'team-b'", null));
    render(<JobForm config={config} onSubmit={onSubmit} />);
    fireEvent.click(screen.getByTestId("operation-count"));
    fireEvent.change(field("job_source_volume_claimName"), { target: { value: "missing" } });
    fireEvent.click(screen.getByTestId("submit-job"));
    await waitFor(() => expect(onSubmit).toHaveBeenCalledTimes(1));
    expect(onSubmit.mock.calls[0][0]).toMatchObject({ operation: { type: "count" }, source: { volume: { claimName: "missing" } } });
    const claim = await screen.findByText("claim not found");
    expect(claim.closest(".form-group")?.querySelector("#job_source_volume_claimName")).toBeTruthy();

    fireEvent.click(screen.getByTestId("submit-job"));
    const general = await screen.findByTestId("submit-error");
    expect(general.textContent).toContain("alice may not create jobs in namespace 'team-b'");
  });

  it("sends a grep job only with a pattern", async () => {
    const onSubmit = vi.fn();
    render(<JobForm config={config} onSubmit={onSubmit} />);
    fireEvent.click(screen.getByTestId("operation-grep"));
    fireEvent.change(field("job_source_volume_claimName"), { target: { value: "datasets" } });
    fireEvent.click(screen.getByTestId("submit-job"));
    expect(onSubmit).not.toHaveBeenCalled();
    // The field is marked required, so the browser itself stops the form and says why.
    expect(field("job_operation_grep_pattern").required).toBe(true);
    expect(field("job_operation_grep_pattern").validity.valueMissing).toBe(true);
    fireEvent.change(field("job_operation_grep_pattern"), { target: { value: "ERROR" } });
    fireEvent.click(screen.getByTestId("submit-job"));
    await waitFor(() => expect(onSubmit).toHaveBeenCalledTimes(1));
    expect(onSubmit.mock.calls[0][0].operation).toEqual(
      { type: "grep", grep: { pattern: "ERROR", ...operation("grep").defaults } });
  });
});
