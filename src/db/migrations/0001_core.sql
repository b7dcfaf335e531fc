-- Core CRM schema: orgs, users, access, modules/fields metadata, records, views.
-- Every org-owned table carries org_id; every query filters on it.

CREATE TABLE orgs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  edition text NOT NULL DEFAULT 'professional'
    CHECK (edition IN ('free', 'standard', 'professional', 'enterprise', 'ultimate')),
  time_zone text NOT NULL DEFAULT 'UTC',
  currency text NOT NULL DEFAULT 'USD',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profiles (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  is_admin boolean NOT NULL DEFAULT false,
  -- {"manage_templates": bool, "modules": {"leads": {"read":true,"create":true,"edit":true,"delete":true,"mass_email":true}}}
  permissions jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name)
);

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  profile_id uuid NOT NULL REFERENCES profiles (id),
  email text NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  password_hash text,
  status text NOT NULL DEFAULT 'invited' CHECK (status IN ('invited', 'confirmed', 'active', 'deactivated')),
  time_zone text NOT NULL DEFAULT 'UTC',
  locale text NOT NULL DEFAULT 'en-US',
  invite_token_hash text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- A login email names one user across all orgs.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_org_idx ON users (org_id);
CREATE UNIQUE INDEX users_invite_token_key ON users (invite_token_hash) WHERE invite_token_hash IS NOT NULL;

CREATE TABLE sessions (
  id text PRIMARY KEY, -- sha256 of the cookie token; the token itself is never stored
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  csrf_token text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  prefix text NOT NULL,
  key_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);

CREATE TABLE modules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  api_name text NOT NULL CHECK (api_name ~ '^[a-z][a-z0-9_]{0,49}$'),
  singular_label text NOT NULL,
  plural_label text NOT NULL,
  is_custom boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, api_name)
);

CREATE TABLE fields (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
  api_name text NOT NULL CHECK (api_name ~ '^[a-z][a-z0-9_]{0,59}$'),
  label text NOT NULL,
  type text NOT NULL CHECK (type IN ('text', 'long_text', 'email', 'phone', 'number', 'currency', 'date',
    'datetime', 'picklist', 'multi_picklist', 'boolean', 'lookup', 'user')),
  required boolean NOT NULL DEFAULT false,
  -- picklist values, lookup target module, number precision …
  options jsonb NOT NULL DEFAULT '{}',
  is_custom boolean NOT NULL DEFAULT false,
  position integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (module_id, api_name)
);
CREATE INDEX fields_org_idx ON fields (org_id, module_id);

-- Records of every module. Field values live in data (validated per field type on write, stored in a
-- canonical form so that SQL comparisons are right: numbers as JSON numbers, dates as YYYY-MM-DD,
-- datetimes as ISO-8601 UTC). Owner and timestamps are real columns.
CREATE TABLE records (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
  owner_id uuid NOT NULL REFERENCES users (id),
  created_by uuid REFERENCES users (id),
  data jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Default list order and keyset paging.
CREATE INDEX records_list_idx ON records (org_id, module_id, created_at DESC, id DESC);
CREATE INDEX records_owner_idx ON records (org_id, module_id, owner_id);
-- Equality on any field (criteria compile "is" to containment) and lookups to related records.
CREATE INDEX records_data_idx ON records USING gin (data jsonb_path_ops);
CREATE INDEX records_email_idx ON records (org_id, lower(data ->> 'email')) WHERE data ? 'email';

CREATE TABLE views (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
  owner_id uuid REFERENCES users (id) ON DELETE CASCADE, -- NULL for system views
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  system_key text, -- e.g. 'all', 'mine', 'recent'; NULL for user views
  shared boolean NOT NULL DEFAULT false,
  criteria jsonb,
  columns jsonb NOT NULL DEFAULT '[]',
  sort jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX views_module_idx ON views (org_id, module_id);
