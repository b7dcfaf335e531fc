import { sql } from 'kysely';
import { type Actor, can, requireModule, scope, validateCriteria } from '../crm/index.ts';
import type { AddressChoice, AudienceSpec, FollowupAudience, MassStatus } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { AppError, forbidden, invalid, notFound } from '../errors.ts';
import { countAudience, resolveAudience } from './audience.ts';
import { holdQueued, queueParked } from './mass-launch.ts';
import { gmtDay, gmtDayStart, massDailyLimit, massUsed, nextGmtDay } from './mass-limits.ts';

// Mass email lifecycle (F3.3–F3.6): create, schedule, edit, stop, start, delete, follow-ups, and the
// launch that turns a due mass email into one queued message per recipient. The delivery worker
// sends those rows like any other message; this module never talks SMTP.

export const SLOT_MAX = 5; // F3.4: mass emails per module per time slot
export const EDIT_FREEZE_MS = 15 * 60_000; // F3.5: an edit this close to the send time stops it
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface FollowupInput {
  name?: string;
  templateId: string;
  audience: FollowupAudience;
  days: number;
  /** A fixed send time instead of `days` (not for the 'opened' audience). */
  sendAt?: string | null;
  ignoreCriteria?: unknown;
  from?: AddressChoice;
  replyTo?: AddressChoice | null;
}

export interface MassEmailInput {
  module: string;
  name: string;
  templateId: string;
  from: AddressChoice;
  replyTo?: AddressChoice | null;
  audience: AudienceSpec;
  /** ISO date-time; absent or null sends now. */
  sendAt?: string | null;
  /** When the send is larger than what today's limit leaves, let the remainder wait for later days. */
  allowWait?: boolean;
  followups?: FollowupInput[];
}

type MassRow = Awaited<ReturnType<typeof loadMass>>;

