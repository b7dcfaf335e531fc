// Templates (F2.1) and their versions (F2.2): folders, templates per module, one immutable version
// per saved change, previews, and rendering a template for a record.
//
// Permissions: manage_templates (or admin) creates, edits and deletes templates and folders; anyone
// who can read a module can list, preview and use its templates.
import { type Actor, can, loadModules, type ModuleMeta, requireModule } from '../crm/index.ts';
import type { Deps } from '../deps.ts';
import { AppError, forbidden, invalid, notFound } from '../errors.ts';
import { prepareVersion, type VersionInput } from './content.ts';
import { type CompiledTemplate, compileTemplate, type RenderedTemplate, renderCompiled } from './engine.ts';
import { buildMergeContext, sampleContext } from './merge-context.ts';
import { listMergeFields, type MergeSchema, mergeSchema } from './merge-schema.ts';
import {
  deleteFolderRow,
  findFolderRow,
  findTemplateRow,
  findVersionRow,
  folderNameTaken,
  insertFolderRow,
  insertTemplateRow,
  insertVersionRow,
  isUuid,
  listFolderRows,
  listTemplateRows,
  listVersionRows,
  renameFolderRow,
  type TemplateRow,
  updateTemplateRow,
  type VersionRow,
} from './templates.repo.ts';

export function canManageTemplates(actor: Actor): boolean {
  return actor.isAdmin || actor.permissions.manage_templates === true;
}

function requireManage(actor: Actor) {
  if (!canManageTemplates(actor))
    throw forbidden('Your profile does not allow managing templates (manage_templates)');
}

const readable = (actor: Actor) => (module: string) => can(actor, module, 'read');

function cleanName(v: unknown, what: string, max: number, path = 'name'): string {
  const s = typeof v === 'string' ? v.trim() : '';
  if (!s || s.length > max)
    throw invalid(`The ${what} must be 1 to ${max} characters`, [
      { path, message: `1 to ${max} characters` },
    ]);
  return s;
}

function cleanComment(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string')
    throw invalid('The comment must be text', [{ path: 'comment', message: 'text' }]);
  const s = v.trim();
  if (s.length > 1000)
    throw invalid('The comment is at most 1000 characters', [{ path: 'comment', message: 'too long' }]);
  return s || null;
}

// ---------------------------------------------------------------------------------------------
// Folders

export interface TemplateFolder {
  id: string;
  name: string;
  templateCount: number;
  createdAt: Date;
  updatedAt: Date;
}

export async function listFolders(deps: Deps, actor: Actor): Promise<TemplateFolder[]> {
  return (await listFolderRows(deps.db, actor.orgId)).map((f) => ({
    id: f.id,
    name: f.name,
    templateCount: f.template_count,
    createdAt: f.created_at,
    updatedAt: f.updated_at,
  }));
}

