// Form data -> the POST /jobs body and the PravahJob manifest it creates. Pure functions.
import { stringify } from "yaml";

export type FormData = Record<string, unknown>;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === ""
    || (Array.isArray(value) && value.length === 0) || (isObject(value) && Object.keys(value).length === 0);
}

/** Fields the user left blank are left out, nested ones too (an empty output block is no output). */
export function pruneEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pruneEmpty).filter((item) => !isEmpty(item));
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const pruned = pruneEmpty(item);
    if (!isEmpty(pruned)) out[key] = pruned;
  }
  return out;
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The body of POST /jobs: what the user filled in, without the spec fields that merely
 * repeat the spec's defaults (from /config), so the manifest says only what was chosen.
 */
export function jobBody(formData: FormData, specDefaults: Record<string, unknown>): FormData {
  const pruned = pruneEmpty(formData) as FormData;
  for (const [key, value] of Object.entries(specDefaults)) {
    if (key in pruned && deepEqual(pruned[key], pruneEmpty(value))) delete pruned[key];
  }
  return pruned;
}

export interface PravahJobManifest {
  apiVersion: "pravah.io/v1alpha1";
  kind: "PravahJob";
  metadata: { name?: string; generateName?: string; namespace?: string };
  spec: FormData;
}

/** The PravahJob the API creates from `body`: unnamed jobs get a generated name (job-xxxxx). */
export function manifestOf(body: FormData): PravahJobManifest {
  const { name, namespace, ...spec } = body;
  const metadata: PravahJobManifest["metadata"] = typeof name === "string" ? { name } : { generateName: "job-" };
  if (typeof namespace === "string") metadata.namespace = namespace;
  return { apiVersion: "pravah.io/v1alpha1", kind: "PravahJob", metadata, spec };
}

export function manifestYaml(body: FormData): string {
  return stringify(manifestOf(body));
}
