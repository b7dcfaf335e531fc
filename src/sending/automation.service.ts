import { type Expression, type SqlBool, sql } from 'kysely';
import {
  type Actor,
  actorForUser,
  can,
  compileCriteria,
  requireAdmin,
  requireModule,
  scope,
  validateCriteria,
} from '../crm/index.ts';
import type { AddressChoice } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { invalid, notFound } from '../errors.ts';
import { resolveAudience } from './audience.ts';
import { gmtDay, massDailyLimit, reserveMass } from './mass-limits.ts';
import { insertMessagesSql, senderFor, sendingSetup } from './queue-rows.ts';

// Autoresponders (F3.9) and the workflow email action (F3.10). Both are rules the worker checks
// every few seconds (runAutomations): which records became due, or were created or edited, since
// the last look. Looking at the records table (rather than hooking every write path) covers
// records written by the UI, the API, imports and mass updates alike.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Writes committed late (a long transaction) still carry their start time: look back this far.
const WRITE_LAG_MS = 5_000;

export interface AutoresponderInput {
  module: string;
  name: string;
  templateId: string;
  criteria?: unknown;
  /** 'created_at' or the api name of a date/datetime field. */
  anchorField?: string;
  days: number;
  from: AddressChoice;
  active?: boolean;
}

export interface WorkflowRuleInput {
  module: string;
  name: string;
  onCreate: boolean;
  onEdit: boolean;
  criteria?: unknown;
  templateId: string;
  toRecord: boolean;
  toUserIds?: string[];
  from: AddressChoice;
  active?: boolean;
}

async function checkCommon(
  deps: Deps,
  actor: Actor,
  i: { module: string; name: string; templateId: string; criteria?: unknown; from: AddressChoice },
) {
  requireAdmin(actor);
  const s = await scope(deps, actor, i.module);
  const name = typeof i.name === 'string' ? i.name.trim() : '';
  if (!name || name.length > 200)
    throw invalid('Give it a name (1 to 200 characters)', [{ path: 'name', message: 'required' }]);
  if (i.criteria !== undefined && i.criteria !== null) validateCriteria(i.criteria, s.ctx);
  const t = UUID.test(i.templateId)
    ? await deps.db
        .selectFrom('templates')
        .select(['id', 'module_id'])
        .where('org_id', '=', actor.orgId)
        .where('id', '=', i.templateId)
        .where('deleted_at', 'is', null)
        .executeTakeFirst()
    : undefined;
  if (!t || t.module_id !== s.mod.id)
    throw invalid(`Choose a template of ${s.mod.pluralLabel}`, [
      { path: 'templateId', message: 'not found' },
    ]);
  if (!['user', 'org_address', 'owner', 'template'].includes(i.from?.kind))
    throw invalid('Choose a From address', [{ path: 'from', message: 'invalid' }]);
  return { s, name };
}

function checkAutoresponder(
  s: Awaited<ReturnType<typeof scope>>,
  actor: Actor,
  i: AutoresponderInput,
): { anchor: string } {
  const anchor = i.anchorField ?? 'created_at';
  if (anchor !== 'created_at') {
    const f = s.mod.fields.find((x) => x.apiName === anchor);
    if (!f || (f.type !== 'date' && f.type !== 'datetime'))
      throw invalid('The start must be the creation time or a date field', [
        { path: 'anchorField', message: 'not a date field' },
      ]);
  }
  if (!Number.isInteger(i.days) || i.days < 0 || i.days > 3650)
    throw invalid('days must be a whole number from 0 to 3650', [{ path: 'days', message: 'invalid' }]);
  requireModule(actor, i.module, 'mass_email');
  return { anchor };
}

