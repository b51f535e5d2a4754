-- Jobs that build on another job: a re-run (only the files that failed or never finished in
-- it) and an incremental run (files unchanged since a baseline are not read again).
-- jobs.reuse holds what the listing found: how many files were reused, new, changed, removed.
ALTER TABLE jobs
    ADD COLUMN reuse_of    uuid,
    ADD COLUMN reuse_mode  text CHECK (reuse_mode IN ('rerun', 'incremental')),
    ADD COLUMN reuse       jsonb;

-- What "unchanged" compares besides the size: the modification time (ns) of a file on a
-- volume, the ETag of an S3 object.
ALTER TABLE job_files ADD COLUMN version text;

-- One partial per file, kept by incremental runs so that a later run can reuse any subset.
-- Paths are as users see them (relative to the volume directory, or s3:// URIs), so they
-- match across jobs. Rows copied from a baseline carry the listing that reused them.
CREATE TABLE file_partials (
    job_uid      uuid NOT NULL REFERENCES jobs (uid) ON DELETE CASCADE,
    path         text NOT NULL,
    bytes        bigint NOT NULL,
    version      text,
    partial      text NOT NULL,
    failed       boolean NOT NULL,
    reused_by    uuid,
    PRIMARY KEY (job_uid, path)
);
