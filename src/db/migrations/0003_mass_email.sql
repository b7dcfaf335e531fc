-- Mass email (F3.3–F3.6, F3.9, F4.10): the org's suppression list, mass emails and their follow-ups,
-- recipients left out (with the reason), and the per-edition mass limits.

-- Addresses that never receive bulk mail again (F3.3). email is lower-cased.
CREATE TABLE suppressions (
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  email text NOT NULL,
  reason text NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'unsubscribe', 'manual')),
  message_id uuid REFERENCES messages (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, email)
);

ALTER TABLE edition_limits
  ADD COLUMN mass_daily integer NOT NULL DEFAULT 0 CHECK (mass_daily >= 0),
  ADD COLUMN mass_addon_max integer NOT NULL DEFAULT 2250 CHECK (mass_addon_max >= 0),
  ADD COLUMN followups_per_mass integer NOT NULL DEFAULT 0 CHECK (followups_per_mass >= 0);
UPDATE edition_limits SET mass_daily = 0, followups_per_mass = 0 WHERE edition = 'free';
UPDATE edition_limits SET mass_daily = 250, followups_per_mass = 0 WHERE edition = 'standard';
UPDATE edition_limits SET mass_daily = 500, followups_per_mass = 0 WHERE edition = 'professional';
UPDATE edition_limits SET mass_daily = 1000, followups_per_mass = 3 WHERE edition = 'enterprise';
UPDATE edition_limits SET mass_daily = 1000, followups_per_mass = 5 WHERE edition = 'ultimate';

-- An org's purchased add-on raises its daily mass limit (never above edition_limits.mass_addon_max).
ALTER TABLE orgs ADD COLUMN mass_email_addon integer NOT NULL DEFAULT 0 CHECK (mass_email_addon >= 0);

-- A mass email, or (parent_id set) one of its follow-ups. status: scheduled → sending → sent, or
-- stopped (by its creator, an edit inside the last 15 minutes, or the bounce-rate guard) and back.
-- schedule_version changes on every edit/stop/start: a fired job whose version is stale does nothing.
CREATE TABLE mass_emails (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
  parent_id uuid REFERENCES mass_emails (id) ON DELETE CASCADE,
  position integer NOT NULL DEFAULT 0,
  created_by uuid NOT NULL REFERENCES users (id),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  template_id uuid NOT NULL REFERENCES templates (id),
  from_choice jsonb NOT NULL,
  reply_to_choice jsonb,
  -- {"kind":"ids","ids":[…]} | {"kind":"view","viewId":…} | {"kind":"criteria","criteria":…}; NULL for follow-ups
  audience jsonb,
  followup_audience text CHECK (followup_audience IN ('received', 'opened', 'not_opened', 'clicked', 'not_clicked')),
  followup_days integer CHECK (followup_days BETWEEN 1 AND 365),
  ignore_criteria jsonb,
  status text NOT NULL CHECK (status IN ('scheduled', 'sending', 'sent', 'stopped')),
  stop_reason text,
  send_at timestamptz,
  schedule_version integer NOT NULL DEFAULT 1,
  allow_wait boolean NOT NULL DEFAULT false,
  recipients integer NOT NULL DEFAULT 0,
  excluded integer NOT NULL DEFAULT 0,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((parent_id IS NULL) = (audience IS NOT NULL))
);
CREATE INDEX mass_emails_org_idx ON mass_emails (org_id, status, send_at);
CREATE INDEX mass_emails_parent_idx ON mass_emails (parent_id) WHERE parent_id IS NOT NULL;
-- F3.4: at most 5 per module per time slot (checked under a lock in the service).
CREATE INDEX mass_emails_slot_idx ON mass_emails (org_id, module_id, send_at) WHERE status = 'scheduled';

