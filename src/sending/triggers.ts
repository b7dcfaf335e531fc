// Trigger actions of a mass email or follow-up (F4.9). When a recipient opens or clicks: up to 3
// field updates on the recipient's record, 2 follow-up tasks and 2 scheduled calls related to it;
// when the message bounces: field updates only. Each fires once per recipient (trigger_firings'
// primary key), from human events only, read from the email_events feed by cursor; the record's
// history says which mass email did it.

import { sql, type Transaction } from 'kysely';
import { DateTime } from 'luxon';
import { type Actor, loadModules, type ModuleMeta, requireModule } from '../crm/index.ts';
import { normaliseData, normaliseValue, UUID_RE } from '../crm/values.ts';
import type { DB, TriggerEvent } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { type ErrorDetail, forbidden, invalid, notFound } from '../errors.ts';
import { type FeedEvent, type FeedLoop, readEventFeed, startFeedLoop } from '../webhooks/feed.ts';

export const TRIGGER_LIMITS = { fieldUpdates: 3, tasks: 2, calls: 2 } as const;
export const TRIGGER_EVENTS: TriggerEvent[] = ['opened', 'clicked', 'bounced'];

/** 'record_owner', 'creator' (of the mass email) or a user id. */
export type Assignee = string;

export interface FieldUpdate {
  field: string;
  value: unknown;
}
export interface TaskAction {
  subject: string;
  dueInDays: number;
  status?: string | null;
  priority?: string | null;
  assignee: Assignee;
}
export interface CallAction {
  subject: string;
  owner: Assignee;
  startInDays: number;
  /** HH:MM in the mass email creator's time zone. */
  startTime: string;
}
export interface TriggerActions {
  fieldUpdates: FieldUpdate[];
  tasks: TaskAction[];
  calls: CallAction[];
}
export type TriggerSet = Partial<Record<TriggerEvent, Partial<TriggerActions> | null>>;