export async function createFolder(
  deps: Deps,
  actor: Actor,
  input: { name: string },
): Promise<TemplateFolder> {
  requireManage(actor);
  const name = cleanName(input.name, 'folder name', 100);
  const row = await insertFolderRow(deps.db, actor.orgId, name);
  if (!row)
    throw new AppError('conflict', `A folder named "${name}" already exists`, [
      { path: 'name', message: 'taken' },
    ]);
  return {
    id: row.id,
    name: row.name,
    templateCount: 0,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function renameFolder(
  deps: Deps,
  actor: Actor,
  id: string,
  input: { name: string },
): Promise<TemplateFolder> {
  requireManage(actor);
  const name = cleanName(input.name, 'folder name', 100);
  if (!(await findFolderRow(deps.db, actor.orgId, id))) throw notFound('Folder');
  if (await folderNameTaken(deps.db, actor.orgId, name, id))
    throw new AppError('conflict', `A folder named "${name}" already exists`, [
      { path: 'name', message: 'taken' },
    ]);
  await renameFolderRow(deps.db, actor.orgId, id, name, deps.clock.now());
  const f = (await listFolders(deps, actor)).find((x) => x.id === id);
  if (!f) throw notFound('Folder');
  return f;
}

/** Deletes a folder; its templates are kept, outside any folder. */
export async function deleteFolder(deps: Deps, actor: Actor, id: string): Promise<void> {
  requireManage(actor);
  if (!(await deleteFolderRow(deps.db, actor.orgId, id))) throw notFound('Folder');
}

async function checkFolder(deps: Deps, actor: Actor, folderId: string | null | undefined) {
  if (folderId === undefined || folderId === null) return null;
  if (!(await findFolderRow(deps.db, actor.orgId, folderId)))
    throw invalid('Choose an existing folder', [{ path: 'folderId', message: 'no such folder' }]);
  return folderId;
}

// ---------------------------------------------------------------------------------------------
// Templates and versions

export interface TemplateSummary {
  id: string;
  name: string;
  module: string;
  folderId: string | null;
  folderName: string | null;
  currentVersion: number;
  subject: string;
  fromAddress: string | null;
  fromName: string | null;
  replyTo: string | null;
  updatedByName: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface TemplateVersion {
  version: number;
  subject: string;
  /** The HTML as written; `html` is what is sent (CSS inlined). */
  htmlSource: string;
  html: string;
  text: string;
  textGenerated: boolean;
  fromAddress: string | null;
  fromName: string | null;
  replyTo: string | null;
  comment: string | null;
  author: { id: string; name: string | null } | null;
  createdAt: Date;
}

export interface TemplateDetail {
  id: string;
  name: string;
  module: string;
  folderId: string | null;
  folderName: string | null;
  currentVersion: number;
  createdAt: Date;
  updatedAt: Date;
  current: TemplateVersion;
  /** Whether the caller may edit and delete it. */
  canManage: boolean;
}

const presentVersion = (v: VersionRow): TemplateVersion => ({
  version: v.version,
  subject: v.subject,
  htmlSource: v.html_source,
  html: v.html,
  text: v.text,
  textGenerated: v.text_generated,
  fromAddress: v.from_address,
  fromName: v.from_name,
  replyTo: v.reply_to,
  comment: v.comment,
  author: v.author_id ? { id: v.author_id, name: v.author_name } : null,
  createdAt: v.created_at,
});

/** The template (not deleted, in the actor's org, of a module the actor can read), or not_found. */
async function readableTemplate(deps: Deps, actor: Actor, id: string): Promise<TemplateRow> {
  const t = await findTemplateRow(deps.db, actor.orgId, id);
  if (!t || !can(actor, t.module, 'read')) throw notFound('Template');
  return t;
}

async function versionOf(deps: Deps, actor: Actor, t: TemplateRow, version?: number): Promise<VersionRow> {
  const n = version ?? t.current_version;
  const v = Number.isInteger(n) && n >= 1 ? await findVersionRow(deps.db, actor.orgId, t.id, n) : undefined;
  if (!v) throw notFound(`Version ${n} of this template`);
  return v;
}

export async function listTemplates(
  deps: Deps,
  actor: Actor,
  filter: { module?: string; folderId?: string; q?: string; limit?: number } = {},
): Promise<TemplateSummary[]> {
  const modules = await loadModules(deps, actor.orgId);
  let mods = [...modules.values()].filter((m) => can(actor, m.apiName, 'read'));
  if (filter.module) mods = mods.filter((m) => m.apiName === filter.module);
  const folderId = filter.folderId === 'none' ? 'none' : filter.folderId;
  if (folderId && folderId !== 'none' && !isUuid(folderId)) return [];
  const rows = await listTemplateRows(deps.db, actor.orgId, {
    moduleIds: mods.map((m) => m.id),
    folderId,
    q: filter.q,
    limit: Math.min(Math.max(filter.limit ?? 500, 1), 1000),
  });
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    module: r.module,
    folderId: r.folder_id,
    folderName: r.folder_name,
    currentVersion: r.current_version,
    subject: r.subject,
    fromAddress: r.from_address,
    fromName: r.from_name,
    replyTo: r.reply_to,
    updatedByName: r.updated_by_name,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }));
}

export async function getTemplate(deps: Deps, actor: Actor, id: string): Promise<TemplateDetail> {
  const t = await readableTemplate(deps, actor, id);
  const v = await versionOf(deps, actor, t);
  return {
    id: t.id,
    name: t.name,
    module: t.module,
    folderId: t.folder_id,
    folderName: t.folder_name,
    currentVersion: t.current_version,
    createdAt: t.created_at,
    updatedAt: t.updated_at,
    current: presentVersion(v),
    canManage: canManageTemplates(actor),
  };
}

