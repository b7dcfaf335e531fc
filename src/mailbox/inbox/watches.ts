import { type SqlBool, sql, type Transaction } from 'kysely';
import { DateTime } from 'luxon';
import { z } from 'zod';
import { type Actor, loadModules, type ModuleMeta } from '../../crm/index.ts';
import { normaliseData } from '../../crm/values.ts';
import type { DB } from '../../db/schema.ts';
import type { Deps } from '../../deps.ts';
import { AppError, invalid, notFound } from '../../errors.ts';
import { type FeedLoop, startFeedLoop } from '../../webhooks/feed.ts';
import { mineSql } from './inbox.service.ts';
import { notify } from './notifications.ts';

// ResponseWatch (F6.4): "remind me if no reply within N hours/days" on a sent email, either one of
// the user's own mailbox (mail_messages) or one Parley sent for them (messages). A reply anywhere in
// the org's mail naming the watched Message-ID (In-Reply-To or References), or Parley's replied mark,
// settles it as replied; at the due time without one, the user gets a notification and a task, once.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BATCH = 100;

export const watchInput = z
  .object({
    mailId: z.uuid().optional(),
    messageId: z.uuid().optional(),
    amount: z.number().int().min(1).max(720),
    unit: z.enum(['hours', 'days']),
  })
  .strict()
  .refine((v) => (v.mailId === undefined) !== (v.messageId === undefined), {
    error: 'give either mailId (your mailbox) or messageId (sent by Parley)',
  })
  .refine((v) => v.amount * (v.unit === 'days' ? 24 : 1) <= 90 * 24, { error: 'at most 90 days' });
export type WatchInput = z.infer<typeof watchInput>;

const WATCH_COLUMNS = [
  'id',
  'mail_id as mailId',
  'message_id as messageId',
  'subject',
  'state',
  'due_at as dueAt',
  'replied_at as repliedAt',
  'reminded_at as remindedAt',
  'task_id as taskId',
  'created_at as createdAt',
] as const;

export async function createWatch(deps: Deps, actor: Actor, input: WatchInput) {
  const now = deps.clock.now();
  const due = new Date(now.getTime() + input.amount * (input.unit === 'days' ? 86_400_000 : 3_600_000));
  let target: {
    header: string;
    subject: string;
    recordId: string | null;
    moduleId: string | null;
  };
  if (input.mailId) {
    // A sent email of the user's own mailbox.
    const m = await deps.db
      .selectFrom('mail_messages as m')
      .select(['m.id', 'm.message_id_header', 'm.subject'])
      .where('m.org_id', '=', actor.orgId)
      .where('m.id', '=', input.mailId)
      .where(mineSql(actor, sql` AND l.direction = 'out'`))
      .executeTakeFirst();
    if (!m) throw notFound('Sent email');
    if (!m.message_id_header)
      throw invalid('This email has no Message-ID, so a reply to it cannot be recognised');
    // The record it was sent to: the first recipient linked to a record.
    const link = await deps.db
      .selectFrom('mail_record_links')
      .select(['record_id', 'module_id'])
      .where('org_id', '=', actor.orgId)
      .where('mail_id', '=', m.id)
      .orderBy(sql`role = 'to'`, 'desc')
      .orderBy(sql`role = 'from'`)
      .executeTakeFirst();
    target = {
      header: m.message_id_header,
      subject: m.subject,
      recordId: link?.record_id ?? null,
      moduleId: link?.module_id ?? null,
    };
  } else {
    // An email Parley sent for this user.
    const m = await deps.db
      .selectFrom('messages')
      .select(['message_id_header', 'subject', 'record_id', 'module_id', 'sender_id', 'status'])
      .where('org_id', '=', actor.orgId)
      .where('id', '=', input.messageId as string)
      .executeTakeFirst();
    if (!m || m.sender_id !== actor.userId) throw notFound('Sent email');
    target = {
      header: m.message_id_header,
      subject: m.subject,
      recordId: m.record_id,
      moduleId: m.module_id,
    };
  }
  try {
    return await deps.db
      .insertInto('response_watches')
      .values({
        org_id: actor.orgId,
        user_id: actor.userId,
        mail_id: input.mailId ?? null,
        message_id: input.messageId ?? null,
        message_id_header: target.header,
        subject: target.subject,
        record_id: target.recordId,
        module_id: target.moduleId,
        due_at: due,
        created_at: now,
        updated_at: now,
      })
      .returning(WATCH_COLUMNS)
      .executeTakeFirstOrThrow();
  } catch (e) {
    if ((e as { code?: string }).code === '23505')
      throw new AppError('conflict', 'You are already watching this email for a reply');
    throw e;
  }
}