async function loadMass(deps: Deps, actor: Actor, id: string) {
  const m = UUID_RE.test(id)
    ? await deps.db
        .selectFrom('mass_emails as me')
        .innerJoin('modules as mo', 'mo.id', 'me.module_id')
        .select(['me.id', 'me.created_by', 'me.name', 'mo.api_name as module'])
        .where('me.org_id', '=', actor.orgId)
        .where('me.id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!m) throw notFound('Mass email');
  requireModule(actor, m.module, 'mass_email');
  return m;
}

export async function getTriggers(deps: Deps, actor: Actor, massId: string) {
  const m = await loadMass(deps, actor, massId);
  const rows = await deps.db
    .selectFrom('mass_email_triggers')
    .select(['event', 'actions'])
    .where('org_id', '=', actor.orgId)
    .where('mass_email_id', '=', m.id)
    .execute();
  const out: Record<TriggerEvent, TriggerActions | null> = { opened: null, clicked: null, bounced: null };
  for (const r of rows) out[r.event] = r.actions as unknown as TriggerActions;
  return { ...out, canEdit: m.created_by === actor.userId, limits: TRIGGER_LIMITS };
}

/** The lookup field of tasks/calls that points at records of `module` (lead_id, contact_id, …). */
function relationField(target: ModuleMeta | undefined, module: string) {
  return target?.fields.find((f) => f.type === 'lookup' && f.options.module === module);
}

async function isOrgUser(deps: Deps, orgId: string, id: string) {
  if (!UUID_RE.test(id)) return false;
  return !!(await deps.db
    .selectFrom('users')
    .select('id')
    .where('org_id', '=', orgId)
    .where('id', '=', id)
    .where('status', '!=', 'deactivated')
    .executeTakeFirst());
}

async function checkAssignee(deps: Deps, orgId: string, v: unknown, path: string, errors: ErrorDetail[]) {
  if (v === 'record_owner' || v === 'creator') return v;
  if (typeof v === 'string' && (await isOrgUser(deps, orgId, v))) return v.toLowerCase();
  errors.push({ path, message: 'choose the record owner, the mass email creator or an active user' });
  return 'record_owner';
}

const int = (v: unknown, min: number, max: number) =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** Checks one event's actions against the limits and the modules' fields; returns them normalised. */
async function checkActions(
  deps: Deps,
  orgId: string,
  modules: Map<string, ModuleMeta>,
  module: string,
  event: TriggerEvent,
  raw: Partial<TriggerActions>,
): Promise<TriggerActions> {
  const p = event;
  const errors: ErrorDetail[] = [];
  const fieldUpdates = raw.fieldUpdates ?? [];
  const tasks = raw.tasks ?? [];
  const calls = raw.calls ?? [];
  if (event === 'bounced' && (tasks.length || calls.length))
    throw invalid('When a message bounces, only field updates can be triggered', [
      { path: `${p}.${tasks.length ? 'tasks' : 'calls'}`, message: 'not allowed for bounced' },
    ]);
  for (const [key, list] of [
    ['fieldUpdates', fieldUpdates],
    ['tasks', tasks],
    ['calls', calls],
  ] as const)
    if (list.length > TRIGGER_LIMITS[key])
      throw invalid(
        `At most ${TRIGGER_LIMITS[key]} ${key === 'fieldUpdates' ? 'field updates' : key} when ${event}; ${list.length} given`,
        [{ path: `${p}.${key}`, message: `at most ${TRIGGER_LIMITS[key]}` }],
      );

  const mod = modules.get(module);
  if (!mod) throw notFound(`Module "${module}"`);
  const seen = new Set<string>();
  const updates: FieldUpdate[] = [];
  for (const [i, u] of fieldUpdates.entries()) {
    const path = `${p}.fieldUpdates.${i}`;
    const f = mod.fields.find((x) => x.apiName === u.field);
    if (!f) {
      errors.push({ path, message: `${mod.singularLabel} has no field "${u.field}"` });
      continue;
    }
    if (f.type === 'lookup') {
      errors.push({ path, message: `${f.label} (a lookup) cannot be set here` });
      continue;
    }
    if (seen.has(f.apiName)) {
      errors.push({ path, message: `${f.label} is updated twice` });
      continue;
    }
    seen.add(f.apiName);
    const r = normaliseValue(f, u.value);
    if (!r.ok) {
      errors.push({ path, message: `${f.label} ${r.message}` });
      continue;
    }
    if (r.value === undefined && f.required) {
      errors.push({ path, message: `${f.label} is required` });
      continue;
    }
    updates.push({ field: f.apiName, value: r.value ?? null });
  }
  for (const [i, u] of updates.entries()) {
    const f = mod.fields.find((x) => x.apiName === u.field);
    if (f?.type === 'user' && typeof u.value === 'string' && !(await isOrgUser(deps, orgId, u.value)))
      errors.push({ path: `${p}.fieldUpdates.${i}`, message: `${f.label}: no such user` });
  }

  const taskMod = modules.get('tasks');
  const callMod = modules.get('calls');
  if (tasks.length && !relationField(taskMod, module))
    errors.push({ path: `${p}.tasks`, message: `Tasks cannot be related to ${mod.pluralLabel}` });
  if (calls.length && !relationField(callMod, module))
    errors.push({ path: `${p}.calls`, message: `Calls cannot be related to ${mod.pluralLabel}` });
  const outTasks: TaskAction[] = [];
  for (const [i, t] of tasks.entries()) {
    const path = `${p}.tasks.${i}`;
    const subject = typeof t.subject === 'string' ? t.subject.trim() : '';
    if (!subject || subject.length > 255)
      errors.push({ path: `${path}.subject`, message: 'a subject of 1–255 characters' });
    if (!int(t.dueInDays, 0, 365)) errors.push({ path: `${path}.dueInDays`, message: 'whole days, 0–365' });
    const pick = (name: 'status' | 'priority') => {
      const v = t[name];
      if (v === undefined || v === null || v === '') return null;
      const f = taskMod?.fields.find((x) => x.apiName === name);
      const r = f ? normaliseValue(f, v) : { ok: false as const, message: 'is not a task field' };
      if (!r.ok) {
        errors.push({ path: `${path}.${name}`, message: `${f?.label ?? name} ${r.message}` });
        return null;
      }
      return (r.value as string) ?? null;
    };
    outTasks.push({
      subject,
      dueInDays: t.dueInDays,
      status: pick('status'),
      priority: pick('priority'),
      assignee: await checkAssignee(deps, orgId, t.assignee, `${path}.assignee`, errors),
    });
  }
  const outCalls: CallAction[] = [];
  for (const [i, c] of calls.entries()) {
    const path = `${p}.calls.${i}`;
    const subject = typeof c.subject === 'string' ? c.subject.trim() : '';
    if (!subject || subject.length > 255)
      errors.push({ path: `${path}.subject`, message: 'a subject of 1–255 characters' });
    if (!int(c.startInDays, 0, 365))
      errors.push({ path: `${path}.startInDays`, message: 'whole days, 0–365' });
    if (typeof c.startTime !== 'string' || !/^([01]\d|2[0-3]):[0-5]\d$/.test(c.startTime))
      errors.push({ path: `${path}.startTime`, message: 'a time of day, HH:MM' });
    outCalls.push({
      subject,
      startInDays: c.startInDays,
      startTime: c.startTime,
      owner: await checkAssignee(deps, orgId, c.owner, `${path}.owner`, errors),
    });
  }
  if (errors.length) throw invalid(`The trigger actions when ${event} have invalid values`, errors);
  return { fieldUpdates: updates, tasks: outTasks, calls: outCalls };
}

/** Replaces the trigger actions of a mass email or follow-up; only its creator may. */
export async function saveTriggers(deps: Deps, actor: Actor, massId: string, input: TriggerSet) {
  const m = await loadMass(deps, actor, massId);
  if (m.created_by !== actor.userId)
    throw forbidden('Only the person who created this mass email can change it');
  const modules = await loadModules(deps, actor.orgId);
  // The actions run later without anyone signed in: the creator must be allowed to do them now.
  for (const event of TRIGGER_EVENTS) {
    const a = input[event];
    if (a?.fieldUpdates?.length) requireModule(actor, m.module, 'edit');
    if (a?.tasks?.length) requireModule(actor, 'tasks', 'create');
    if (a?.calls?.length) requireModule(actor, 'calls', 'create');
  }
  const checked: [TriggerEvent, TriggerActions | null][] = [];
  for (const event of TRIGGER_EVENTS) {
    const a = input[event];
    const empty = !a || !(a.fieldUpdates?.length || a.tasks?.length || a.calls?.length);
    checked.push([event, empty ? null : await checkActions(deps, actor.orgId, modules, m.module, event, a)]);
  }
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await trx
      .deleteFrom('mass_email_triggers')
      .where('org_id', '=', actor.orgId)
      .where('mass_email_id', '=', m.id)
      .execute();
    const rows = checked
      .filter((c): c is [TriggerEvent, TriggerActions] => c[1] !== null)
      .map(([event, actions]) => ({
        mass_email_id: m.id,
        org_id: actor.orgId,
        event,
        actions: JSON.stringify(actions),
        updated_by: actor.userId,
        updated_at: now,
      }));
    if (rows.length) await trx.insertInto('mass_email_triggers').values(rows).execute();
  });
  return getTriggers(deps, actor, massId);
}

