-- Mailbox integration (issue 6), the shared store: connected mailboxes and their folder cursors,
-- received and sent mail stored once per org, where each copy lives, and which CRM records it
-- concerns. The BCC dropbox and SalesInbox add their own tables in later migrations.

-- A user's connected mailbox (IMAP or POP3). secret_enc is the password or OAuth2 bearer token,
-- AES-256-GCM (src/sending/secrets.ts) bound to the account; the API never returns it.
CREATE TABLE mailbox_accounts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  protocol text NOT NULL CHECK (protocol IN ('imap', 'pop3')),
  host text NOT NULL,
  port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
  security text NOT NULL CHECK (security IN ('tls', 'starttls', 'none')),
  username text NOT NULL,
  auth text NOT NULL DEFAULT 'password' CHECK (auth IN ('password', 'oauth2')),
  secret_enc text NOT NULL,
  -- The mailbox's own address: mail from it is outgoing.
  email_address text NOT NULL,
  backfill_days integer NOT NULL DEFAULT 90 CHECK (backfill_days BETWEEN 1 AND 3650),
  -- Others who can read a linked record see this mailbox's mail there; false keeps it to its owner.
  shared boolean NOT NULL DEFAULT true,
  -- paused: stopped by the user or by an authentication failure (the user is told why).
  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused')),
  error_code text,
  error_message text,
  error_at timestamptz,
  -- Consecutive temporary failures, for the retry backoff.
  failures integer NOT NULL DEFAULT 0,
  backfill_done boolean NOT NULL DEFAULT false,
  last_sync_at timestamptz,
  next_sync_at timestamptz NOT NULL DEFAULT now(),
  -- A worker holds an account while it syncs (or idles on it) and renews the lease.
  lease_owner text,
  lease_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailbox_accounts_user_idx ON mailbox_accounts (org_id, user_id);
CREATE INDEX mailbox_accounts_due_idx ON mailbox_accounts (next_sync_at) WHERE state = 'active';

-- Per IMAP folder sync cursor (RFC 3501 UIDVALIDITY/UIDNEXT, RFC 7162 HIGHESTMODSEQ).
CREATE TABLE mailbox_folders (
  account_id uuid NOT NULL REFERENCES mailbox_accounts (id) ON DELETE CASCADE,
  path text NOT NULL,
  role text NOT NULL CHECK (role IN ('inbox', 'sent')),
  uidvalidity bigint,
  uidnext bigint,
  highest_modseq bigint,
  -- Every UID up to here has been looked at.
  last_uid bigint NOT NULL DEFAULT 0,
  synced_at timestamptz,
  PRIMARY KEY (account_id, path)
);

-- One row per email per org, whichever mailboxes or folders hold copies of it. message_key is the
-- Message-ID header (with its angle brackets) or 'sha256:<hex>' of the content when it has none.
CREATE TABLE mail_messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  message_key text NOT NULL,
  message_id_header text,
  in_reply_to text,
  "references" text[] NOT NULL DEFAULT '{}',
  thread_id uuid NOT NULL,
  subject text NOT NULL DEFAULT '',
  from_address text,
  from_name text,
  -- [{address, name}]
  to_addresses jsonb NOT NULL DEFAULT '[]',
  cc_addresses jsonb NOT NULL DEFAULT '[]',
  -- Lower-cased from, to and cc addresses: the record matching and the inbox filters read this.
  participants text[] NOT NULL DEFAULT '{}',
  date timestamptz NOT NULL,
  text_body text,
  -- As received; sanitised whenever it is shown.
  html_body text,
  snippet text NOT NULL DEFAULT '',
  has_attachments boolean NOT NULL DEFAULT false,
  size integer,
  source text NOT NULL CHECK (source IN ('imap', 'pop3', 'dropbox')),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, message_key)
);
CREATE INDEX mail_messages_thread_idx ON mail_messages (org_id, thread_id, date);
CREATE INDEX mail_messages_date_idx ON mail_messages (org_id, date DESC, id DESC);
CREATE INDEX mail_messages_msgid_idx ON mail_messages (org_id, message_id_header) WHERE message_id_header IS NOT NULL;
CREATE INDEX mail_messages_participants_idx ON mail_messages USING gin (participants);

-- Attachments: metadata always; content only when no mailbox can serve it on demand (small ones
-- of BCC dropbox mail). part is the IMAP body part to fetch.
CREATE TABLE mail_attachments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  mail_id uuid NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
  idx integer NOT NULL,
  filename text,
  content_type text NOT NULL DEFAULT 'application/octet-stream',
  size integer,
  content_id text,
  part text,
  content bytea,
  UNIQUE (mail_id, idx)
);

-- Where a copy of an email lives: a folder and UID (IMAP) or a UIDL (POP3) of a user's mailbox.
-- seen is that mailbox's \Seen flag (the inbox's unread filter).
CREATE TABLE mail_locations (
  id bigserial PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  mail_id uuid NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
  account_id uuid NOT NULL REFERENCES mailbox_accounts (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  folder text NOT NULL,
  uid bigint,
  uidl text,
  direction text NOT NULL CHECK (direction IN ('in', 'out')),
  seen boolean NOT NULL DEFAULT false,
  date timestamptz NOT NULL,
  CHECK ((uid IS NULL) <> (uidl IS NULL))
);
CREATE UNIQUE INDEX mail_locations_imap_key ON mail_locations (account_id, folder, uid) WHERE uid IS NOT NULL;
CREATE UNIQUE INDEX mail_locations_pop_key ON mail_locations (account_id, uidl) WHERE uidl IS NOT NULL;
CREATE INDEX mail_locations_user_idx ON mail_locations (org_id, user_id, date DESC, mail_id);
CREATE INDEX mail_locations_mail_idx ON mail_locations (mail_id);

-- The Leads and Contacts an email concerns (one of their email addresses is among its participants).
CREATE TABLE mail_record_links (
  mail_id uuid NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
  record_id uuid NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL,
  -- How the record takes part: 'from', 'to' or 'cc'.
  role text NOT NULL CHECK (role IN ('from', 'to', 'cc')),
  PRIMARY KEY (mail_id, record_id)
);
CREATE INDEX mail_record_links_record_idx ON mail_record_links (org_id, record_id);
