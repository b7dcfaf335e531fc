-- The slices of hits the recorder has written (src/tracking/hits/recorder.ts), by an id it picks per
-- slice and writes in the slice's own transaction. A slice written again after its commit's answer
-- was lost (PostgreSQL crashed, or the connection broke, after the commit) is found here and
-- skipped: no hit is stored, or counted, twice. Kept a day (tracking/retention.ts).
CREATE TABLE tracking_batches (
  id uuid PRIMARY KEY,
  written_at timestamptz NOT NULL DEFAULT now()
);
