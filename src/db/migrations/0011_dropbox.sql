-- BCC Dropbox (issue 6, F6.2): each org's inbound address, the sender addresses whose mail is
-- attached to records, and every email received there (attached, unmatched or discarded).

-- The address is dropbox-<token>@<inbound domain>; the token is 160 random bits in lower-case
-- base32. Mail is routed by token_hash (sha256 of the token), so the listener never decrypts; the
-- token itself is kept encrypted (src/sending/secrets.ts, bound to the org) only because admins
-- must be able to read the address again. Regenerating replaces the row: the old token stops working.
CREATE TABLE dropbox_addresses (
  org_id uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  token_enc text NOT NULL,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Verified senders: mail whose From is one of these (verified) is attached to records. Verified
-- either because it is an org user's own login email (user_id set: it stops counting when that
-- user is deactivated or changes address) or because the link mailed to it was opened.
CREATE TABLE dropbox_senders (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  -- lower-cased
  email text NOT NULL,
  user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  verify_token_hash text UNIQUE,
  verify_sent_at timestamptz,
  verified_at timestamptz,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, email)
);

-- One row per email received at an org's dropbox. The email itself is in mail_messages (source
-- 'dropbox'); from, subject and date are copied so a discarded item (email deleted) still reads.
-- spf / dkim hold mailauth's result words (pass, fail, softfail, neutral, none, temperror,
-- permerror, policy), the *_detail its explanation.
CREATE TABLE dropbox_items (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  mail_id uuid REFERENCES mail_messages (id) ON DELETE SET NULL,
  envelope_from text NOT NULL DEFAULT '',
  from_address text,
  from_name text,
  subject text NOT NULL DEFAULT '',
  date timestamptz NOT NULL,
  remote_ip text,
  helo text,
  spf text NOT NULL,
  spf_detail text,
  dkim text NOT NULL,
  dkim_domain text,
  dkim_detail text,
  state text NOT NULL CHECK (state IN ('attached', 'unmatched', 'discarded')),
  -- Why it was not attached when it arrived (kept after an assign or discard).
  reason text CHECK (reason IN ('unverified_sender', 'no_record')),
  received_at timestamptz NOT NULL DEFAULT now(),
  resolved_by uuid REFERENCES users (id) ON DELETE SET NULL,
  resolved_at timestamptz,
  CHECK (state <> 'unmatched' OR reason IS NOT NULL)
);
CREATE INDEX dropbox_items_list_idx ON dropbox_items (org_id, state, received_at DESC, id DESC);
CREATE INDEX dropbox_items_mail_idx ON dropbox_items (mail_id) WHERE mail_id IS NOT NULL;
