-- Jobs, their shards, the partial results of each batch of files, and per-file records.
-- Partials and file records are keyed so that a retried runner can skip finished work and
-- can never store the same batch twice.
CREATE TABLE jobs (
    uid          uuid PRIMARY KEY,
    namespace    text NOT NULL,
    name         text NOT NULL,
    operation    text NOT NULL,
    spec         jsonb NOT NULL,
    shards       integer NOT NULL,
    threads      integer NOT NULL,
    phase        text NOT NULL DEFAULT 'Pending',
    reason       text,
    message      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    result       jsonb,
    result_uri   text
);
CREATE INDEX jobs_namespace_name ON jobs (namespace, name);

CREATE TABLE shards (
    job_uid      uuid NOT NULL REFERENCES jobs (uid) ON DELETE CASCADE,
    shard        integer NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'running',
    files_total  bigint NOT NULL DEFAULT 0,
    files_done   bigint NOT NULL DEFAULT 0,
    bytes_total  bigint NOT NULL DEFAULT 0,
    bytes_done   bigint NOT NULL DEFAULT 0,
    errors       bigint NOT NULL DEFAULT 0,
    threads      integer,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (job_uid, shard)
);

CREATE TABLE batches (
    job_uid      uuid NOT NULL REFERENCES jobs (uid) ON DELETE CASCADE,
    shard        integer NOT NULL,
    batch        integer NOT NULL,
    files        integer NOT NULL,
    bytes        bigint NOT NULL,
    partial      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_uid, shard, batch)
);

CREATE TABLE file_records (
    job_uid      uuid NOT NULL REFERENCES jobs (uid) ON DELETE CASCADE,
    path         text NOT NULL,
    shard        integer NOT NULL,
    batch        integer NOT NULL,
    bytes        bigint NOT NULL,
    error        text,
    line         bigint,
    PRIMARY KEY (job_uid, path)
);
CREATE INDEX file_records_errors ON file_records (job_uid) WHERE error IS NOT NULL;

CREATE TABLE runner_logs (
    job_uid      uuid NOT NULL REFERENCES jobs (uid) ON DELETE CASCADE,
    shard        integer NOT NULL,
    pod          text NOT NULL,
    log          text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_uid, shard, pod)
);