// ---------------------------------------------------------------------------------------------
// Firing

type Trx = Transaction<DB>;

interface Trigger {
  massId: string;
  orgId: string;
  event: TriggerEvent;
  actions: TriggerActions;
  massName: string;
  module: string;
  creatorId: string;
  creatorTz: string;
}

/** Which trigger events a feed event fires: a click is an open too. */
const fires: Partial<Record<string, TriggerEvent[]>> = {
  opened: ['opened'],
  clicked: ['clicked', 'opened'],
  bounced: ['bounced'],
};

/** Reads the next batch of the feed and fires what it triggers; returns the events read (-1: busy). */
export async function fireTriggers(deps: Deps, limit = 500): Promise<number> {
  return readEventFeed(deps, 'triggers', limit, async (trx, events) => {
    const wanted = events.filter((e) => e.human && e.massEmailId && e.recordId && fires[e.kind]);
    if (!wanted.length) return;
    const massIds = [...new Set(wanted.map((e) => e.massEmailId as string))];
    const rows = await trx
      .selectFrom('mass_email_triggers as t')
      .innerJoin('mass_emails as me', 'me.id', 't.mass_email_id')
      .innerJoin('modules as mo', 'mo.id', 'me.module_id')
      .innerJoin('users as u', 'u.id', 'me.created_by')
      .select([
        't.mass_email_id',
        't.org_id',
        't.event',
        't.actions',
        'me.name',
        'mo.api_name',
        'me.created_by',
        'u.time_zone',
      ])
      .where('t.mass_email_id', 'in', massIds)
      .execute();
    if (!rows.length) return;
    const triggers = new Map<string, Trigger>(
      rows.map((r) => [
        `${r.mass_email_id}:${r.event}`,
        {
          massId: r.mass_email_id,
          orgId: r.org_id,
          event: r.event,
          actions: r.actions as unknown as TriggerActions,
          massName: r.name,
          module: r.api_name,
          creatorId: r.created_by,
          creatorTz: r.time_zone,
        },
      ]),
    );
    const modules = new Map<string, Map<string, ModuleMeta>>();
    const work: { t: Trigger; e: FeedEvent }[] = [];
    for (const e of wanted)
      for (const event of fires[e.kind] ?? []) {
        const t = triggers.get(`${e.massEmailId}:${event}`);
        if (!t || t.orgId !== e.orgId) continue;
        if (!modules.has(t.orgId)) modules.set(t.orgId, await loadModules({ ...deps, db: trx }, t.orgId));
        work.push({ t, e });
      }
    const mods = (t: Trigger) => modules.get(t.orgId) as Map<string, ModuleMeta>;
    // The whole batch at once; if any firing fails (a record changed under it, a constraint), the
    // batch is run again one firing at a time, so that the failing one is undone alone, marked as
    // fired and told in the record history, and does not hold up the feed for everyone.
    await sql`SAVEPOINT trigger_batch`.execute(trx);
    try {
      for (const { t, e } of work) await fireOnce(deps, trx, t, e, mods(t));
      return;
    } catch {
      await sql`ROLLBACK TO SAVEPOINT trigger_batch`.execute(trx);
    }
    for (const { t, e } of work) {
      await sql`SAVEPOINT trigger_firing`.execute(trx);
      try {
        await fireOnce(deps, trx, t, e, mods(t));
        await sql`RELEASE SAVEPOINT trigger_firing`.execute(trx);
      } catch (err) {
        await sql`ROLLBACK TO SAVEPOINT trigger_firing`.execute(trx);
        deps.log.error({ err, massEmailId: t.massId, recordId: e.recordId }, 'trigger actions failed');
        try {
          await recordFailure(deps, trx, t, e, (err as Error).message);
          await sql`RELEASE SAVEPOINT trigger_firing`.execute(trx);
        } catch {
          await sql`ROLLBACK TO SAVEPOINT trigger_firing`.execute(trx); // the record is gone: nothing to tell
        }
      }
    }
  });
}

