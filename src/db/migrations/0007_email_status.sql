-- Email statuses (F4.5, F4.8, F4.11). A message's status is derived from its summary columns
-- (src/tracking/status.ts), never stored twice. A record's latest email status is computed when
-- read, from its newest message (messages_record_idx) and its newest received email (below): two
-- index probes per record, always exact, and no writer (the sender included) keeps a copy.

-- The record's newest received email (latest status, the "received" criteria); without the kind
-- in the index a record's many opens and clicks would be read through to find it.
CREATE INDEX email_events_received_idx ON email_events (org_id, record_id, at DESC)
  WHERE kind = 'received';
