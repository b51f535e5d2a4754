-- The file list of a job, listed once and shared by every shard and every retry, and the
-- small summary that replaces the full result (which lives in the output storage).
-- A runner stages a listing page by page under an id of its own; committing it sets
-- jobs.listing only if no listing is set yet, so the first complete listing wins.
ALTER TABLE jobs
    ADD COLUMN listing      uuid,
    ADD COLUMN files_total  bigint,
    ADD COLUMN bytes_total  bigint,
    ADD COLUMN list_digest  text;

CREATE TABLE job_files (
    job_uid      uuid NOT NULL REFERENCES jobs (uid) ON DELETE CASCADE,
    listing      uuid NOT NULL,
    shard        integer NOT NULL,
    position     integer NOT NULL,
    path         text NOT NULL,
    bytes        bigint NOT NULL,
    PRIMARY KEY (job_uid, listing, shard, position)
);

-- Error records of files the engine never read (unreadable when listed, changed or gone
-- since): they go into the result as they are, beside the errors in the partials.
ALTER TABLE file_records ADD COLUMN skipped boolean NOT NULL DEFAULT false;
UPDATE file_records SET skipped = true WHERE batch = -1;

-- A copy of a small result document, for the REST API, which cannot read a job's output
-- volume. jobs.result holds the summary only; larger documents are read from the output storage.
CREATE TABLE job_results (
    job_uid      uuid PRIMARY KEY REFERENCES jobs (uid) ON DELETE CASCADE,
    document     text NOT NULL
);
