// An API error -> rjsf `extraErrors` next to the field it names, or the form's general area.
import type { ErrorSchema } from "@rjsf/utils";

import type { JsonSchema } from "../api/types";

type Node = Record<string, unknown>;

const isObject = (value: unknown): value is Node => typeof value === "object" && value !== null && !Array.isArray(value);

export interface PlacedErrors {
  extraErrors: ErrorSchema;
  /** Messages that name no field of the form. */
  general: string[];
}

function resolve(schema: JsonSchema, node: unknown): Node | null {
  let current = node;
  for (let hops = 0; isObject(current) && typeof current.$ref === "string" && hops < 32; hops += 1) {
    const path = current.$ref.replace(/^#\//, "").split("/");
    let target: unknown = schema;
    for (const part of path) target = isObject(target) ? target[part] : undefined;
    const { $ref: _ref, ...siblings } = current;
    current = isObject(target) ? { ...target, ...siblings } : undefined;
  }
  return isObject(current) ? current : null;
}

/** The schemas a value at `node` may follow: itself and its union branches. */
function alternatives(schema: JsonSchema, node: Node): Node[] {
  const branches = [node];
  for (const key of ["oneOf", "anyOf", "allOf"]) {
    const union = node[key];
    if (Array.isArray(union)) {
      for (const branch of union) {
        const resolved = resolve(schema, branch);
        if (resolved) branches.push(...alternatives(schema, resolved));
      }
    }
  }
  return branches;
}

function child(schema: JsonSchema, node: Node, segment: string): Node | null {
  for (const option of alternatives(schema, node)) {
    if (/^\d+$/.test(segment) && option.items !== undefined) return resolve(schema, option.items);
    const properties = option.properties;
    if (isObject(properties) && segment in properties) return resolve(schema, properties[segment]);
  }
  return null;
}

/**
 * The form fields `field` names, as far as the form knows them: "spec." (the Kubernetes API
 * server's paths) is dropped, and segments the form has no field for (pydantic's union
 * branch names such as `int`) end the path at the last field that exists.
 */
export function formPath(field: string | null | undefined, schema: JsonSchema): string[] | null {
  if (!field) return null;
  const segments = field.replace(/^spec\./, "").split(".").filter(Boolean);
  const path: string[] = [];
  let node = resolve(schema, schema);
  for (const segment of segments) {
    const next = node ? child(schema, node, segment) : null;
    if (!next) break;
    path.push(segment);
    node = next;
  }
  return path.length > 0 ? path : null;
}

/** "a.b: first; c: second" -> [["a.b", "first"], ["c", "second"]], as the API joins validation errors. */
export function splitValidationMessage(message: string): [string, string][] {
  const parts = message.split(/; (?=[\w.\-()[\]']+: )/);
  return parts.map((part) => {
    const found = /^([\w.\-()[\]']+): ([\s\S]*)$/.exec(part);
    return found ? [found[1], found[2]] : ["", part];
  });
}

function addError(errors: ErrorSchema, path: string[], message: string): void {
  let node = errors as Node;
  for (const segment of path) {
    node[segment] = isObject(node[segment]) ? node[segment] : {};
    node = node[segment] as Node;
  }
  const list = Array.isArray(node.__errors) ? (node.__errors as string[]) : [];
  node.__errors = [...list, message];
}

export function placeApiError(error: { field: string | null; message: string }, schema: JsonSchema): PlacedErrors {
  const placed: PlacedErrors = { extraErrors: {}, general: [] };
  const named = formPath(error.field, schema);
  if (!named) {
    placed.general.push(error.message);
    return placed;
  }
  for (const [field, text] of splitValidationMessage(error.message)) {
    const path = field ? formPath(field, schema) : named;
    if (path) addError(placed.extraErrors, path, text);
    else placed.general.push(`${field}: ${text}`);
  }
  return placed;
}
