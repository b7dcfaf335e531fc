-- Which claimed messages were about to be handed to an SMTP connection (HandoverMarks in
-- src/sending/delivery.ts): one row per chunk of a claim, written and committed before the chunk is
-- sent, deleted once the claim's results are recorded, read only to recover after a worker died.
-- Replaces messages.handed_over_at: one more UPDATE of every message row (a new row version with
-- all its index entries) cost PostgreSQL more CPU than the rest of the send.
CREATE TABLE delivery_handovers (
  id bigserial PRIMARY KEY,
  claimed_at timestamptz NOT NULL,
  message_ids uuid[] NOT NULL
);
CREATE INDEX delivery_handovers_claimed_idx ON delivery_handovers (claimed_at);
ALTER TABLE messages DROP COLUMN handed_over_at;
