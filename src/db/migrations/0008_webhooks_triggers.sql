-- Outgoing webhooks (F7.2) and trigger actions (F4.9): both read the email_events feed (and, for
-- webhooks, messages reaching 'sent') by cursor, from any number of worker processes.

-- Feed readers must never skip an event whose transaction commits after a later id was read:
-- each event carries its inserting transaction id, and readers only take events of transactions
-- older than every transaction still running (pg_snapshot_xmin), in (txid, id) order.
ALTER TABLE email_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX email_events_txid_idx ON email_events (txid, id);

-- Where each feed reader is. 'events' cursors use (txid, id); 'sent' cursors use (at, message id).
CREATE TABLE feed_cursors (
  name text PRIMARY KEY,
  txid xid8 NOT NULL DEFAULT '0',
  event_id bigint NOT NULL DEFAULT 0,
  at timestamptz,
  message_id uuid,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Finding messages that reached 'sent' since a time: a BRIN index costs the send path almost nothing.
CREATE INDEX messages_sent_brin ON messages USING brin (sent_at) WITH (pages_per_range = 32, autosummarize = on);

CREATE TABLE webhook_endpoints (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  url text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
  description text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
  events text[] NOT NULL CHECK (cardinality(events) > 0 AND events <@ ARRAY['sent', 'delivered', 'bounced',
    'opened', 'clicked', 'replied', 'unsubscribed']::text[]),
  -- The signing secret, encrypted (src/sending/secrets.ts); shown to the admin once.
  secret_enc text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id) WHERE enabled;

-- One row per event per endpoint: its payload, its state and its log. event_key makes the fan-out
-- idempotent ('e:<email_events.id>', 's:<message id>', 'd:<message id>', 't:<uuid>' for tests).
CREATE TABLE webhook_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  event_key text NOT NULL,
  event text NOT NULL,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  claimed_at timestamptz,
  last_status_code integer,
  last_error text,
  last_duration_ms integer,
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (endpoint_id, event_key)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_claimed_idx ON webhook_deliveries (claimed_at) WHERE status = 'delivering';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (org_id, endpoint_id, created_at DESC);

CREATE TABLE webhook_attempts (
  delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt integer NOT NULL,
  at timestamptz NOT NULL,
  status_code integer,
  duration_ms integer NOT NULL,
  error text,
  PRIMARY KEY (delivery_id, attempt)
);

-- Trigger actions of a mass email or follow-up: per event ('opened', 'clicked', 'bounced') what to do.
-- actions: {"fieldUpdates":[{"field","value"}],"tasks":[…],"calls":[…]}
CREATE TABLE mass_email_triggers (
  mass_email_id uuid NOT NULL REFERENCES mass_emails (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  event text NOT NULL CHECK (event IN ('opened', 'clicked', 'bounced')),
  actions jsonb NOT NULL,
  updated_by uuid REFERENCES users (id) ON DELETE SET NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mass_email_id, event)
);

-- Each trigger fires once per recipient, whatever races or repeats.
CREATE TABLE trigger_firings (
  mass_email_id uuid NOT NULL REFERENCES mass_emails (id) ON DELETE CASCADE,
  record_id uuid NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  event text NOT NULL,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  email_event_id bigint,
  fired_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mass_email_id, record_id, event)
);

-- What happened to a record and why, for changes made by the system (trigger actions, …).
CREATE TABLE record_history (
  id bigserial PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  record_id uuid NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  at timestamptz NOT NULL DEFAULT now(),
  source text NOT NULL,
  mass_email_id uuid REFERENCES mass_emails (id) ON DELETE SET NULL,
  summary text NOT NULL,
  detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX record_history_record_idx ON record_history (org_id, record_id, at DESC);
