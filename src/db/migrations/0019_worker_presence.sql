-- Live worker processes (issue 8: relay limits hold across workers). Each `parley worker` on a shared
-- database keeps a row fresh every few seconds; the live ones split every relay's limits between
-- them (src/sending/relay-share.ts).
CREATE TABLE worker_presence (
  id uuid PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_presence_seen_idx ON worker_presence (seen_at);
