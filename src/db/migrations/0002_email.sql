-- Email: templates and their versions, org addresses, SMTP relays and DKIM keys, messages and the
-- local outbox, and the daily sending limits per edition.

-- The operator edits this table to change limits (F3.7). Individual emails per GMT day:
-- individual_per_user × active confirmed users while users <= individual_user_cap (NULL: no cap);
-- individual_flat_over_cap once the org has more users than the cap.
CREATE TABLE edition_limits (
  edition text PRIMARY KEY CHECK (edition IN ('free', 'standard', 'professional', 'enterprise', 'ultimate')),
  individual_per_user integer NOT NULL CHECK (individual_per_user >= 0),
  individual_user_cap integer CHECK (individual_user_cap > 0),
  individual_flat_over_cap integer CHECK (individual_flat_over_cap >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO edition_limits (edition, individual_per_user, individual_user_cap, individual_flat_over_cap) VALUES
  ('free', 50, 4, 200),
  ('standard', 300, NULL, NULL),
  ('professional', 300, NULL, NULL),
  ('enterprise', 300, NULL, NULL),
  ('ultimate', 300, NULL, NULL);

-- What each org used per GMT day and kind ('individual', later 'mass'); incremented atomically with
-- the limit check so that concurrent sends never pass the limit.
CREATE TABLE daily_usage (
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  day date NOT NULL,
  kind text NOT NULL,
  used integer NOT NULL DEFAULT 0 CHECK (used >= 0),
  PRIMARY KEY (org_id, day, kind)
);

CREATE TABLE template_folders (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name)
);

CREATE TABLE templates (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
  folder_id uuid REFERENCES template_folders (id) ON DELETE SET NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  current_version integer NOT NULL DEFAULT 1,
  created_by uuid REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX templates_org_idx ON templates (org_id, module_id) WHERE deleted_at IS NULL;

-- Versions are immutable: every saved change inserts one. html is the CSS-inlined body that is sent;
-- html_source is what the author wrote; text is the author's or generated from html (text_generated).
CREATE TABLE template_versions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  template_id uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
  version integer NOT NULL CHECK (version >= 1),
  subject text NOT NULL,
  html_source text NOT NULL,
  html text NOT NULL,
  text text NOT NULL,
  text_generated boolean NOT NULL DEFAULT false,
  from_address text,
  from_name text,
  reply_to text,
  comment text,
  author_id uuid REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (template_id, version)
);

-- Shared sending addresses (F6.1): usable as From only once verified_at is set.
CREATE TABLE org_addresses (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  email text NOT NULL,
  display_name text,
  verify_token_hash text,
  verify_sent_at timestamptz,
  verified_at timestamptz,
  created_by uuid REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX org_addresses_email_key ON org_addresses (org_id, lower(email));
CREATE UNIQUE INDEX org_addresses_token_key ON org_addresses (verify_token_hash) WHERE verify_token_hash IS NOT NULL;

-- One SMTP relay per org (F3.8). password_enc is AES-256-GCM under a key derived from the app
-- secret and never leaves the server. domain_limits: {"gmail.com": {"connections": 2, "perSecond": 5}}.
CREATE TABLE smtp_relays (
  org_id uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
  host text NOT NULL,
  port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
  security text NOT NULL CHECK (security IN ('none', 'starttls', 'tls')),
  username text,
  password_enc text,
  max_connections integer NOT NULL DEFAULT 5 CHECK (max_connections BETWEEN 1 AND 100),
  max_per_second numeric NOT NULL DEFAULT 50 CHECK (max_per_second > 0),
  domain_limits jsonb NOT NULL DEFAULT '{}',
  -- The domain of Message-IDs and VERP return paths, e.g. mail.example.com.
  sending_domain text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dkim_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  domain text NOT NULL,
  selector text NOT NULL CHECK (selector ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
  algorithm text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
  private_key_enc text NOT NULL,
  public_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, domain, selector)
);

-- One message = one email to one recipient. status only moves forward:
-- queued → sending → sent | failed | deferred (→ sending again) | unknown (connection lost after DATA).
CREATE TABLE messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('individual', 'mass', 'test', 'system')),
  module_id uuid REFERENCES modules (id) ON DELETE SET NULL,
  record_id uuid REFERENCES records (id) ON DELETE SET NULL,
  template_id uuid REFERENCES templates (id) ON DELETE SET NULL,
  template_version integer,
  sender_id uuid REFERENCES users (id),
  from_address text NOT NULL,
  from_name text,
  reply_to text,
  to_address text NOT NULL,
  to_name text,
  subject text NOT NULL,
  html text,
  text text,
  message_id_header text NOT NULL,
  transport text NOT NULL CHECK (transport IN ('relay', 'outbox')),
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'unknown')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  claimed_at timestamptz,
  smtp_code integer,
  smtp_response text,
  sent_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_record_idx ON messages (org_id, record_id, created_at DESC);
CREATE INDEX messages_due_idx ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_sending_idx ON messages (claimed_at) WHERE status = 'sending';
CREATE UNIQUE INDEX messages_message_id_key ON messages (message_id_header);

-- The local outbox: with no relay, the exact bytes that would have gone out are kept here.
CREATE TABLE outbox (
  message_id uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  raw bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_org_idx ON outbox (org_id, created_at DESC);
