import type { ColumnType, Generated, JSONColumnType } from 'kysely';

// Table types for Kysely. Column names mirror the SQL in migrations/ exactly.
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T extends object | null> = JSONColumnType<T, T | string, T | string>;
// Columns with a database default: optional on insert.
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export type Edition = 'free' | 'standard' | 'professional' | 'enterprise' | 'ultimate';
export type UserStatus = 'invited' | 'confirmed' | 'active' | 'deactivated';
export type FieldType =
  | 'text'
  | 'long_text'
  | 'email'
  | 'phone'
  | 'number'
  | 'currency'
  | 'date'
  | 'datetime'
  | 'picklist'
  | 'multi_picklist'
  | 'boolean'
  | 'lookup'
  | 'user';

export interface ModulePermission {
  read: boolean;
  create: boolean;
  edit: boolean;
  delete: boolean;
  mass_email: boolean;
}

export interface Permissions {
  manage_templates?: boolean;
  modules?: Record<string, Partial<ModulePermission>>;
}

export interface FieldOptions {
  values?: string[]; // picklist, multi_picklist
  module?: string; // lookup: target module api_name
  max_length?: number;
  decimals?: number;
}

export interface OrgsTable {
  id: Generated<string>;
  name: string;
  edition: ColumnType<Edition, Edition | undefined, Edition>;
  time_zone: Generated<string>;
  currency: Generated<string>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface ProfilesTable {
  id: Generated<string>;
  org_id: string;
  name: string;
  is_admin: Generated<boolean>;
  permissions: Json<Permissions>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface UsersTable {
  id: Generated<string>;
  org_id: string;
  profile_id: string;
  email: string;
  name: string;
  password_hash: string | null;
  status: ColumnType<UserStatus, UserStatus | undefined, UserStatus>;
  time_zone: Generated<string>;
  locale: Generated<string>;
  invite_token_hash: string | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface SessionsTable {
  id: string;
  org_id: string;
  user_id: string;
  csrf_token: string;
  created_at: DefaultTimestamp;
  expires_at: Timestamp;
}

export interface ApiKeysTable {
  id: Generated<string>;
  org_id: string;
  user_id: string;
  name: string;
  prefix: string;
  key_hash: string;
  created_at: DefaultTimestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface ModulesTable {
  id: Generated<string>;
  org_id: string;
  api_name: string;
  singular_label: string;
  plural_label: string;
  is_custom: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface FieldsTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  api_name: string;
  label: string;
  type: FieldType;
  required: Generated<boolean>;
  options: Json<FieldOptions>;
  is_custom: Generated<boolean>;
  position: Generated<number>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface RecordsTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  owner_id: string;
  created_by: string | null;
  data: Json<Record<string, unknown>>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface ViewsTable {
  id: Generated<string>;
  org_id: string;
  module_id: string;
  owner_id: string | null;
  name: string;
  system_key: string | null;
  shared: Generated<boolean>;
  criteria: Json<object> | null;
  columns: Json<string[]>;
  sort: Json<{ field: string; dir: 'asc' | 'desc' }> | null;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface DB {
  orgs: OrgsTable;
  profiles: ProfilesTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  modules: ModulesTable;
  fields: FieldsTable;
  records: RecordsTable;
  views: ViewsTable;
}