/** The merge schema of a module as the actor may use it (related records of readable modules). */
async function schemaFor(
  deps: Deps,
  actor: Actor,
  module: string,
): Promise<{ schema: MergeSchema; mod: ModuleMeta }> {
  requireModule(actor, module, 'read');
  const modules = await loadModules(deps, actor.orgId);
  const mod = modules.get(module);
  if (!mod) throw notFound(`Module "${module}"`);
  return { schema: mergeSchema(modules, module, readable(actor)), mod };
}

/** The merge fields a template of `module` may use, for the editor. */
export async function mergeFields(deps: Deps, actor: Actor, module: string) {
  const { schema } = await schemaFor(deps, actor, module);
  return { recordKey: schema.recordKey, fields: listMergeFields(schema) };
}

export interface TemplateInput extends VersionInput {
  name: string;
  module: string;
  folderId?: string | null;
  comment?: string | null;
}

export async function createTemplate(
  deps: Deps,
  actor: Actor,
  input: TemplateInput,
): Promise<TemplateDetail> {
  requireManage(actor);
  const name = cleanName(input.name, 'template name', 200);
  if (typeof input.module !== 'string')
    throw invalid('Choose a module', [{ path: 'module', message: 'required' }]);
  const { schema, mod } = await schemaFor(deps, actor, input.module);
  const folderId = await checkFolder(deps, actor, input.folderId);
  const comment = cleanComment(input.comment);
  const { compiled: _, ...version } = prepareVersion(schema, input);
  const now = deps.clock.now();
  const id = await deps.db.transaction().execute(async (trx) => {
    const t = await insertTemplateRow(trx, actor.orgId, {
      module_id: mod.id,
      folder_id: folderId,
      name,
      created_by: actor.userId,
      now,
    });
    await insertVersionRow(trx, actor.orgId, t.id, 1, { ...version, comment, author_id: actor.userId, now });
    return t.id;
  });
  return getTemplate(deps, actor, id);
}

/**
 * Saves a change: a new version (current + 1) with the given content, author and comment. With
 * `baseVersion`, the save is refused (conflict) when someone saved another version since.
 */
export async function updateTemplate(
  deps: Deps,
  actor: Actor,
  id: string,
  input: Omit<TemplateInput, 'module' | 'name'> & { name?: string; module?: string; baseVersion?: number },
): Promise<TemplateDetail> {
  requireManage(actor);
  const current = await readableTemplate(deps, actor, id);
  if (input.module !== undefined && input.module !== current.module)
    throw invalid('A template cannot move to another module', [{ path: 'module', message: 'cannot change' }]);
  const name = input.name === undefined ? current.name : cleanName(input.name, 'template name', 200);
  const folderId =
    input.folderId === undefined ? current.folder_id : await checkFolder(deps, actor, input.folderId);
  const comment = cleanComment(input.comment);
  const { schema } = await schemaFor(deps, actor, current.module);
  const { compiled: _, ...version } = prepareVersion(schema, input);
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const t = await findTemplateRow(trx, actor.orgId, id, true);
    if (!t) throw notFound('Template');
    if (input.baseVersion !== undefined && input.baseVersion !== t.current_version)
      throw new AppError(
        'conflict',
        `This template was saved as version ${t.current_version} since you opened version ${input.baseVersion}; reload it first`,
      );
    const next = t.current_version + 1;
    await insertVersionRow(trx, actor.orgId, id, next, { ...version, comment, author_id: actor.userId, now });
    await updateTemplateRow(trx, actor.orgId, id, { name, folder_id: folderId, current_version: next, now });
  });
  return getTemplate(deps, actor, id);
}

/** Renames a template or moves it to another folder: not a change of content, so no new version. */
export async function moveTemplate(
  deps: Deps,
  actor: Actor,
  id: string,
  input: { name?: string; folderId?: string | null },
): Promise<TemplateDetail> {
  requireManage(actor);
  await readableTemplate(deps, actor, id);
  const patch: { name?: string; folder_id?: string | null; now: Date } = { now: deps.clock.now() };
  if (input.name !== undefined) patch.name = cleanName(input.name, 'template name', 200);
  if (input.folderId !== undefined) patch.folder_id = await checkFolder(deps, actor, input.folderId);
  await updateTemplateRow(deps.db, actor.orgId, id, patch);
  return getTemplate(deps, actor, id);
}

