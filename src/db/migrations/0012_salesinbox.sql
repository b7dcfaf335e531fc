-- SalesInbox (issue 6, F6.4): a user's labels on their synced mail, ResponseWatch reminders on sent
-- mail, in-app notifications, and the rules that add senders as Leads or Contacts.

-- A user's own labels; colour is a name from the fixed palette the UI knows.
CREATE TABLE mail_labels (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
  colour text NOT NULL CHECK (colour IN ('gray', 'red', 'orange', 'yellow', 'green', 'teal', 'blue', 'purple', 'pink')),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX mail_labels_name_key ON mail_labels (user_id, lower(name));

-- Several labels per email; the label's owner is the only one who sees them.
CREATE TABLE mail_label_assignments (
  label_id uuid NOT NULL REFERENCES mail_labels (id) ON DELETE CASCADE,
  mail_id uuid NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (label_id, mail_id)
);
CREATE INDEX mail_label_assignments_mail_idx ON mail_label_assignments (mail_id, user_id);

-- "Remind me if no reply": on a sent email of the user's own mailbox (mail_id) or on one Parley
-- sent for them (message_id). Either way the watched Message-ID (angle brackets kept) is what a
-- reply names in In-Reply-To or References.
CREATE TABLE response_watches (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  mail_id uuid REFERENCES mail_messages (id) ON DELETE CASCADE,
  message_id uuid REFERENCES messages (id) ON DELETE CASCADE,
  message_id_header text NOT NULL,
  subject text NOT NULL DEFAULT '',
  -- The record the reminder task is related to, when known.
  record_id uuid REFERENCES records (id) ON DELETE SET NULL,
  module_id uuid,
  due_at timestamptz NOT NULL,
  state text NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'replied', 'reminded', 'cancelled')),
  replied_at timestamptz,
  reminded_at timestamptz,
  task_id uuid REFERENCES records (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((mail_id IS NULL) <> (message_id IS NULL))
);
-- One live watch per user and sent email.
CREATE UNIQUE INDEX response_watches_live_key ON response_watches (user_id, message_id_header) WHERE state = 'waiting';
CREATE INDEX response_watches_due_idx ON response_watches (due_at) WHERE state = 'waiting';
CREATE INDEX response_watches_mail_idx ON response_watches (mail_id) WHERE mail_id IS NOT NULL;
CREATE INDEX response_watches_message_idx ON response_watches (message_id) WHERE message_id IS NOT NULL;
-- The reply check looks mail up by the Message-ID it answers.
CREATE INDEX mail_messages_in_reply_to_idx ON mail_messages (org_id, in_reply_to) WHERE in_reply_to IS NOT NULL;
CREATE INDEX mail_messages_references_idx ON mail_messages USING gin ("references");

-- In-app notifications (the bell). link is a path inside the app, built by the server.
CREATE TABLE notifications (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind text NOT NULL,
  title text NOT NULL,
  body text NOT NULL DEFAULT '',
  link text,
  created_at timestamptz NOT NULL DEFAULT now(),
  read_at timestamptz
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;

-- Rules that add the sender of incoming mail as a Lead or Contact. user_id NULL: an org-wide rule
-- (admins) for every mailbox; else it applies to that user's mailbox only. match_values: domains,
-- subject keywords (any of them) or folder names.
CREATE TABLE mail_lead_rules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  module text NOT NULL CHECK (module IN ('leads', 'contacts')),
  match text NOT NULL CHECK (match IN ('domain', 'keyword', 'folder')),
  match_values text[] NOT NULL CHECK (cardinality(match_values) BETWEEN 1 AND 50),
  active boolean NOT NULL DEFAULT true,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mail_lead_rules_org_idx ON mail_lead_rules (org_id) WHERE active;

-- Every address a rule has added (lower-cased): never added twice, even after the record is deleted.
CREATE TABLE mail_lead_rule_adds (
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  address text NOT NULL,
  rule_id uuid REFERENCES mail_lead_rules (id) ON DELETE SET NULL,
  record_id uuid REFERENCES records (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, address)
);