export async function listWatches(
  deps: Deps,
  actor: Actor,
  q: { mailId?: string; messageId?: string; state?: 'waiting' },
) {
  let s = deps.db
    .selectFrom('response_watches')
    .select(WATCH_COLUMNS)
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId);
  if (q.mailId) s = s.where('mail_id', '=', q.mailId);
  if (q.messageId) s = s.where('message_id', '=', q.messageId);
  if (q.state) s = s.where('state', '=', q.state);
  return s.orderBy('created_at', 'desc').limit(200).execute();
}

export async function cancelWatch(deps: Deps, actor: Actor, id: string) {
  if (!UUID.test(id)) throw notFound('Reminder');
  const now = deps.clock.now();
  const r = await deps.db
    .updateTable('response_watches')
    .set({ state: 'cancelled', updated_at: now })
    .where('id', '=', id)
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .where('state', '=', 'waiting')
    .returning(WATCH_COLUMNS)
    .executeTakeFirst();
  if (r) return r;
  const w = await deps.db
    .selectFrom('response_watches')
    .select('state')
    .where('id', '=', id)
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .executeTakeFirst();
  if (!w) throw notFound('Reminder');
  throw new AppError('conflict', `This reminder is already ${w.state}`);
}

/** Mail from outside: not the watcher's own sent copy, not from a user or mailbox of the org. */
const fromOutside = sql`NOT EXISTS (SELECT 1 FROM mail_locations AS ol WHERE ol.mail_id = rp.id AND ol.user_id = w.user_id AND ol.direction = 'out')
      AND NOT EXISTS (SELECT 1 FROM users AS u WHERE u.org_id = w.org_id AND lower(u.email) = lower(rp.from_address))
      AND NOT EXISTS (SELECT 1 FROM mailbox_accounts AS a WHERE a.org_id = w.org_id AND lower(a.email_address) = lower(rp.from_address))`;

/**
 * A reply to the watched email: mail from outside the org naming its Message-ID (In-Reply-To or
 * References), or later in its thread (clients that drop those headers are threaded by subject),
 * or Parley's own replied mark on its message.
 */
const replied = sql<SqlBool>`(EXISTS (SELECT 1 FROM mail_messages AS rp
    WHERE rp.org_id = w.org_id
      AND (rp.in_reply_to = w.message_id_header OR rp."references" @> ARRAY[w.message_id_header])
      AND rp.message_id_header IS DISTINCT FROM w.message_id_header AND ${fromOutside})
  OR EXISTS (SELECT 1 FROM mail_messages AS wm JOIN mail_messages AS rp
      ON rp.org_id = wm.org_id AND rp.thread_id = wm.thread_id AND rp.date > wm.date AND rp.id <> wm.id
    WHERE wm.id = w.mail_id AND ${fromOutside})
  OR EXISTS (SELECT 1 FROM messages AS pm WHERE pm.id = w.message_id AND pm.org_id = w.org_id AND pm.replied_at IS NOT NULL))`;

/**
 * One pass over waiting watches: replied ones are settled, due ones without a reply are claimed
 * (state reminded, in the same statement that locks them: with SKIP LOCKED two workers never claim
 * the same watch) and get their notification and task in that transaction.
 */
