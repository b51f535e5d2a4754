-- The runner pod that lists the job's source: one lister per job, so a prefix of a million
-- objects is listed once, not once per shard. Another runner takes the claim over only
-- when the claiming pod has ended before committing its listing.
ALTER TABLE jobs ADD COLUMN listing_claim text;