async function loadMass(deps: Deps, actor: Actor, id: string) {
  const m = UUID.test(id)
    ? await deps.db
        .selectFrom('mass_emails as me')
        .innerJoin('modules as mo', 'mo.id', 'me.module_id')
        .selectAll('me')
        .select('mo.api_name as module')
        .where('me.org_id', '=', actor.orgId)
        .where('me.id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!m) throw notFound('Mass email');
  requireModule(actor, m.module, 'mass_email');
  return m;
}

function requireCreator(actor: Actor, m: { created_by: string }) {
  if (m.created_by !== actor.userId)
    throw forbidden('Only the person who created this mass email can change it');
}

function parseSendAt(v: string | null | undefined, now: Date): Date | null {
  if (v === undefined || v === null || v === '') return null;
  const d = new Date(v);
  if (Number.isNaN(d.getTime()) || !/[zZ]|[+-]\d\d:?\d\d$/.test(v))
    throw invalid('sendAt must be an ISO date-time with a time zone offset', [
      { path: 'sendAt', message: 'invalid' },
    ]);
  d.setUTCSeconds(0, 0); // slots are whole minutes
  if (d.getTime() < now.getTime() - 60_000)
    throw invalid('The send time is in the past', [{ path: 'sendAt', message: 'in the past' }]);
  return d;
}

async function checkTemplate(deps: Deps, actor: Actor, templateId: string, moduleId: string, path: string) {
  const t = UUID.test(templateId)
    ? await deps.db
        .selectFrom('templates as t')
        .innerJoin('template_versions as v', (j) =>
          j.onRef('v.template_id', '=', 't.id').onRef('v.version', '=', 't.current_version'),
        )
        .select(['t.id', 't.module_id', 'v.from_address', 'v.reply_to'])
        .where('t.org_id', '=', actor.orgId)
        .where('t.id', '=', templateId)
        .where('t.deleted_at', 'is', null)
        .executeTakeFirst()
    : undefined;
  if (!t) throw invalid('Choose an existing template', [{ path, message: 'not found' }]);
  if (t.module_id !== moduleId)
    throw invalid('The template belongs to another module', [{ path, message: 'other module' }]);
  return t;
}

async function checkChoice(
  deps: Deps,
  actor: Actor,
  choice: AddressChoice | null | undefined,
  template: { from_address: string | null; reply_to: string | null },
  path: string,
  which: 'from' | 'replyTo',
) {
  if (choice === null || choice === undefined) {
    if (which === 'from') throw invalid('Choose a From address', [{ path, message: 'required' }]);
    return;
  }
  switch (choice.kind) {
    case 'user':
    case 'owner':
      return;
    case 'template':
      if (!(which === 'from' ? template.from_address : template.reply_to))
        throw invalid('The template has no address of its own to use here', [
          { path, message: 'not offered' },
        ]);
      return;
    case 'org_address': {
      const a =
        choice.orgAddressId && UUID.test(choice.orgAddressId)
          ? await deps.db
              .selectFrom('org_addresses')
              .select(['verified_at'])
              .where('org_id', '=', actor.orgId)
              .where('id', '=', choice.orgAddressId)
              .executeTakeFirst()
          : undefined;
      if (!a) throw invalid('Choose one of the organization addresses', [{ path, message: 'not found' }]);
      if (!a.verified_at)
        throw invalid('That organization address is not verified yet', [{ path, message: 'unverified' }]);
      return;
    }
    default:
      throw invalid('The address choice must be user, org_address, owner or template', [
        { path, message: 'invalid' },
      ]);
  }
}

/** The time slot rule: at most SLOT_MAX scheduled mass emails per module at the same minute. */
async function checkSlot(trx: Deps['db'], orgId: string, moduleId: string, at: Date, exceptId?: string) {
  // Serialise schedulers of one module so that two requests cannot both take the fifth place.
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`mass-slot:${orgId}:${moduleId}`}, 0))`.execute(
    trx,
  );
  const n = await trx
    .selectFrom('mass_emails')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', orgId)
    .where('module_id', '=', moduleId)
    .where('status', '=', 'scheduled')
    .where('parent_id', 'is', null)
    .where('send_at', '=', at)
    .$if(!!exceptId, (q) => q.where('id', '!=', exceptId as string))
    .executeTakeFirstOrThrow();
  if (Number(n.n) >= SLOT_MAX)
    throw new AppError(
      'limit_exceeded',
      `${SLOT_MAX} mass emails of this module are already scheduled for ${at.toISOString()}; choose another time`,
      [{ path: 'sendAt', message: 'slot full' }],
    );
}

/** Refuses a send larger than what the day leaves, unless the remainder may wait. */
async function checkDailyRoom(deps: Deps, orgId: string, when: Date, recipients: number, allowWait: boolean) {
  const limit = await massDailyLimit(deps.db, orgId);
  if (limit === 0) throw new AppError('limit_exceeded', 'Mass email is not available in your edition');
  const day = gmtDay(when);
  const used = await massUsed(deps.db, orgId, day);
  const left = Math.max(0, limit - used);
  if (recipients > left && !allowWait)
    throw new AppError(
      'limit_exceeded',
      `This send has ${recipients} recipients but only ${left} of today's ${limit} mass emails are left (GMT day ${day}). Send to fewer, or let the remainder wait for the next day.`,
      [
        { path: 'used', message: String(used) },
        { path: 'limit', message: String(limit) },
        { path: 'recipients', message: String(recipients) },
        { path: 'resetsAt', message: gmtDayStart(nextGmtDay(day)).toISOString() },
      ],
    );
}

async function maxFollowups(deps: Deps, orgId: string) {
  const r = await deps.db
    .selectFrom('orgs as o')
    .innerJoin('edition_limits as l', 'l.edition', 'o.edition')
    .select('l.followups_per_mass')
    .where('o.id', '=', orgId)
    .executeTakeFirstOrThrow();
  return r.followups_per_mass;
}

function checkFollowupShape(f: FollowupInput, i: number, ctx: Parameters<typeof validateCriteria>[1]) {
  const p = `followups.${i}`;
  const audiences: FollowupAudience[] = ['received', 'opened', 'not_opened', 'clicked', 'not_clicked'];
  if (!audiences.includes(f.audience))
    throw invalid(`Follow-up ${i + 1}: choose who receives it`, [
      { path: `${p}.audience`, message: 'invalid' },
    ]);
  const hasDate = f.sendAt !== undefined && f.sendAt !== null && f.sendAt !== '';
  if (hasDate && f.audience === 'opened')
    throw invalid(`Follow-up ${i + 1}: for those who opened, give a number of days`, [
      { path: `${p}.sendAt`, message: 'days only' },
    ]);
  if (!hasDate && !(Number.isInteger(f.days) && f.days >= 1 && f.days <= 365))
    throw invalid(`Follow-up ${i + 1}: days must be a whole number from 1 to 365`, [
      { path: `${p}.days`, message: 'invalid' },
    ]);
  if (f.ignoreCriteria !== undefined && f.ignoreCriteria !== null) validateCriteria(f.ignoreCriteria, ctx);
}