export async function checkResponseWatches(deps: Deps): Promise<{ replied: number; reminded: number }> {
  const now = deps.clock.now();
  const settled = await sql<{ id: string }>`UPDATE response_watches AS w
      SET state = 'replied', replied_at = ${now}, updated_at = ${now}
      WHERE w.state = 'waiting' AND ${replied} RETURNING w.id`.execute(deps.db);
  let reminded = 0;
  for (;;) {
    const n = await deps.db.transaction().execute(async (trx) => {
      const claimed = await sql<{
        id: string;
        org_id: string;
        user_id: string;
        mail_id: string | null;
        message_id: string | null;
        subject: string;
        record_id: string | null;
        module_id: string | null;
        created_at: Date;
      }>`WITH due AS (
          SELECT w.id FROM response_watches AS w
          WHERE w.state = 'waiting' AND w.due_at <= ${now} AND NOT ${replied}
          ORDER BY w.due_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)
        UPDATE response_watches AS w SET state = 'reminded', reminded_at = ${now}, updated_at = ${now}
        FROM due WHERE w.id = due.id AND w.state = 'waiting'
        RETURNING w.id, w.org_id, w.user_id, w.mail_id, w.message_id, w.subject, w.record_id, w.module_id, w.created_at`.execute(
        trx,
      );
      const modulesByOrg = new Map<string, Map<string, ModuleMeta>>();
      for (const w of claimed.rows) {
        let modules = modulesByOrg.get(w.org_id);
        if (!modules) {
          modules = await loadModules({ ...deps, db: trx }, w.org_id);
          modulesByOrg.set(w.org_id, modules);
        }
        await remind(trx, modules, w, now);
      }
      return claimed.rows.length;
    });
    reminded += n;
    if (n < BATCH) break;
  }
  return { replied: settled.rows.length, reminded };
}

async function remind(
  trx: Transaction<DB>,
  modules: Map<string, ModuleMeta>,
  w: {
    id: string;
    org_id: string;
    user_id: string;
    mail_id: string | null;
    message_id: string | null;
    subject: string;
    record_id: string | null;
    module_id: string | null;
    created_at: Date;
  },
  now: Date,
) {
  const user = await trx
    .selectFrom('users')
    .select(['time_zone'])
    .where('id', '=', w.user_id)
    .executeTakeFirstOrThrow();
  const zone = DateTime.now().setZone(user.time_zone).isValid ? user.time_zone : 'UTC';
  const subject = `No reply: ${w.subject || '(no subject)'}`.slice(0, 255);
  const tasks = modules.get('tasks');
  const recordModule = [...modules.values()].find((m) => m.id === w.module_id);
  // The task is related to the record when Tasks have a lookup to its module (lead_id, contact_id …).
  const relation =
    w.record_id && recordModule
      ? tasks?.fields.find((f) => f.type === 'lookup' && f.options.module === recordModule.apiName)
      : undefined;
  let taskId: string | null = null;
  if (tasks) {
    const values: Record<string, unknown> = {
      subject,
      due_date: DateTime.fromJSDate(now, { zone }).toISODate(),
      ...(tasks.fields.some((f) => f.apiName === 'status' && f.options.values?.includes('Not Started'))
        ? { status: 'Not Started' }
        : {}),
      ...(relation ? { [relation.apiName]: w.record_id } : {}),
    };
    const checked = normaliseData(tasks.fields, values, { partial: false });
    if (!checked.errors.length) {
      const t = await trx
        .insertInto('records')
        .values({
          org_id: w.org_id,
          module_id: tasks.id,
          owner_id: w.user_id,
          created_by: w.user_id,
          data: JSON.stringify(checked.data),
          created_at: now,
          updated_at: now,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      taskId = t.id;
      await trx.updateTable('response_watches').set({ task_id: taskId }).where('id', '=', w.id).execute();
    }
  }
  const link = w.mail_id
    ? `/inbox?mail=${w.mail_id}`
    : w.record_id && recordModule
      ? `/m/${recordModule.apiName}/${w.record_id}`
      : `/outbox/${w.message_id}`;
  await notify(trx, {
    orgId: w.org_id,
    userId: w.user_id,
    kind: 'response_watch',
    title: subject,
    body: taskId
      ? `No reply since you asked to be reminded. A task "${subject}" is due today.`
      : 'No reply since you asked to be reminded.',
    link,
    at: now,
  });
}

/** The worker loop: wakes on new email events (replies) and polls for watches coming due. */
export function startResponseWatchWorker(
  deps: Deps,
  opts: { connectionString: string; pollMs?: number; isStopping?: () => boolean },
): FeedLoop {
  return startFeedLoop(deps, {
    name: 'response watch',
    connectionString: opts.connectionString,
    pollMs: opts.pollMs ?? 30_000,
    isStopping: opts.isStopping,
    pass: async () => {
      await checkResponseWatches(deps);
      return false;
    },
  });
}
