import Form from "@rjsf/core";
import { getDefaultFormState, type ErrorSchema, type RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { useMemo, useState } from "react";
import { useNavigate } from "react-router";

import { ApiError } from "../api/client";
import type { ConfigInfo, JobSummary } from "../api/types";
import { useAccount } from "../auth/account";
import { useCopy } from "../common/useCopy";
import { placeApiError } from "./apiErrors";
import { buttonTemplates, widgets } from "./formTemplates";
import { jobBody, manifestYaml, type FormData } from "./manifest";
import { formSchema, formUiSchema } from "./schema";

function withDefaults(schema: RJSFSchema, formData: FormData): FormData {
  return getDefaultFormState(validator, schema, formData, schema) as FormData;
}

interface FormProps {
  config: ConfigInfo;
  initialNamespace?: string;
  /** Sends the body; rejects with the API's error. */
  onSubmit: (body: FormData) => Promise<void>;
}

/** The job form itself: operation chooser, generated fields, manifest preview, errors. */
export function JobForm({ config, initialNamespace, onSubmit }: FormProps) {
  const [operationType, setOperationType] = useState(config.operations[0]?.type ?? "stats");
  const operation = config.operations.find((item) => item.type === operationType) ?? config.operations[0];
  const schema = useMemo(() => formSchema(config.spec, operation), [config.spec, operation]);
  const uiSchema = useMemo(() => formUiSchema(), []);
  // Filled with the schema's defaults from the start, so the preview shows what will be sent.
  const [formData, setFormData] = useState<FormData>(() => withDefaults(schema, {
    ...(initialNamespace ? { namespace: initialNamespace } : {}),
    operation: { type: operationType },
  }));
  const [extraErrors, setExtraErrors] = useState<ErrorSchema>({});
  const [generalErrors, setGeneralErrors] = useState<string[]>([]);
  const [sending, setSending] = useState(false);
  const body = useMemo(() => jobBody(formData, config.defaults), [formData, config.defaults]);
  const preview = useMemo(() => manifestYaml(body), [body]);
  const [copied, copyPreview] = useCopy(preview);

  function chooseOperation(type: string) {
    const chosen = config.operations.find((item) => item.type === type) ?? operation;
    setOperationType(type);
    setFormData((old) => withDefaults(formSchema(config.spec, chosen), { ...old, operation: { type } }));
    setExtraErrors({});
    setGeneralErrors([]);
  }

  async function submit() {
    setSending(true);
    setExtraErrors({});
    setGeneralErrors([]);
    try {
      await onSubmit(body);
    } catch (caught) {
      if (caught instanceof ApiError) {
        const placed = placeApiError(caught, schema);
        setExtraErrors(placed.extraErrors);
        setGeneralErrors(placed.general.length ? placed.general
          : ["The API refused the job: see the marked fields."]);
      } else {
        setGeneralErrors(["The API cannot be reached."]);
      }
    } finally {
      setSending(false);
    }
  }


  return (
    <div className="submit-layout">
      <div className="card" data-testid="submit-form">
        <fieldset className="operation-chooser">
          <legend>Operation</legend>
          {config.operations.map((item) => (
            <label key={item.type} className={item.type === operationType ? "chosen" : ""}>
              <input type="radio" name="operation" value={item.type} checked={item.type === operationType}
                data-testid={`operation-${item.type}`} onChange={() => chooseOperation(item.type)} />
              <strong>{item.type}</strong> <span className="muted">{item.description}</span>
            </label>
          ))}
        </fieldset>
        <Form
          key={operationType}
          schema={schema}
          uiSchema={uiSchema}
          validator={validator}
          formData={formData}
          onChange={(event) => setFormData((event.formData ?? {}) as FormData)}
          onSubmit={submit}
          extraErrors={extraErrors}
          showErrorList={false}
          focusOnFirstError
          idPrefix="job"
          templates={{ ButtonTemplates: buttonTemplates }}
          widgets={widgets}
        >
          {generalErrors.length > 0 && (
            <div className="error" role="alert" data-testid="submit-error">
              {generalErrors.map((message) => <p key={message}>{message}</p>)}
            </div>
          )}
          <button type="submit" className="primary" data-testid="submit-job" disabled={sending}>
            {sending ? "Submitting…" : "Submit job"}
          </button>
        </Form>
      </div>
      <aside className="card preview" aria-labelledby="preview-title">
        <div className="section-head">
          <h2 id="preview-title">Manifest</h2>
          <button type="button" onClick={copyPreview} data-testid="copy-preview">Copy YAML</button>
        </div>
        <p className="muted">The PravahJob this creates; <code>kubectl create -f</code> makes the same job.</p>
        <span role="status">{copied}</span>
        <pre data-testid="manifest-preview" tabIndex={0} aria-labelledby="preview-title">{preview}</pre>
      </aside>
    </div>
  );
}

export function SubmitPage() {
  const { client, config, whoami } = useAccount();
  const navigate = useNavigate();
  async function create(body: FormData) {
    const created = await client.post<JobSummary>("/jobs", body);
    navigate(`/jobs/${created.id}`);
  }
  return (
    <main className="page">
      <h1>New job</h1>
      <JobForm config={config} initialNamespace={whoami.namespaces?.[0]} onSubmit={create} />
    </main>
  );
}