export async function previewMassAudience(deps: Deps, actor: Actor, module: string, audience: AudienceSpec) {
  return countAudience(deps, await resolveAudience(deps, actor, module, audience));
}

export async function createMassEmail(deps: Deps, actor: Actor, input: MassEmailInput) {
  requireModule(actor, input.module, 'mass_email');
  const s = await scope(deps, actor, input.module);
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (!name || name.length > 200)
    throw invalid('Name the mass email (1 to 200 characters)', [{ path: 'name', message: 'required' }]);
  const now = deps.clock.now();
  const sendAt = parseSendAt(input.sendAt, now);
  const t = await checkTemplate(deps, actor, input.templateId, s.mod.id, 'templateId');
  await checkChoice(deps, actor, input.from, t, 'from', 'from');
  await checkChoice(deps, actor, input.replyTo, t, 'replyTo', 'replyTo');
  const followups = input.followups ?? [];
  const allowed = await maxFollowups(deps, actor.orgId);
  if (followups.length > allowed)
    throw new AppError(
      'limit_exceeded',
      allowed === 0
        ? 'Your edition does not include follow-up emails'
        : `At most ${allowed} follow-ups per mass email in your edition`,
      [{ path: 'followups', message: 'too many' }],
    );
  for (const [i, f] of followups.entries()) {
    checkFollowupShape(f, i, s.ctx);
    const ft = await checkTemplate(deps, actor, f.templateId, s.mod.id, `followups.${i}.templateId`);
    await checkChoice(deps, actor, f.from ?? input.from, ft, `followups.${i}.from`, 'from');
  }
  const counts = countAudience(deps, await resolveAudience(deps, actor, input.module, input.audience));
  const { recipients } = await counts;
  if (recipients === 0)
    throw invalid('No one would receive this mass email', [{ path: 'audience', message: 'empty' }]);
  await checkDailyRoom(deps, actor.orgId, sendAt ?? now, recipients, input.allowWait === true);

  return deps.db.transaction().execute(async (trx) => {
    if (sendAt) await checkSlot(trx, actor.orgId, s.mod.id, sendAt);
    const m = await trx
      .insertInto('mass_emails')
      .values({
        org_id: actor.orgId,
        module_id: s.mod.id,
        created_by: actor.userId,
        name,
        template_id: t.id,
        from_choice: JSON.stringify(input.from),
        reply_to_choice: input.replyTo ? JSON.stringify(input.replyTo) : null,
        audience: JSON.stringify(input.audience),
        status: sendAt ? 'scheduled' : 'sending',
        send_at: sendAt ?? now,
        allow_wait: input.allowWait === true,
      })
      .returning(['id'])
      .executeTakeFirstOrThrow();
    for (const [i, f] of followups.entries()) {
      const fixed = parseSendAt(f.sendAt ?? null, now);
      await trx
        .insertInto('mass_emails')
        .values({
          org_id: actor.orgId,
          module_id: s.mod.id,
          parent_id: m.id,
          position: i + 1,
          created_by: actor.userId,
          name: f.name?.trim() || `${name} – follow-up ${i + 1}`,
          template_id: f.templateId,
          from_choice: JSON.stringify(f.from ?? input.from),
          reply_to_choice: (f.replyTo ?? input.replyTo) ? JSON.stringify(f.replyTo ?? input.replyTo) : null,
          followup_audience: f.audience,
          followup_days: fixed ? null : f.days,
          ignore_criteria: f.ignoreCriteria ? JSON.stringify(f.ignoreCriteria) : null,
          status: 'scheduled',
          send_at: fixed, // N-days follow-ups get their time when the previous send goes out
          allow_wait: input.allowWait === true,
        })
        .execute();
    }
    await sql`SELECT pg_notify('parley_mass', ${m.id})`.execute(trx);
    return m.id;
  });
}

export interface MassEmailPatch {
  name?: string;
  templateId?: string;
  from?: AddressChoice;
  replyTo?: AddressChoice | null;
  audience?: AudienceSpec;
  sendAt?: string | null;
  allowWait?: boolean;
  /** For a follow-up: its audience, delay and records to ignore. */
  followup?: Partial<FollowupInput>;
}

/**
 * Edits a scheduled or stopped mass email (or a follow-up not yet sent). An edit saved less than
 * 15 minutes before a scheduled send moves it to Stopped: the creator must start it again.
 */