/** Soft delete: the template disappears from lists; messages sent from it keep their reference. */
export async function deleteTemplate(deps: Deps, actor: Actor, id: string): Promise<void> {
  requireManage(actor);
  await readableTemplate(deps, actor, id);
  const now = deps.clock.now();
  await updateTemplateRow(deps.db, actor.orgId, id, { deleted_at: now, now });
}

export async function listVersions(deps: Deps, actor: Actor, id: string) {
  const t = await readableTemplate(deps, actor, id);
  return (await listVersionRows(deps.db, actor.orgId, t.id)).map((v) => ({
    version: v.version,
    subject: v.subject,
    comment: v.comment,
    author: v.author_id ? { id: v.author_id, name: v.author_name } : null,
    createdAt: v.created_at,
    current: v.version === t.current_version,
  }));
}

export async function getVersion(
  deps: Deps,
  actor: Actor,
  id: string,
  version: number,
): Promise<TemplateVersion> {
  const t = await readableTemplate(deps, actor, id);
  return presentVersion(await versionOf(deps, actor, t, version));
}

// ---------------------------------------------------------------------------------------------
// Rendering

// Versions never change, so a compiled version is good for as long as the process lives; the map
// is bounded (cleared when full: compiling again costs ~0.5 ms).
const compiledVersions = new Map<string, CompiledTemplate>();
const MAX_COMPILED = 500;

function compiledOf(templateId: string, v: VersionRow): CompiledTemplate {
  const key = `${templateId}:${v.version}`;
  let c = compiledVersions.get(key);
  if (!c) {
    c = compileTemplate({ subject: v.subject, html: v.html || null, text: v.text });
    if (compiledVersions.size >= MAX_COMPILED) compiledVersions.clear();
    compiledVersions.set(key, c);
  }
  return c;
}

export interface RenderedForRecord extends RenderedTemplate {
  templateId: string;
  templateVersion: number;
  /** The template's own From, when it has one. */
  from?: { address: string; name: string | null };
  /** The template's own Reply-To (a bare address), when it has one. */
  replyTo?: string;
}

/**
 * Renders a template (its current version, or `version`) for one record, with the actor as the
 * sender. The actor must be able to read the template's module; the record must be of that module
 * and org. Related records of modules the actor cannot read are left out of the merge.
 */
export async function renderForRecord(
  deps: Deps,
  actor: Actor,
  input: { templateId: string; version?: number; recordId: string },
): Promise<RenderedForRecord> {
  const t = await readableTemplate(deps, actor, input.templateId);
  const v = await versionOf(deps, actor, t, input.version);
  const context = await buildMergeContext(deps, actor.orgId, {
    moduleApiName: t.module,
    recordId: input.recordId,
    senderUserId: actor.userId,
    canRead: readable(actor),
  });
  const rendered = await renderCompiled(compiledOf(t.id, v), context);
  return {
    ...rendered,
    templateId: t.id,
    templateVersion: v.version,
    ...(v.from_address ? { from: { address: v.from_address, name: v.from_name } } : {}),
    ...(v.reply_to ? { replyTo: v.reply_to } : {}),
  };
}

/**
 * Previews content that is not saved yet: checked exactly as a save would check it (errors
 * included), then merged with a record of the module, or with sample values when none is given.
 */
export async function previewDraft(
  deps: Deps,
  actor: Actor,
  input: VersionInput & { module: string; recordId?: string | null },
): Promise<RenderedTemplate & { textGenerated: boolean; sample: boolean }> {
  const { schema } = await schemaFor(deps, actor, input.module);
  const prepared = prepareVersion(schema, input);
  const context = input.recordId
    ? await buildMergeContext(deps, actor.orgId, {
        moduleApiName: input.module,
        recordId: input.recordId,
        senderUserId: actor.userId,
        canRead: readable(actor),
      })
    : sampleContext(schema, 'sample');
  const rendered = await renderCompiled(prepared.compiled, context);
  return { ...rendered, textGenerated: prepared.text_generated, sample: !input.recordId };
}
