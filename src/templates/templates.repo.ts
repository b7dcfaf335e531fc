// The SQL of templates, their versions and folders. Every function takes the org id and filters by
// it; soft-deleted templates are invisible here except to nothing (they stay for messages' history).
import { type SqlBool, sql } from 'kysely';
import type { Db } from '../db/pool.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: unknown): s is string => typeof s === 'string' && UUID.test(s);

export async function listFolderRows(db: Db, orgId: string) {
  return db
    .selectFrom('template_folders as f')
    .select([
      'f.id',
      'f.name',
      'f.created_at',
      'f.updated_at',
      sql<number>`(SELECT count(*) FROM templates t WHERE t.folder_id = f.id AND t.org_id = f.org_id AND t.deleted_at IS NULL)::int`.as(
        'template_count',
      ),
    ])
    .where('f.org_id', '=', orgId)
    .orderBy('f.name')
    .execute();
}

export async function findFolderRow(db: Db, orgId: string, id: string) {
  if (!isUuid(id)) return undefined;
  return db
    .selectFrom('template_folders')
    .select(['id', 'name', 'created_at', 'updated_at'])
    .where('org_id', '=', orgId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function insertFolderRow(db: Db, orgId: string, name: string) {
  return db
    .insertInto('template_folders')
    .values({ org_id: orgId, name })
    .onConflict((oc) => oc.columns(['org_id', 'name']).doNothing())
    .returning(['id', 'name', 'created_at', 'updated_at'])
    .executeTakeFirst();
}

export async function renameFolderRow(db: Db, orgId: string, id: string, name: string, now: Date) {
  if (!isUuid(id)) return 0;
  const r = await db
    .updateTable('template_folders')
    .set({ name, updated_at: now })
    .where('org_id', '=', orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function folderNameTaken(db: Db, orgId: string, name: string, exceptId?: string) {
  let q = db.selectFrom('template_folders').select('id').where('org_id', '=', orgId).where('name', '=', name);
  if (exceptId) q = q.where('id', '!=', exceptId);
  return !!(await q.executeTakeFirst());
}

/** Deletes a folder; its templates stay, outside any folder (FK ON DELETE SET NULL). */
export async function deleteFolderRow(db: Db, orgId: string, id: string) {
  if (!isUuid(id)) return 0;
  const r = await db
    .deleteFrom('template_folders')
    .where('org_id', '=', orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

export interface TemplateFilter {
  moduleIds: string[];
  folderId?: string | 'none';
  q?: string;
  limit: number;
}

/** Templates with their current version's subject, newest change first. */
export async function listTemplateRows(db: Db, orgId: string, f: TemplateFilter) {
  if (f.moduleIds.length === 0) return [];
  let q = db
    .selectFrom('templates as t')
    .innerJoin('modules as m', 'm.id', 't.module_id')
    .innerJoin('template_versions as v', (j) =>
      j.onRef('v.template_id', '=', 't.id').onRef('v.version', '=', 't.current_version'),
    )
    .leftJoin('template_folders as f', 'f.id', 't.folder_id')
    .leftJoin('users as u', 'u.id', 'v.author_id')
    .select([
      't.id',
      't.name',
      't.folder_id',
      'f.name as folder_name',
      'm.api_name as module',
      't.current_version',
      'v.subject',
      'v.from_address',
      'v.from_name',
      'v.reply_to',
      'u.name as updated_by_name',
      't.created_at',
      't.updated_at',
    ])
    .where('t.org_id', '=', orgId)
    .where('t.deleted_at', 'is', null)
    .where('t.module_id', 'in', f.moduleIds);
  if (f.folderId === 'none') q = q.where('t.folder_id', 'is', null);
  else if (f.folderId) q = q.where('t.folder_id', '=', f.folderId);
  const term = f.q?.trim().slice(0, 100);
  if (term) {
    const like = `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    q = q.where(sql<SqlBool>`t.name ILIKE ${like}`);
  }
  return q.orderBy('t.updated_at', 'desc').orderBy('t.id').limit(f.limit).execute();
}

/** A live (not deleted) template of the org, with its module's api_name. */
export async function findTemplateRow(db: Db, orgId: string, id: string, forUpdate = false) {
  if (!isUuid(id)) return undefined;
  let q = db
    .selectFrom('templates as t')
    .innerJoin('modules as m', 'm.id', 't.module_id')
    .leftJoin('template_folders as f', 'f.id', 't.folder_id')
    .select([
      't.id',
      't.name',
      't.module_id',
      'm.api_name as module',
      't.folder_id',
      'f.name as folder_name',
      't.current_version',
      't.created_by',
      't.created_at',
      't.updated_at',
    ])
    .where('t.org_id', '=', orgId)
    .where('t.id', '=', id)
    .where('t.deleted_at', 'is', null);
  if (forUpdate) q = q.forUpdate('t');
  return q.executeTakeFirst();
}

export type TemplateRow = NonNullable<Awaited<ReturnType<typeof findTemplateRow>>>;

export interface VersionValues {
  subject: string;
  html_source: string;
  html: string;
  text: string;
  text_generated: boolean;
  from_address: string | null;
  from_name: string | null;
  reply_to: string | null;
}

export async function insertTemplateRow(
  db: Db,
  orgId: string,
  v: { module_id: string; folder_id: string | null; name: string; created_by: string; now: Date },
) {
  return db
    .insertInto('templates')
    .values({
      org_id: orgId,
      module_id: v.module_id,
      folder_id: v.folder_id,
      name: v.name,
      current_version: 1,
      created_by: v.created_by,
      created_at: v.now,
      updated_at: v.now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

export async function insertVersionRow(
  db: Db,
  orgId: string,
  templateId: string,
  version: number,
  v: VersionValues & { comment: string | null; author_id: string; now: Date },
) {
  const { now, ...values } = v;
  await db
    .insertInto('template_versions')
    .values({ ...values, org_id: orgId, template_id: templateId, version, created_at: now })
    .execute();
}

export async function updateTemplateRow(
  db: Db,
  orgId: string,
  id: string,
  patch: { name?: string; folder_id?: string | null; current_version?: number; deleted_at?: Date; now: Date },
) {
  const { now, ...set } = patch;
  const r = await db
    .updateTable('templates')
    .set({ ...set, updated_at: now })
    .where('org_id', '=', orgId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

const versionColumns = [
  'v.version',
  'v.subject',
  'v.html_source',
  'v.html',
  'v.text',
  'v.text_generated',
  'v.from_address',
  'v.from_name',
  'v.reply_to',
  'v.comment',
  'v.author_id',
  'u.name as author_name',
  'v.created_at',
] as const;

export async function findVersionRow(db: Db, orgId: string, templateId: string, version: number) {
  return db
    .selectFrom('template_versions as v')
    .leftJoin('users as u', 'u.id', 'v.author_id')
    .select(versionColumns)
    .where('v.org_id', '=', orgId)
    .where('v.template_id', '=', templateId)
    .where('v.version', '=', version)
    .executeTakeFirst();
}

export type VersionRow = NonNullable<Awaited<ReturnType<typeof findVersionRow>>>;

/** Every version's header (not its bodies), newest first. */
export async function listVersionRows(db: Db, orgId: string, templateId: string) {
  return db
    .selectFrom('template_versions as v')
    .leftJoin('users as u', 'u.id', 'v.author_id')
    .select(['v.version', 'v.subject', 'v.comment', 'v.author_id', 'u.name as author_name', 'v.created_at'])
    .where('v.org_id', '=', orgId)
    .where('v.template_id', '=', templateId)
    .orderBy('v.version', 'desc')
    .limit(1000)
    .execute();
}