export async function updateMassEmail(deps: Deps, actor: Actor, id: string, patch: MassEmailPatch) {
  const m = await loadMass(deps, actor, id);
  requireCreator(actor, m);
  const isFollowup = m.parent_id !== null;
  if (!isFollowup && m.status !== 'scheduled' && m.status !== 'stopped')
    throw new AppError('conflict', 'Only scheduled or stopped mass emails can be edited');
  if (isFollowup && (m.started_at !== null || m.status === 'sent'))
    throw new AppError('conflict', 'This follow-up has already been sent');
  if (isFollowup && patch.audience !== undefined)
    throw invalid('A follow-up takes its recipients from the mass email before it', [
      { path: 'audience', message: 'not editable' },
    ]);
  const now = deps.clock.now();
  const t = await checkTemplate(deps, actor, patch.templateId ?? m.template_id, m.module_id, 'templateId');
  if (patch.from !== undefined) await checkChoice(deps, actor, patch.from, t, 'from', 'from');
  if (patch.replyTo !== undefined) await checkChoice(deps, actor, patch.replyTo, t, 'replyTo', 'replyTo');
  if (patch.audience !== undefined) {
    const c = await countAudience(deps, await resolveAudience(deps, actor, m.module, patch.audience));
    if (c.recipients === 0)
      throw invalid('No one would receive this mass email', [{ path: 'audience', message: 'empty' }]);
  }
  let followupSet: Record<string, unknown> = {};
  if (isFollowup && patch.followup) {
    const s = await scope(deps, actor, m.module);
    const merged: FollowupInput = {
      templateId: t.id,
      audience: patch.followup.audience ?? (m.followup_audience as FollowupAudience),
      days: patch.followup.days ?? m.followup_days ?? 0,
      sendAt:
        patch.followup.sendAt !== undefined
          ? patch.followup.sendAt
          : m.followup_days
            ? null
            : m.send_at?.toISOString(),
      ignoreCriteria:
        patch.followup.ignoreCriteria !== undefined ? patch.followup.ignoreCriteria : m.ignore_criteria,
    };
    checkFollowupShape(merged, 0, s.ctx);
    const fixed = parseSendAt(merged.sendAt ?? null, now);
    followupSet = {
      followup_audience: merged.audience,
      followup_days: fixed ? null : merged.days,
      ignore_criteria: merged.ignoreCriteria ? JSON.stringify(merged.ignoreCriteria) : null,
      send_at: fixed ?? (await followupTime(deps, m.parent_id as string, m.position, merged.days)),
    };
  }
  const sendAt = patch.sendAt !== undefined ? parseSendAt(patch.sendAt, now) : m.send_at;
  if (!isFollowup && patch.sendAt === null)
    throw invalid('A scheduled mass email needs a send time; start it to send now', [
      { path: 'sendAt', message: 'required' },
    ]);
  const name = patch.name === undefined ? m.name : patch.name.trim();
  if (!name || name.length > 200)
    throw invalid('Name the mass email (1 to 200 characters)', [{ path: 'name', message: 'required' }]);
  // The 15-minute rule looks at the send time as it was when the edit was made.
  const frozen =
    !isFollowup &&
    m.status === 'scheduled' &&
    m.send_at !== null &&
    m.send_at.getTime() - now.getTime() < EDIT_FREEZE_MS;
  const status: MassStatus = frozen ? 'stopped' : m.status;
  return deps.db.transaction().execute(async (trx) => {
    if (!isFollowup && status === 'scheduled' && sendAt)
      await checkSlot(trx, actor.orgId, m.module_id, sendAt, m.id);
    await trx
      .updateTable('mass_emails')
      .set({
        name,
        template_id: t.id,
        ...(patch.from !== undefined ? { from_choice: JSON.stringify(patch.from) } : {}),
        ...(patch.replyTo !== undefined
          ? { reply_to_choice: patch.replyTo ? JSON.stringify(patch.replyTo) : null }
          : {}),
        ...(patch.audience !== undefined ? { audience: JSON.stringify(patch.audience) } : {}),
        ...(patch.allowWait !== undefined ? { allow_wait: patch.allowWait } : {}),
        send_at: sendAt,
        status,
        stop_reason: frozen ? 'edited_within_15_minutes' : m.stop_reason,
        schedule_version: sql`schedule_version + 1`,
        updated_at: now,
        ...followupSet,
      })
      .where('org_id', '=', actor.orgId)
      .where('id', '=', m.id)
      .execute();
    return { id: m.id, status, stoppedBecauseEditedLate: frozen };
  });
}