-- Recipients left out of a mass email, each with its reason (F3.3).
CREATE TABLE mass_email_exclusions (
  mass_email_id uuid NOT NULL REFERENCES mass_emails (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  record_id uuid NOT NULL,
  email text,
  reason text NOT NULL CHECK (reason IN ('no_address', 'invalid_address', 'opted_out', 'suppressed', 'duplicate')),
  PRIMARY KEY (mass_email_id, record_id)
);

-- The per-recipient trace of a mass email is its messages rows.
ALTER TABLE messages ADD COLUMN mass_email_id uuid REFERENCES mass_emails (id) ON DELETE CASCADE;
CREATE INDEX messages_mass_idx ON messages (mass_email_id, status) WHERE mass_email_id IS NOT NULL;

-- What happened to each message after it left, summarised on the row (the insights issue fills
-- these from raw events; follow-up audiences and statistics read them). Human and machine counts
-- are kept apart: only human events count as opened/clicked.
ALTER TABLE messages
  ADD COLUMN tracked boolean NOT NULL DEFAULT false,
  ADD COLUMN bounced_at timestamptz,
  ADD COLUMN bounce_kind text CHECK (bounce_kind IN ('hard', 'soft', 'policy')),
  ADD COLUMN bounce_reason text,
  ADD COLUMN opened_at timestamptz,
  ADD COLUMN last_opened_at timestamptz,
  ADD COLUMN open_count integer NOT NULL DEFAULT 0,
  ADD COLUMN machine_open_count integer NOT NULL DEFAULT 0,
  ADD COLUMN clicked_at timestamptz,
  ADD COLUMN last_clicked_at timestamptz,
  ADD COLUMN click_count integer NOT NULL DEFAULT 0,
  ADD COLUMN machine_click_count integer NOT NULL DEFAULT 0,
  ADD COLUMN replied_at timestamptz;

-- Autoresponders (F3.9): template T to records of module M matching criteria, N days after they
-- are created (or after a date field), once per record; counted against the daily mass limit.
-- Only moments that fall after the autoresponder was switched on fire (no blast of old records).
CREATE TABLE autoresponders (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  template_id uuid NOT NULL REFERENCES templates (id),
  criteria jsonb,
  anchor_field text NOT NULL DEFAULT 'created_at', -- 'created_at' or a date/datetime field's api_name
  days integer NOT NULL CHECK (days BETWEEN 0 AND 3650),
  from_choice jsonb NOT NULL,
  active boolean NOT NULL DEFAULT true,
  active_since timestamptz NOT NULL DEFAULT now(),
  created_by uuid NOT NULL REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX autoresponders_org_idx ON autoresponders (org_id) WHERE active;

-- Workflow email action (F3.10): on create and/or edit of a record matching criteria, send a
-- template to the record or to chosen users.
CREATE TABLE workflow_rules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  on_create boolean NOT NULL DEFAULT true,
  on_edit boolean NOT NULL DEFAULT false,
  criteria jsonb,
  template_id uuid NOT NULL REFERENCES templates (id),
  to_record boolean NOT NULL DEFAULT true,
  to_user_ids uuid[] NOT NULL DEFAULT '{}',
  from_choice jsonb NOT NULL,
  active boolean NOT NULL DEFAULT true,
  -- Record writes up to this instant have been looked at (creates, edits, imports, mass updates alike).
  checked_until timestamptz NOT NULL DEFAULT now(),
  created_by uuid NOT NULL REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_rules_org_idx ON workflow_rules (org_id, module_id) WHERE active;

ALTER TABLE messages ADD COLUMN autoresponder_id uuid REFERENCES autoresponders (id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN workflow_rule_id uuid REFERENCES workflow_rules (id) ON DELETE SET NULL;
-- Once per record per autoresponder, whatever races.
CREATE UNIQUE INDEX messages_autoresponder_once ON messages (autoresponder_id, record_id) WHERE autoresponder_id IS NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_kind_check;
ALTER TABLE messages ADD CONSTRAINT messages_kind_check
  CHECK (kind IN ('individual', 'mass', 'test', 'system', 'autoresponder', 'workflow'));

-- When a claimed message was handed to the SMTP connection (written, in small batches, before the
-- hand-over). After a crash, a 'sending' row without it was never offered to any server and goes
-- back to the queue; only rows with it can have been delivered, and become 'unknown'.
ALTER TABLE messages ADD COLUMN handed_over_at timestamptz;
