-- Email statuses (F4.5, F4.8, F4.11). A message's status is derived from its summary columns
-- (src/tracking/status.ts), never stored twice. A record's latest email status is computed when
-- read, from its newest message (messages_record_idx) and its newest received email (below): two
-- index probes per record, always exact, and no writer (the sender included) keeps a copy.

-- The record's newest received email (latest status, the "received" criteria); without the kind
-- in the index a record's many opens and clicks would be read through to find it.
CREATE INDEX email_events_received_idx ON email_events (org_id, record_id, at DESC)
  WHERE kind = 'received';

-- "Opened / clicked / bounced / replied (in a window)" over a whole org: without these, a criteria
-- with no other selective condition reads every message of the org. Partial, so a message enters
-- one only when it reaches that status: the send path's inserts and updates never touch them.
-- (The predicates match the SQL of status-criteria.ts, which is how Postgres knows it may use them.)
CREATE INDEX messages_first_open_idx ON messages (org_id, (LEAST(opened_at, clicked_at)))
  WHERE LEAST(opened_at, clicked_at) IS NOT NULL;
CREATE INDEX messages_clicked_idx ON messages (org_id, clicked_at) WHERE clicked_at IS NOT NULL;
CREATE INDEX messages_bounced_idx ON messages (org_id, bounced_at) WHERE bounced_at IS NOT NULL;
CREATE INDEX messages_replied_idx ON messages (org_id, replied_at) WHERE replied_at IS NOT NULL;