/** When an N-days follow-up goes: N days after the step before it started (unknown until then). */
async function followupTime(
  deps: Deps,
  parentId: string,
  position: number,
  days: number,
): Promise<Date | null> {
  const prev = await deps.db
    .selectFrom('mass_emails')
    .select('started_at')
    .where((eb) =>
      position === 1
        ? eb('id', '=', parentId)
        : eb.and([eb('parent_id', '=', parentId), eb('position', '=', position - 1)]),
    )
    .executeTakeFirst();
  return prev?.started_at ? new Date(prev.started_at.getTime() + days * 86_400_000) : null;
}

/** Adds a follow-up to a mass email, within the edition's number of follow-ups. */
export async function addFollowup(deps: Deps, actor: Actor, id: string, f: FollowupInput) {
  const m = await loadMass(deps, actor, id);
  requireCreator(actor, m);
  if (m.parent_id !== null) throw invalid('Add follow-ups to the mass email itself');
  const s = await scope(deps, actor, m.module);
  checkFollowupShape(f, 0, s.ctx);
  const t = await checkTemplate(deps, actor, f.templateId, m.module_id, 'templateId');
  if (f.from) await checkChoice(deps, actor, f.from, t, 'from', 'from');
  const now = deps.clock.now();
  const fixed = parseSendAt(f.sendAt ?? null, now);
  return deps.db.transaction().execute(async (trx) => {
    await sql`SELECT 1 FROM mass_emails WHERE id = ${m.id} FOR UPDATE`.execute(trx);
    const existing = await trx
      .selectFrom('mass_emails')
      .select('position')
      .where('parent_id', '=', m.id)
      .execute();
    const allowed = await maxFollowups(deps, actor.orgId);
    if (existing.length >= allowed)
      throw new AppError(
        'limit_exceeded',
        allowed === 0
          ? 'Your edition does not include follow-up emails'
          : `At most ${allowed} follow-ups per mass email in your edition`,
      );
    const position = Math.max(0, ...existing.map((e) => e.position)) + 1;
    const row = await trx
      .insertInto('mass_emails')
      .values({
        org_id: actor.orgId,
        module_id: m.module_id,
        parent_id: m.id,
        position,
        created_by: actor.userId,
        name: f.name?.trim() || `${m.name} – follow-up ${position}`,
        template_id: t.id,
        from_choice: JSON.stringify(f.from ?? m.from_choice),
        reply_to_choice:
          (f.replyTo ?? m.reply_to_choice) ? JSON.stringify(f.replyTo ?? m.reply_to_choice) : null,
        followup_audience: f.audience,
        followup_days: fixed ? null : f.days,
        ignore_criteria: f.ignoreCriteria ? JSON.stringify(f.ignoreCriteria) : null,
        status: 'scheduled',
        send_at: fixed ?? (await followupTime({ ...deps, db: trx }, m.id, position, f.days)),
        allow_wait: m.allow_wait,
      })
      .returning(['id', 'position'])
      .executeTakeFirstOrThrow();
    return row;
  });
}

/** Stops a scheduled or sending mass email: what was sent stays sent, the rest waits for a start. */
export async function stopMassEmail(deps: Deps, actor: Actor, id: string) {
  const m = await loadMass(deps, actor, id);
  requireCreator(actor, m);
  if (m.status !== 'scheduled' && m.status !== 'sending')
    throw new AppError('conflict', 'Only a scheduled or sending mass email can be stopped');
  await deps.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('mass_emails')
      .set({
        status: 'stopped',
        stop_reason: 'stopped_by_user',
        schedule_version: sql`schedule_version + 1`,
        updated_at: deps.clock.now(),
      })
      .where('id', '=', m.id)
      .where('org_id', '=', actor.orgId)
      .execute();
    await holdQueued(trx, actor.orgId, m.id);
  });
  return { id: m.id, status: 'stopped' as const };
}