async function fireOnce(deps: Deps, trx: Trx, t: Trigger, e: FeedEvent, modules: Map<string, ModuleMeta>) {
  const recordId = e.recordId as string;
  const claimed = await trx
    .insertInto('trigger_firings')
    .values({
      mass_email_id: t.massId,
      record_id: recordId,
      event: t.event,
      org_id: t.orgId,
      email_event_id: e.id,
    })
    .onConflict((c) => c.doNothing())
    .returning('record_id')
    .executeTakeFirst();
  if (!claimed) return; // fired before for this recipient
  const mod = modules.get(t.module);
  if (!mod) return;
  const now = deps.clock.now();
  const done: string[] = [];
  const skipped: string[] = [];
  const detail: Record<string, unknown> = { massEmailName: t.massName, event: t.event, emailEventId: e.id };

  // Field updates: re-checked against the fields as they are now (a field may have changed).
  const patch: Record<string, unknown> = {};
  const cleared: string[] = [];
  for (const u of t.actions.fieldUpdates) {
    const f = mod.fields.find((x) => x.apiName === u.field);
    const r = f ? normaliseValue(f, u.value) : null;
    if (!f || !r?.ok || f.type === 'lookup' || (r.value === undefined && f.required)) {
      skipped.push(`field ${u.field} (no longer valid)`);
      continue;
    }
    if (r.value === undefined) cleared.push(f.apiName);
    else patch[f.apiName] = r.value;
    done.push(
      `set ${f.label} to ${r.value === undefined ? '(empty)' : Array.isArray(r.value) ? r.value.join('; ') : String(r.value)}`,
    );
  }
  const changes = Object.keys(patch).length + cleared.length > 0;
  // One statement either way: the update (merging into the data as it is at that moment) or a read.
  const record = changes
    ? await trx
        .updateTable('records')
        .set({
          data: sql`(data || ${JSON.stringify(patch)}::jsonb) - ${cleared}::text[]`,
          updated_at: now,
        })
        .where('org_id', '=', t.orgId)
        .where('module_id', '=', mod.id)
        .where('id', '=', recordId)
        .returning(['id', 'owner_id'])
        .executeTakeFirst()
    : await trx
        .selectFrom('records')
        .select(['id', 'owner_id'])
        .where('org_id', '=', t.orgId)
        .where('module_id', '=', mod.id)
        .where('id', '=', recordId)
        .executeTakeFirst();
  if (!record) return;
  if (changes) detail.fields = { ...patch, ...Object.fromEntries(cleared.map((c) => [c, null])) };

  const owner = async (a: Assignee) => {
    if (a === 'record_owner') return record.owner_id;
    if (a === 'creator') return t.creatorId;
    const u = await trx
      .selectFrom('users')
      .select('id')
      .where('org_id', '=', t.orgId)
      .where('id', '=', a)
      .where('status', '!=', 'deactivated')
      .executeTakeFirst();
    return u?.id ?? record.owner_id; // a user since deactivated: the record's owner takes it
  };
  const zone = DateTime.now().setZone(t.creatorTz).isValid ? t.creatorTz : 'UTC';
  const local = DateTime.fromJSDate(now, { zone });
  const related: { module: string; label: string; values: Record<string, unknown>; ownerId: string }[] = [];
  for (const task of t.actions.tasks)
    related.push({
      module: 'tasks',
      label: `task "${task.subject}"`,
      values: {
        subject: task.subject,
        due_date: local.plus({ days: task.dueInDays }).toISODate(),
        ...(task.status ? { status: task.status } : {}),
        ...(task.priority ? { priority: task.priority } : {}),
      },
      ownerId: await owner(task.assignee),
    });
  for (const call of t.actions.calls) {
    const [h, mi] = call.startTime.split(':').map(Number);
    const start = local
      .plus({ days: call.startInDays })
      .set({ hour: h, minute: mi, second: 0, millisecond: 0 });
    related.push({
      module: 'calls',
      label: `call "${call.subject}"`,
      values: { subject: call.subject, call_type: 'Outbound', call_start_time: start.toUTC().toISO() },
      ownerId: await owner(call.owner),
    });
  }
  const rows = [];
  for (const r of related) {
    const tm = modules.get(r.module);
    const rel = relationField(tm, t.module);
    const checked =
      tm && rel
        ? normaliseData(tm.fields, { ...r.values, [rel.apiName]: recordId }, { partial: false })
        : null;
    if (!tm || !checked || checked.errors.length) {
      skipped.push(r.label);
      continue;
    }
    done.push(r.label);
    rows.push({
      org_id: t.orgId,
      module_id: tm.id,
      owner_id: r.ownerId,
      created_by: t.creatorId,
      data: JSON.stringify(checked.data),
    });
  }
  const created = rows.length
    ? (await trx.insertInto('records').values(rows).returning(['id', 'module_id']).execute()).map((x) => ({
        module: [...modules.values()].find((m) => m.id === x.module_id)?.apiName,
        id: x.id,
      }))
    : [];
  if (created.length) detail.created = created;
  if (skipped.length) detail.skipped = skipped;
  await trx
    .insertInto('record_history')
    .values({
      org_id: t.orgId,
      record_id: recordId,
      at: now,
      source: 'trigger',
      mass_email_id: t.massId,
      summary: `Mass email "${t.massName}" was ${t.event}: ${done.length ? done.join(', ') : 'nothing to do'}`,
      detail: JSON.stringify(detail),
    })
    .execute();
}

