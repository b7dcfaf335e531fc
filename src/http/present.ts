// Row → API shapes (camelCase), one function per resource, so every route answers alike.
import type { ModuleMeta } from '../crm/index.ts';

type Row = Record<string, any>;

export const presentUser = (u: Row) => ({
  id: u.id,
  email: u.email,
  name: u.name,
  status: u.status,
  profileId: u.profile_id,
  timeZone: u.time_zone,
  locale: u.locale,
  createdAt: u.created_at,
});

export const presentOrg = (o: Row) => ({
  id: o.id,
  name: o.name,
  edition: o.edition,
  timeZone: o.time_zone,
  currency: o.currency,
});

export const presentProfile = (p: Row) => ({
  id: p.id,
  name: p.name,
  isAdmin: p.is_admin,
  permissions: p.permissions,
});

export const presentView = (v: Row) => ({
  id: v.id,
  name: v.name,
  systemKey: v.system_key,
  shared: v.shared,
  ownerId: v.owner_id,
  criteria: v.criteria,
  columns: v.columns,
  sort: v.sort,
});

export const presentApiKey = (k: Row) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  userId: k.user_id,
  createdAt: k.created_at,
  lastUsedAt: k.last_used_at,
  revokedAt: k.revoked_at,
  ...(k.key ? { key: k.key } : {}),
});

export const presentModule = (
  m: Pick<ModuleMeta, 'id' | 'apiName' | 'singularLabel' | 'pluralLabel' | 'isCustom'>,
) => ({
  id: m.id,
  apiName: m.apiName,
  singularLabel: m.singularLabel,
  pluralLabel: m.pluralLabel,
  isCustom: m.isCustom,
});