/** Starts a stopped mass email again: scheduled if its time is ahead, otherwise it sends now. */
export async function startMassEmail(deps: Deps, actor: Actor, id: string) {
  const m = await loadMass(deps, actor, id);
  requireCreator(actor, m);
  if (m.status !== 'stopped') throw new AppError('conflict', 'Only a stopped mass email can be started');
  const now = deps.clock.now();
  const future = m.send_at !== null && m.send_at.getTime() > now.getTime();
  const parked = await deps.db
    .selectFrom('messages')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('mass_email_id', '=', m.id)
    .where('org_id', '=', actor.orgId)
    .where('status', '=', 'queued')
    .executeTakeFirstOrThrow();
  if (!future && m.started_at !== null)
    await checkDailyRoom(deps, actor.orgId, now, Number(parked.n), m.allow_wait);
  return deps.db.transaction().execute(async (trx) => {
    if (future && m.parent_id === null)
      await checkSlot(trx, actor.orgId, m.module_id, m.send_at as Date, m.id);
    const status: MassStatus =
      future || m.started_at === null ? (future ? 'scheduled' : 'sending') : 'sending';
    await trx
      .updateTable('mass_emails')
      .set({
        status,
        stop_reason: null,
        send_at: future ? m.send_at : (m.send_at ?? now),
        schedule_version: sql`schedule_version + 1`,
        updated_at: now,
      })
      .where('id', '=', m.id)
      .where('org_id', '=', actor.orgId)
      .execute();
    if (m.started_at !== null && !future) {
      const left = await queueParked({ ...deps, db: trx }, actor.orgId, m.id, m.allow_wait, now);
      if (left > 0 && !m.allow_wait)
        throw new AppError(
          'limit_exceeded',
          `Today's mass email limit leaves no room for the ${left} messages still to send; start it again tomorrow or let the remainder wait`,
        );
    }
    await sql`SELECT pg_notify('parley_mass', ${m.id})`.execute(trx);
    return { id: m.id, status };
  });
}

/** Deletes a mass email and its follow-ups. Messages already sent stay on their records. */
export async function deleteMassEmail(deps: Deps, actor: Actor, id: string) {
  const m = await loadMass(deps, actor, id);
  if (m.parent_id !== null) requireCreator(actor, m);
  await deps.db.transaction().execute(async (trx) => {
    const ids = [
      m.id,
      ...(await trx.selectFrom('mass_emails').select('id').where('parent_id', '=', m.id).execute()).map(
        (r) => r.id,
      ),
    ];
    for (const mid of ids) await holdQueued(trx, actor.orgId, mid);
    await trx
      .updateTable('messages')
      .set({
        status: 'failed',
        smtp_response: 'Not sent: the mass email was deleted',
        updated_at: deps.clock.now(),
        mass_email_id: null,
      })
      .where('mass_email_id', 'in', ids)
      .where('org_id', '=', actor.orgId)
      .where('status', '=', 'queued')
      .execute();
    await trx
      .updateTable('messages')
      .set({ mass_email_id: null })
      .where('mass_email_id', 'in', ids)
      .where('org_id', '=', actor.orgId)
      .execute();
    await trx.deleteFrom('mass_emails').where('id', '=', m.id).where('org_id', '=', actor.orgId).execute();
  });
}

export type Folder = 'scheduled' | 'sent' | 'stopped';

/** The summary's three folders (F3.5). Sent includes sends in progress. */
export async function listMassEmails(deps: Deps, actor: Actor, folder: Folder, module?: string) {
  const statuses: MassStatus[] = folder === 'sent' ? ['sent', 'sending'] : [folder];
  const rows = await deps.db
    .selectFrom('mass_emails as me')
    .innerJoin('modules as mo', 'mo.id', 'me.module_id')
    .innerJoin('users as u', 'u.id', 'me.created_by')
    .select([
      'me.id',
      'me.name',
      'me.status',
      'me.stop_reason',
      'me.send_at',
      'me.started_at',
      'me.finished_at',
      'me.recipients',
      'me.excluded',
      'me.created_by',
      'me.created_at',
      'mo.api_name as module',
      'u.name as creator_name',
    ])
    .where('me.org_id', '=', actor.orgId)
    .where('me.parent_id', 'is', null)
    .where('me.status', 'in', statuses)
    .$if(!!module, (q) => q.where('mo.api_name', '=', module as string))
    .orderBy('me.send_at', folder === 'scheduled' ? 'asc' : 'desc')
    .limit(500)
    .execute();
  return rows.filter((r) => can(actor, r.module, 'mass_email'));
}

export async function getMassEmail(deps: Deps, actor: Actor, id: string) {
  const m = await loadMass(deps, actor, id);
  const followups = await deps.db
    .selectFrom('mass_emails')
    .selectAll()
    .where('org_id', '=', actor.orgId)
    .where('parent_id', '=', m.id)
    .orderBy('position')
    .execute();
  return { ...m, followups, editable: m.created_by === actor.userId };
}

export type { MassRow };
