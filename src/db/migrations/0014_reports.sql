-- Reports (issue 7): counters kept per org, time bucket and dimensions, maintained incrementally by
-- the reports worker (src/reports/rollups.ts) from messages reaching 'sent' and the email_events
-- feed, and rebuilt from raw data by `parley reports rebuild`. Reports read these, never the raw
-- tables, so a year of ten million messages answers in milliseconds.
--
-- Every fact is counted in the bucket of the message's send time (a cohort: "of the emails sent that
-- day, so many were opened"), so rates never exceed 100 %; a received email in its own time.
--
-- Grains: 'q' = 15 minutes, so that a day in any real time zone (offsets are multiples of 15
-- minutes: India +5:30, Nepal +5:45) is an exact sum of buckets; 'd' = a UTC day, for the whole days
-- inside a long range when no per-day break-up is asked for.
-- Levels (which dimensions are kept; the others are NULL): 0 none (the org's totals), 1 user,
-- 2 module + template + version, 3 all. A report reads the smallest level that has what it filters
-- and groups by.
CREATE TABLE report_rollups (
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  level smallint NOT NULL CHECK (level BETWEEN 0 AND 3),
  grain "char" NOT NULL CHECK (grain IN ('q', 'd')),
  bucket timestamptz NOT NULL,
  -- The sender (the record's owner for a received email); no foreign keys: counts outlive renames
  -- and deletions, and the rebuild recomputes them from what is left.
  user_id uuid,
  module_id uuid,
  template_id uuid,
  template_version integer,
  sent bigint NOT NULL DEFAULT 0,
  bounced bigint NOT NULL DEFAULT 0,
  tracked bigint NOT NULL DEFAULT 0,
  bounced_tracked bigint NOT NULL DEFAULT 0,
  opened bigint NOT NULL DEFAULT 0,
  opened_machine bigint NOT NULL DEFAULT 0,
  clicked bigint NOT NULL DEFAULT 0,
  clicked_machine bigint NOT NULL DEFAULT 0,
  received bigint NOT NULL DEFAULT 0,
  replied bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX report_rollups_key ON report_rollups
  (org_id, level, grain, bucket, user_id, module_id, template_id, template_version) NULLS NOT DISTINCT;
-- One user's or one template's rows over a range, without reading the others'.
CREATE INDEX report_rollups_user_idx ON report_rollups (org_id, level, grain, user_id, bucket)
  WHERE level IN (1, 3);
CREATE INDEX report_rollups_template_idx ON report_rollups (org_id, level, grain, template_id, bucket)
  WHERE level IN (2, 3);
-- The template leaderboard over a long range: read from this index alone (no table rows).
CREATE INDEX report_rollups_board_idx ON report_rollups (org_id, level, grain, bucket)
  INCLUDE (template_id, sent, tracked, opened, clicked) WHERE level = 2;
