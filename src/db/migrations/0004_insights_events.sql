-- Insights (issue 5), the shared part: the org switch and the one feed of judged email events.
-- Tracking hits and bounces write here; statuses, the live feed (SSE), outgoing webhooks and
-- trigger actions read it by id (a cursor), woken by NOTIFY on the parley_email_events channel.

-- Insights are on by default; off means nothing is tracked or rewritten in new sends.
ALTER TABLE orgs ADD COLUMN insights_enabled boolean NOT NULL DEFAULT true;

CREATE TABLE email_events (
  id bigserial PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  message_id uuid REFERENCES messages (id) ON DELETE CASCADE,
  record_id uuid REFERENCES records (id) ON DELETE SET NULL,
  mass_email_id uuid REFERENCES mass_emails (id) ON DELETE SET NULL,
  kind text NOT NULL
    CHECK (kind IN ('opened', 'clicked', 'bounced', 'complained', 'unsubscribed', 'replied', 'received')),
  -- false for machine opens and scanner clicks: those never fire triggers or follow-ups.
  human boolean NOT NULL DEFAULT true,
  at timestamptz NOT NULL,
  -- kind-specific detail: {link, url} for clicks, {kind, status, reason} for bounces, …
  data jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_events_org_idx ON email_events (org_id, id);
CREATE INDEX email_events_message_idx ON email_events (message_id);
CREATE INDEX email_events_record_idx ON email_events (org_id, record_id, at DESC);
