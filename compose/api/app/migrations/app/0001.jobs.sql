-- The jobs the worker records (until migrations existed, the worker created this table
-- when it started: IF NOT EXISTS adopts a database made that way).
CREATE TABLE IF NOT EXISTS jobs (
    id uuid PRIMARY KEY,
    payload jsonb NOT NULL,
    request_id text,
    enqueued_by text,
    processed_by text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
