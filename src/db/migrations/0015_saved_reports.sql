-- Reports UI (issue 7): saved Sent Email Status reports, files attached to queued messages (a report
-- emailed as CSV), and the index the Sent Email Status list pages on.

-- A user's named report: its chosen, ordered columns and filters. Private to its owner.
CREATE TABLE saved_reports (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('sent_status')),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  config jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, user_id, kind, name)
);

-- Files that go with a queued message (multipart/mixed). Written with the message, in one
-- transaction; the message's row owns them.
CREATE TABLE message_attachments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  filename text NOT NULL CHECK (length(filename) BETWEEN 1 AND 200),
  content_type text NOT NULL,
  content bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_attachments_message_idx ON message_attachments (message_id);

-- Sent Email Status: newest first, one org, keyset pages over (sent_at, id).
CREATE INDEX messages_sent_status_idx ON messages (org_id, sent_at DESC, id DESC) WHERE sent_at IS NOT NULL;