async function recordFailure(deps: Deps, trx: Trx, t: Trigger, e: FeedEvent, message: string) {
  const claimed = await trx
    .insertInto('trigger_firings')
    .values({
      mass_email_id: t.massId,
      record_id: e.recordId as string,
      event: t.event,
      org_id: t.orgId,
      email_event_id: e.id,
    })
    .onConflict((c) => c.doNothing())
    .returning('record_id')
    .executeTakeFirst();
  if (!claimed) return;
  await trx
    .insertInto('record_history')
    .values({
      org_id: t.orgId,
      record_id: e.recordId as string,
      at: deps.clock.now(),
      source: 'trigger',
      mass_email_id: t.massId,
      summary: `Mass email "${t.massName}" was ${t.event}: its trigger actions could not run`,
      detail: JSON.stringify({ massEmailName: t.massName, event: t.event, error: message.slice(0, 500) }),
    })
    .execute();
}

/** A record's history, newest first (what the system did to it, and why). */
export async function recordHistory(deps: Deps, actor: Actor, module: string, recordId: string) {
  requireModule(actor, module, 'read');
  const mods = await loadModules(deps, actor.orgId);
  const mod = mods.get(module);
  if (!mod || !UUID_RE.test(recordId)) throw notFound('Record');
  const rec = await deps.db
    .selectFrom('records')
    .select('id')
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', mod.id)
    .where('id', '=', recordId)
    .executeTakeFirst();
  if (!rec) throw notFound(mod.singularLabel);
  return deps.db
    .selectFrom('record_history')
    .select(['id', 'at', 'source', 'mass_email_id', 'summary', 'detail'])
    .where('org_id', '=', actor.orgId)
    .where('record_id', '=', recordId)
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(200)
    .execute();
}

/** The trigger loop of a worker process: woken by new email events, polling as a fallback. */
export function startTriggerWorker(
  deps: Deps,
  opts: { connectionString: string; pollMs?: number; isStopping?: () => boolean },
): FeedLoop {
  return startFeedLoop(deps, {
    name: 'trigger actions',
    connectionString: opts.connectionString,
    pollMs: opts.pollMs ?? 5000,
    isStopping: opts.isStopping,
    pass: async () => (await fireTriggers(deps)) >= 500,
  });
}
