// The shapes of the REST API's answers, as the UI uses them.

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

export const FIELD_TYPES: FieldType[] = [
  'text',
  'long_text',
  'email',
  'phone',
  'number',
  'currency',
  'date',
  'datetime',
  'picklist',
  'multi_picklist',
  'boolean',
  'lookup',
  'user',
];

export interface User {
  id: string;
  email: string;
  name: string;
  status: 'invited' | 'confirmed' | 'active' | 'deactivated' | string;
  profileId?: string;
  timeZone: string;
  locale: string;
}

export interface Org {
  id: string;
  name: string;
  edition: string;
  timeZone: string;
  currency: string;
}

export interface ModulePermission {
  read?: boolean;
  create?: boolean;
  edit?: boolean;
  delete?: boolean;
  mass_email?: boolean;
}

export interface Permissions {
  manage_templates?: boolean;
  modules?: Record<string, ModulePermission>;
}

export interface Profile {
  id: string;
  name: string;
  isAdmin: boolean;
  permissions: Permissions;
}

export interface Me {
  user: User;
  org: Org;
  profile: Profile;
  csrfToken?: string;
}

export interface ModuleAccess {
  read: boolean;
  create: boolean;
  edit: boolean;
  delete: boolean;
  massEmail: boolean;
}

export interface ModuleInfo {
  id: string;
  apiName: string;
  singularLabel: string;
  pluralLabel: string;
  isCustom: boolean;
  access: ModuleAccess;
}

export interface Field {
  id: string | null;
  apiName: string;
  label: string;
  type: FieldType;
  required: boolean;
  options: { values?: string[]; module?: string; max_length?: number; decimals?: number };
  isCustom: boolean;
  position: number;
  system?: boolean;
}

export interface ModuleMeta {
  module: ModuleInfo;
  fields: Field[];
}

export interface LookupRef {
  id: string;
  displayName: string;
}

export interface CrmRecord {
  id: string;
  displayName: string;
  ownerId: string;
  ownerName: string | null;
  createdBy?: string | null;
  createdAt: string;
  updatedAt: string;
  data: Record<string, unknown>;
  lookups: Record<string, LookupRef | null>;
}

export interface RelatedList {
  module: string;
  moduleLabel: string;
  field: string;
  fieldLabel?: string;
  records: CrmRecord[];
}

export interface Condition {
  field: string;
  op: string;
  value?: unknown;
}

export interface Criteria {
  conditions: Condition[];
  pattern?: string;
}

export interface Sort {
  field: string;
  dir: 'asc' | 'desc';
}

export interface View {
  id: string;
  name: string;
  systemKey: string | null;
  shared: boolean;
  ownerId: string | null;
  criteria: Criteria | null;
  columns: string[];
  sort: Sort | null;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  key?: string;
}

export interface ImportPreview {
  columns: string[];
  sample: string[][];
  suggestedMapping: Record<string, string | null>;
}

export interface ImportResult {
  imported: number;
  rejected: { line: number; reason: string }[];
  rejectedCount?: number;
}