export async function createAutoresponder(deps: Deps, actor: Actor, i: AutoresponderInput) {
  const { s, name } = await checkCommon(deps, actor, i);
  const { anchor } = checkAutoresponder(s, actor, i);
  return deps.db
    .insertInto('autoresponders')
    .values({
      org_id: actor.orgId,
      module_id: s.mod.id,
      name,
      template_id: i.templateId,
      criteria: i.criteria ? JSON.stringify(i.criteria) : null,
      anchor_field: anchor,
      days: i.days,
      from_choice: JSON.stringify(i.from),
      active: i.active ?? true,
      created_by: actor.userId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

// JSON with sorted keys: the stored (jsonb) criteria and the submitted ones compare by content.
const canonical = (v: unknown): string =>
  JSON.stringify(v ?? null, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );

/**
 * Replaces an autoresponder's settings. A change of who or when counts from now: records whose new
 * due moment is already past get no late burst of mail (as when it is switched on).
 */
export async function updateAutoresponder(deps: Deps, actor: Actor, id: string, i: AutoresponderInput) {
  const { s, name } = await checkCommon(deps, actor, i);
  const { anchor } = checkAutoresponder(s, actor, i);
  if (!UUID.test(id)) throw notFound('Rule');
  const before = await deps.db
    .selectFrom('autoresponders')
    .select(['module_id', 'criteria', 'anchor_field', 'days', 'active'])
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!before) throw notFound('Rule');
  const criteria = i.criteria ? JSON.stringify(i.criteria) : null;
  const restart =
    before.module_id !== s.mod.id ||
    before.anchor_field !== anchor ||
    before.days !== i.days ||
    canonical(before.criteria) !== canonical(i.criteria || null) ||
    (!before.active && i.active === true);
  const now = deps.clock.now();
  return deps.db
    .updateTable('autoresponders')
    .set({
      module_id: s.mod.id,
      name,
      template_id: i.templateId,
      criteria,
      anchor_field: anchor,
      days: i.days,
      from_choice: JSON.stringify(i.from),
      ...(i.active !== undefined ? { active: i.active } : {}),
      ...(restart ? { active_since: now } : {}),
      updated_at: now,
    })
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

async function checkWorkflowRule(deps: Deps, actor: Actor, i: WorkflowRuleInput): Promise<string[]> {
  if (!i.onCreate && !i.onEdit)
    throw invalid('Choose when it runs: on create, on edit or both', [
      { path: 'onCreate', message: 'required' },
    ]);
  const users = i.toUserIds ?? [];
  if (!i.toRecord && users.length === 0)
    throw invalid('Choose who receives it: the record, users, or both', [
      { path: 'toRecord', message: 'required' },
    ]);
  if (users.length > 0) {
    const found = await deps.db
      .selectFrom('users')
      .select('id')
      .where('org_id', '=', actor.orgId)
      .where(
        'id',
        'in',
        users.filter((u) => UUID.test(u)),
      )
      .execute();
    if (found.length !== new Set(users).size)
      throw invalid('Choose users of your organization', [{ path: 'toUserIds', message: 'unknown user' }]);
  }
  return users;
}

export async function createWorkflowRule(deps: Deps, actor: Actor, i: WorkflowRuleInput) {
  const { s, name } = await checkCommon(deps, actor, i);
  const users = await checkWorkflowRule(deps, actor, i);
  return deps.db
    .insertInto('workflow_rules')
    .values({
      org_id: actor.orgId,
      module_id: s.mod.id,
      name,
      on_create: i.onCreate,
      on_edit: i.onEdit,
      criteria: i.criteria ? JSON.stringify(i.criteria) : null,
      template_id: i.templateId,
      to_record: i.toRecord,
      to_user_ids: users,
      from_choice: JSON.stringify(i.from),
      active: i.active ?? true,
      checked_until: deps.clock.now(),
      created_by: actor.userId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Replaces a workflow rule's settings; records written since its last look are judged by the new ones. */
export async function updateWorkflowRule(deps: Deps, actor: Actor, id: string, i: WorkflowRuleInput) {
  const { s, name } = await checkCommon(deps, actor, i);
  const users = await checkWorkflowRule(deps, actor, i);
  if (!UUID.test(id)) throw notFound('Rule');
  const now = deps.clock.now();
  const before = await deps.db
    .selectFrom('workflow_rules')
    .select(['module_id', 'active'])
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!before) throw notFound('Rule');
  // Records of another module, or written while it was off, were never this rule's: start from now.
  const restart = before.module_id !== s.mod.id || (!before.active && i.active === true);
  return deps.db
    .updateTable('workflow_rules')
    .set({
      module_id: s.mod.id,
      name,
      on_create: i.onCreate,
      on_edit: i.onEdit,
      criteria: i.criteria ? JSON.stringify(i.criteria) : null,
      template_id: i.templateId,
      to_record: i.toRecord,
      to_user_ids: users,
      from_choice: JSON.stringify(i.from),
      ...(i.active !== undefined ? { active: i.active } : {}),
      ...(restart ? { checked_until: now } : {}),
      updated_at: now,
    })
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

interface CommonRow {
  id: string;
  name: string;
  module: string;
  module_label: string;
  template_id: string;
  template_name: string;
  template_deleted: boolean;
  criteria: unknown;
  from_choice: AddressChoice;
  active: boolean;
  created_by: string;
  creator_name: string | null;
  created_at: Date;
  updated_at: Date;
}
const common = (r: CommonRow) => ({
  id: r.id,
  name: r.name,
  module: r.module,
  moduleLabel: r.module_label,
  templateId: r.template_id,
  templateName: r.template_name,
  templateDeleted: r.template_deleted,
  criteria: r.criteria,
  from: r.from_choice,
  active: r.active,
  createdBy: r.created_by,
  creatorName: r.creator_name,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
const COLS = [
  'a.id',
  'a.name',
  'mo.api_name as module',
  'mo.plural_label as module_label',
  'a.template_id',
  't.name as template_name',
  'a.criteria',
  'a.from_choice',
  'a.active',
  'a.created_by',
  'u.name as creator_name',
  'a.created_at',
  'a.updated_at',
] as const;
const templateDeleted = sql<boolean>`t.deleted_at IS NOT NULL`.as('template_deleted');

/** The org's autoresponders (all, or the one `id`), with their module, template and creator named. */
async function autoresponderItems(deps: Deps, orgId: string, id?: string) {
  const rows = await deps.db
    .selectFrom('autoresponders as a')
    .innerJoin('modules as mo', 'mo.id', 'a.module_id')
    .innerJoin('templates as t', 't.id', 'a.template_id')
    .leftJoin('users as u', 'u.id', 'a.created_by')
    .where('a.org_id', '=', orgId)
    .$if(id !== undefined, (q) => q.where('a.id', '=', id as string))
    .orderBy('a.created_at')
    .orderBy('a.id')
    .select([...COLS, templateDeleted, 'a.anchor_field', 'a.days'])
    .execute();
  return rows.map((r) => ({ ...common(r), anchorField: r.anchor_field, days: r.days }));
}

async function workflowItems(deps: Deps, orgId: string, id?: string) {
  const rows = await deps.db
    .selectFrom('workflow_rules as a')
    .innerJoin('modules as mo', 'mo.id', 'a.module_id')
    .innerJoin('templates as t', 't.id', 'a.template_id')
    .leftJoin('users as u', 'u.id', 'a.created_by')
    .where('a.org_id', '=', orgId)
    .$if(id !== undefined, (q) => q.where('a.id', '=', id as string))
    .orderBy('a.created_at')
    .orderBy('a.id')
    .select([...COLS, templateDeleted, 'a.on_create', 'a.on_edit', 'a.to_record', 'a.to_user_ids'])
    .execute();
  return rows.map((r) => ({
    ...common(r),
    onCreate: r.on_create,
    onEdit: r.on_edit,
    toRecord: r.to_record,
    toUserIds: r.to_user_ids,
  }));
}

export async function listAutomations(deps: Deps, actor: Actor) {
  requireAdmin(actor);
  const [autoresponders, workflowRules] = await Promise.all([
    autoresponderItems(deps, actor.orgId),
    workflowItems(deps, actor.orgId),
  ]);
  return { autoresponders, workflowRules };
}

export async function getAutomation(
  deps: Deps,
  actor: Actor,
  kind: 'autoresponder' | 'workflow',
  id: string,
) {
  requireAdmin(actor);
  if (!UUID.test(id)) throw notFound('Rule');
  const [item] =
    kind === 'autoresponder'
      ? await autoresponderItems(deps, actor.orgId, id)
      : await workflowItems(deps, actor.orgId, id);
  if (!item) throw notFound('Rule');
  return item;
}

export async function setAutomationActive(
  deps: Deps,
  actor: Actor,
  kind: 'autoresponder' | 'workflow',
  id: string,
  active: boolean,
) {
  requireAdmin(actor);
  if (!UUID.test(id)) throw notFound('Rule');
  const now = deps.clock.now();
  // Switching on starts from now: nothing that became due while it was off is sent.
  const r =
    kind === 'autoresponder'
      ? await deps.db
          .updateTable('autoresponders')
          .set({ active, updated_at: now, ...(active ? { active_since: now } : {}) })
          .where('org_id', '=', actor.orgId)
          .where('id', '=', id)
          .returning('id')
          .executeTakeFirst()
      : await deps.db
          .updateTable('workflow_rules')
          .set({ active, updated_at: now, ...(active ? { checked_until: now } : {}) })
          .where('org_id', '=', actor.orgId)
          .where('id', '=', id)
          .returning('id')
          .executeTakeFirst();
  if (!r) throw notFound('Rule');
}

export async function deleteAutomation(
  deps: Deps,
  actor: Actor,
  kind: 'autoresponder' | 'workflow',
  id: string,
) {
  requireAdmin(actor);
  if (!UUID.test(id)) throw notFound('Rule');
  const table = kind === 'autoresponder' ? 'autoresponders' : 'workflow_rules';
  const r = await deps.db
    .deleteFrom(table)
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!r.numDeletedRows) throw notFound('Rule');
}

/** Runs every active autoresponder and workflow rule once; returns how many messages were queued. */
export async function runAutomations(deps: Deps, opts: { orgId?: string } = {}): Promise<number> {
  let queued = 0;
  const ars = await deps.db
    .selectFrom('autoresponders')
    .select('id')
    .where('active', '=', true)
    .$if(!!opts.orgId, (q) => q.where('org_id', '=', opts.orgId as string))
    .execute();
  for (const a of ars)
    queued += await deps.db.transaction().execute((trx) => runAutoresponder({ ...deps, db: trx }, a.id));
  const wfs = await deps.db
    .selectFrom('workflow_rules')
    .select('id')
    .where('active', '=', true)
    .$if(!!opts.orgId, (q) => q.where('org_id', '=', opts.orgId as string))
    .execute();
  for (const w of wfs)
    queued += await deps.db.transaction().execute((trx) => runWorkflowRule({ ...deps, db: trx }, w.id));
  return queued;
}

async function templateOf(deps: Deps, orgId: string, templateId: string) {
  return deps.db
    .selectFrom('templates as t')
    .innerJoin('template_versions as v', (j) =>
      j.onRef('v.template_id', '=', 't.id').onRef('v.version', '=', 't.current_version'),
    )
    .select(['t.id', 't.current_version', 'v.from_address', 'v.from_name', 'v.reply_to'])
    .where('t.id', '=', templateId)
    .where('t.org_id', '=', orgId)
    .where('t.deleted_at', 'is', null)
    .executeTakeFirst();
}

async function runAutoresponder(deps: Deps, id: string): Promise<number> {
  const a = (
    await sql<{
      id: string;
      org_id: string;
      module_id: string;
      template_id: string;
      criteria: unknown;
      anchor_field: string;
      days: number;
      from_choice: AddressChoice;
      active_since: Date;
      created_by: string;
      module: string;
      time_zone: string;
    }>`SELECT a.*, mo.api_name AS module, o.time_zone FROM autoresponders a
        JOIN modules mo ON mo.id = a.module_id JOIN orgs o ON o.id = a.org_id
        WHERE a.id = ${id} AND a.active FOR UPDATE OF a SKIP LOCKED`.execute(deps.db)
  ).rows[0];
  if (!a) return 0;
  const actor = await actorForUser(deps, { userId: a.created_by });
  const t = await templateOf(deps, a.org_id, a.template_id);
  if (!actor || !can(actor, a.module, 'mass_email') || !t) {
    await deps.db.updateTable('autoresponders').set({ active: false }).where('id', '=', a.id).execute();
    deps.log.warn({ autoresponderId: a.id }, 'autoresponder switched off: its creator or template is gone');
    return 0;
  }
  const now = deps.clock.now();
  // The moment each record becomes due; dates are whole days in the org's time zone.
  const s = await scope(deps, actor, a.module);
  const f = s.mod.fields.find((x) => x.apiName === a.anchor_field);
  const dueAt =
    a.anchor_field === 'created_at'
      ? sql`r.created_at + make_interval(days => ${a.days})`
      : f?.type === 'date'
        ? sql`(((r.data ->> ${a.anchor_field})::date + ${a.days})::timestamp AT TIME ZONE ${a.time_zone})`
        : sql`((r.data ->> ${a.anchor_field})::timestamptz + make_interval(days => ${a.days}))`;
  const due: Expression<SqlBool>[] = [
    sql<SqlBool>`${dueAt} <= ${now} AND ${dueAt} > ${a.active_since}`,
    sql<SqlBool>`NOT EXISTS (SELECT 1 FROM messages am WHERE am.autoresponder_id = ${a.id} AND am.record_id = r.id)`,
  ];
  const audience = await resolveAudience(
    deps,
    actor,
    a.module,
    a.criteria ? { kind: 'criteria', criteria: a.criteria } : null,
    due,
  );
  const n = (
    await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM (${audience.query}) q WHERE reason IS NULL`.execute(deps.db)
  ).rows[0].n;
  if (n === 0) return 0;
  // Counted against the daily mass limit; what does not fit today goes on a later run.
  const got = await reserveMass(deps.db, a.org_id, gmtDay(now), n, await massDailyLimit(deps.db, a.org_id));
  if (got === 0) return 0;
  const sender = await senderFor(deps, a.org_id, a.created_by, a.from_choice, null, t);
  if (!sender) return 0;
  const r = await sql`
    WITH aud AS MATERIALIZED (${audience.query})
    ${insertMessagesSql({
      orgId: a.org_id,
      kind: 'autoresponder',
      moduleId: a.module_id,
      template: t,
      senderId: a.created_by,
      sender,
      setup: await sendingSetup(deps, a.org_id),
      link: { column: 'autoresponder_id', id: a.id },
      when: { at: now, expiresAt: new Date(now.getTime() + deps.config.deliveryLifetimeHours * 3_600_000) },
      limit: got,
    })}`.execute(deps.db);
  await sql`SELECT pg_notify('parley_delivery', ${a.org_id})`.execute(deps.db);
  return Number(r.numAffectedRows ?? 0);
}

async function runWorkflowRule(deps: Deps, id: string): Promise<number> {
  const w = (
    await sql<{
      id: string;
      org_id: string;
      module_id: string;
      template_id: string;
      criteria: unknown;
      on_create: boolean;
      on_edit: boolean;
      to_record: boolean;
      to_user_ids: string[];
      from_choice: AddressChoice;
      checked_until: Date;
      created_by: string;
      module: string;
    }>`SELECT w.*, mo.api_name AS module FROM workflow_rules w JOIN modules mo ON mo.id = w.module_id
        WHERE w.id = ${id} AND w.active FOR UPDATE OF w SKIP LOCKED`.execute(deps.db)
  ).rows[0];
  if (!w) return 0;
  const actor = await actorForUser(deps, { userId: w.created_by });
  const t = await templateOf(deps, w.org_id, w.template_id);
  if (!actor || !t) {
    await deps.db.updateTable('workflow_rules').set({ active: false }).where('id', '=', w.id).execute();
    return 0;
  }
  const until = new Date(deps.clock.now().getTime() - WRITE_LAG_MS);
  if (until <= w.checked_until) return 0;
  const events = [
    w.on_create ? sql`(r.created_at > ${w.checked_until} AND r.created_at <= ${until})` : null,
    w.on_edit
      ? sql`(r.updated_at > ${w.checked_until} AND r.updated_at <= ${until} AND r.updated_at > r.created_at)`
      : null,
  ].filter((x) => x !== null);
  const when = sql<SqlBool>`(${sql.join(events, sql` OR `)})`;
  const sender = await senderFor(deps, w.org_id, w.created_by, w.from_choice, null, t);
  const setup = await sendingSetup(deps, w.org_id);
  const now = deps.clock.now();
  const timing = {
    at: now,
    expiresAt: new Date(now.getTime() + deps.config.deliveryLifetimeHours * 3_600_000),
  };
  let queued = 0;
  if (sender && w.to_record) {
    const audience = await resolveAudience(
      deps,
      { ...actor, isAdmin: true }, // the rule was set up by an admin; it runs whatever its creator's profile is now
      w.module,
      w.criteria ? { kind: 'criteria', criteria: w.criteria } : null,
      [when],
    );
    const r = await sql`WITH aud AS MATERIALIZED (${audience.query})
      ${insertMessagesSql({ orgId: w.org_id, kind: 'workflow', moduleId: w.module_id, template: t, senderId: w.created_by, sender, setup, link: { column: 'workflow_rule_id', id: w.id }, when: timing })}`.execute(
      deps.db,
    );
    queued += Number(r.numAffectedRows ?? 0);
  }
  if (sender && w.to_user_ids.length > 0) {
    // The same template, merged with the record, to each chosen (active) user.
    const s = await scope(deps, { ...actor, isAdmin: true }, w.module);
    const crit = w.criteria
      ? compileCriteria(validateCriteria(w.criteria, s.ctx), s.ctx)
      : sql<SqlBool>`true`;
    const r = await sql`WITH aud AS MATERIALIZED (
        SELECT r.id AS record_id, lower(u.email) AS email, u.name, NULL::text AS reason
        FROM records r JOIN users u ON u.org_id = r.org_id AND u.id = ANY(${w.to_user_ids}::uuid[]) AND u.status = 'active'
        WHERE r.org_id = ${w.org_id} AND r.module_id = ${w.module_id} AND ${when} AND ${crit})
      ${insertMessagesSql({ orgId: w.org_id, kind: 'workflow', moduleId: w.module_id, template: t, senderId: w.created_by, sender, setup, link: { column: 'workflow_rule_id', id: w.id }, when: timing })}`.execute(
      deps.db,
    );
    queued += Number(r.numAffectedRows ?? 0);
  }
  await deps.db.updateTable('workflow_rules').set({ checked_until: until }).where('id', '=', w.id).execute();
  if (queued > 0) await sql`SELECT pg_notify('parley_delivery', ${w.org_id})`.execute(deps.db);
  return queued;
}
