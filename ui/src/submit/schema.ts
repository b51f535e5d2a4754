// /config's JSON Schema of POST /jobs (pydantic's output) shaped for a generated form.
// Pure functions: the API's schema is the source of truth; only its presentation changes.
import type { JsonSchema, OperationInfo } from "../api/types";

type Node = Record<string, unknown>;

const isObject = (value: unknown): value is Node => typeof value === "object" && value !== null && !Array.isArray(value);

/** "maxRetriesPerShard" -> "Max retries per shard" (pydantic's titles read "Maxretriespershard"). */
export function humanize(name: string): string {
  const words = name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/[_-]+/g, " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * `anyOf: [X, {type: null}]` (pydantic's Optional) becomes X: an empty field is simply left
 * out of the request. Branches of the remaining unions get titles the chooser can show.
 */
function simplify(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(simplify);
  if (!isObject(node)) return node;
  const out: Node = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "properties" && isObject(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([name, property]) => {
        const simplified = simplify(property) as Node;
        return [name, { ...simplified, title: humanize(name) }];
      }));
    } else {
      out[key] = simplify(value);
    }
  }
  const union = out.anyOf;
  if (Array.isArray(union)) {
    const kept = union.filter((branch) => !(isObject(branch) && branch.type === "null"));
    // Without its null branch, a null default would be an invalid value the form fills in.
    if (kept.length < union.length && out.default === null) delete out.default;
    if (kept.length === 1 && kept.length < union.length) {
      delete out.anyOf;
      return { ...(kept[0] as Node), ...out };
    }
    out.anyOf = kept.map((branch) => {
      if (!isObject(branch) || branch.title) return branch;
      if ("const" in branch) return { ...branch, title: String(branch.const) };
      return { ...branch, title: branch.type === "integer" ? "number" : String(branch.type ?? "value") };
    });
  }
  return out;
}

/**
 * A location is exactly one of `volume` or `s3`: a choice between the two. The options have no
 * title of their own, else rjsf would show it in place of the field's (Source, Output); the
 * uiSchema names them.
 */
function locationChoice(): Node {
  return {
    description: "Exactly one of a volume (PersistentVolumeClaim) or S3.",
    type: "object",
    oneOf: [
      { type: "object", properties: { volume: { $ref: "#/$defs/VolumeLocation", title: "Volume" } },
        required: ["volume"], additionalProperties: false },
      { type: "object", properties: { s3: { $ref: "#/$defs/S3Location", title: "S3" } },
        required: ["s3"], additionalProperties: false },
    ],
  };
}

/** The operation block for one chosen operation: its type, fixed, and that operation's options. */
function operationBlock(operation: OperationInfo): Node {
  const properties: Node = { type: { type: "string", title: "Type", const: operation.type, default: operation.type } };
  if (operation.options) {
    properties[operation.type] = { ...(simplify(operation.options) as Node), title: `${humanize(operation.type)} options` };
  }
  // The options block is always shown filled with its defaults, so the manifest says them;
  // grep's pattern has no default and must be given.
  const required = operation.options ? ["type", operation.type] : ["type"];
  return { type: "object", title: "Operation", properties, required, additionalProperties: false };
}

export function formSchema(spec: JsonSchema, operation: OperationInfo): JsonSchema {
  const shaped = simplify(spec) as Node;
  const definitions = { ...((shaped.$defs as Node | undefined) ?? {}) };
  definitions.Location = locationChoice();
  const properties = { ...(shaped.properties as Node) };
  properties.operation = { ...operationBlock(operation), description: (properties.operation as Node)?.description };
  // Checks judge a stats result only: other operations refuse them.
  if (operation.type !== "stats") delete properties.checks;
  // A new job from the form is a job of its own: re-runs start from a finished job's page, and
  // an incremental job names its baseline in a manifest.
  delete properties.rerunOf;
  delete properties.incremental;
  // The page names the form; the model's name (JobCreate) is not for people.
  const { title: _modelName, ...rest } = shaped;
  return { ...rest, $defs: definitions, properties };
}

const locationOptions = { oneOf: [{ "ui:title": "Volume (PersistentVolumeClaim)" }, { "ui:title": "S3" }] };

/** Order and hints for the generated form. */
export function formUiSchema(): Record<string, unknown> {
  return {
    "ui:order": ["name", "namespace", "operation", "source", "include", "exclude", "output", "parallelism",
      "resources", "*"],
    operation: { type: { "ui:widget": "hidden" } },
    source: locationOptions,
    output: locationOptions,
    suspend: { "ui:widget": "hidden" },
    "ui:submitButtonOptions": { norender: true },
  };
}
