-- The REST API's own records: users of the standalone auth mode, Idempotency-Key answers,
-- and where each job id (the PravahJob's uid) lives, for jobs the operator has not recorded yet.
CREATE TABLE api_users (
    username       text PRIMARY KEY,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('viewer', 'submitter', 'admin')),
    namespaces     text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_idempotency_keys (
    principal      text NOT NULL,
    key            text NOT NULL,
    request_hash   text NOT NULL,
    job_uid        uuid NOT NULL,
    namespace      text NOT NULL,
    name           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX api_idempotency_keys_created ON api_idempotency_keys (created_at);

CREATE TABLE api_job_locations (
    uid            uuid PRIMARY KEY,
    namespace      text NOT NULL,
    name           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
