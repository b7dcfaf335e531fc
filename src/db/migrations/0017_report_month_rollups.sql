-- Reports (issue 7): a third grain, 'm' = a UTC calendar month, so that a report over a long range
-- (a year's leaderboard) reads a dozen month rows per key instead of 365 day rows. Ranges read
-- month rows for the whole UTC months inside them, day rows for the other whole UTC days, and
-- 15-minute rows for the ragged ends (src/reports/query.ts).
ALTER TABLE report_rollups DROP CONSTRAINT report_rollups_grain_check;
ALTER TABLE report_rollups ADD CONSTRAINT report_rollups_grain_check CHECK (grain IN ('q', 'd', 'm'));

-- The month rows of what is already counted, from the day rows (each fact is in exactly one day).
INSERT INTO report_rollups (org_id, level, grain, bucket, user_id, module_id, template_id, template_version,
  sent, bounced, tracked, bounced_tracked, opened, opened_machine, clicked, clicked_machine, received, replied)
SELECT org_id, level, 'm', date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
  user_id, module_id, template_id, template_version,
  sum(sent), sum(bounced), sum(tracked), sum(bounced_tracked), sum(opened), sum(opened_machine),
  sum(clicked), sum(clicked_machine), sum(received), sum(replied)
FROM report_rollups WHERE grain = 'd'
GROUP BY org_id, level, 4, user_id, module_id, template_id, template_version;
