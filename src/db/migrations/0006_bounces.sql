-- Bounces and complaints (issue 5): graded suppression, complaints on messages, admin alerts for
-- policy bounces, the suppression history, and per-org provider webhooks.

-- A soft-bounce suppression (3 soft bounces in the last 5 sends over more than a week) can be lifted
-- when the address writes in; complaints, unsubscribes and manual entries never are.
ALTER TABLE suppressions DROP CONSTRAINT suppressions_reason_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_reason_check
  CHECK (reason IN ('hard_bounce', 'soft_bounce', 'complaint', 'unsubscribe', 'manual'));
ALTER TABLE suppressions
  ADD COLUMN detail text,
  ADD COLUMN created_by uuid REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX suppressions_org_created_idx ON suppressions (org_id, created_at DESC, email);

-- Who added or removed which suppression, and why: shown to admins; the soft-bounce grading starts
-- over after a removal.
CREATE TABLE suppression_history (
  id bigserial PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  email text NOT NULL,
  action text NOT NULL CHECK (action IN ('added', 'removed')),
  reason text NOT NULL,
  detail text,
  user_id uuid REFERENCES users (id) ON DELETE SET NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppression_history_email_idx ON suppression_history (org_id, email, at DESC);

-- A complaint (ARF report, provider spam report) on the message itself; bounce_kind stays the
-- delivery outcome.
ALTER TABLE messages ADD COLUMN complained_at timestamptz;
-- The soft-bounce grading looks up an address's soft bounces; the partial index stays tiny and
-- costs nothing on the mass-send insert path.
CREATE INDEX messages_soft_bounce_idx ON messages (org_id, lower(to_address)) WHERE bounce_kind = 'soft';

-- Things an admin must act on, e.g. mail refused for policy (5.7.x: spam, authentication,
-- reputation): the sender's problem, so the address is not suppressed. Repeats of one problem
-- (same kind and key) add to one open alert until an admin dismisses it.
CREATE TABLE admin_alerts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('bounce_policy')),
  key text NOT NULL,
  title text NOT NULL,
  detail text NOT NULL,
  count integer NOT NULL DEFAULT 1,
  message_id uuid REFERENCES messages (id) ON DELETE SET NULL,
  first_at timestamptz NOT NULL,
  last_at timestamptz NOT NULL,
  dismissed_at timestamptz,
  dismissed_by uuid REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX admin_alerts_open_key ON admin_alerts (org_id, kind, key) WHERE dismissed_at IS NULL;
CREATE INDEX admin_alerts_org_idx ON admin_alerts (org_id, last_at DESC);

-- Bounce and complaint webhooks of email providers, one per org and provider. The URL carries an
-- unguessable token (only its SHA-256 is stored); the provider's own proof (SNS signature and topic,
-- SendGrid's ECDSA key, Mailgun's signing key, Postmark's basic-auth password) is checked too.
-- secret_enc is AES-256-GCM (src/sending/secrets.ts), bound to the org and provider.
CREATE TABLE bounce_webhooks (
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  provider text NOT NULL CHECK (provider IN ('ses', 'sendgrid', 'postmark', 'mailgun')),
  token_hash text NOT NULL UNIQUE,
  secret_enc text,
  -- ses: {"topicArns": […]}; postmark: {"username": "…"}
  config jsonb NOT NULL DEFAULT '{}',
  last_received_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, provider)
);
