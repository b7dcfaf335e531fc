import type { Actor } from '../../crm/index.ts';
import type { Db } from '../../db/pool.ts';
import type { Deps } from '../../deps.ts';
import { invalid, notFound } from '../../errors.ts';

// In-app notifications (the bell in the top bar). Links are app paths the server builds.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface NewNotification {
  orgId: string;
  userId: string;
  kind: string;
  title: string;
  body?: string;
  /** A path inside the app ("/inbox?mail=…"), never a full URL. */
  link?: string | null;
  at: Date;
}

export async function notify(db: Db, n: NewNotification) {
  if (n.link && !/^\/(?!\/)/.test(n.link)) throw new Error('A notification link must be an app path');
  return db
    .insertInto('notifications')
    .values({
      org_id: n.orgId,
      user_id: n.userId,
      kind: n.kind,
      title: n.title.slice(0, 300),
      body: (n.body ?? '').slice(0, 2000),
      link: n.link ?? null,
      created_at: n.at,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

export async function listNotifications(
  deps: Deps,
  actor: Actor,
  opts: { unreadOnly?: boolean; limit?: number } = {},
) {
  let q = deps.db
    .selectFrom('notifications')
    .select(['id', 'kind', 'title', 'body', 'link', 'created_at as createdAt', 'read_at as readAt'])
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId);
  if (opts.unreadOnly) q = q.where('read_at', 'is', null);
  const items = await q
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(Math.min(opts.limit ?? 30, 100))
    .execute();
  return { items, unread: await unreadCount(deps, actor) };
}

export async function unreadCount(deps: Deps, actor: Actor): Promise<number> {
  const r = await deps.db
    .selectFrom('notifications')
    .select((e) => e.fn.countAll<number>().as('n'))
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .where('read_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Marks some (ids) or all of the user's notifications read. */
export async function markNotificationsRead(deps: Deps, actor: Actor, ids: string[] | 'all') {
  if (ids !== 'all' && (!ids.length || ids.some((id) => !UUID.test(id))))
    throw invalid('ids must be notification ids');
  let q = deps.db
    .updateTable('notifications')
    .set({ read_at: deps.clock.now() })
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .where('read_at', 'is', null);
  if (ids !== 'all') q = q.where('id', 'in', ids);
  const r = await q.executeTakeFirst();
  if (ids !== 'all' && r.numUpdatedRows === 0n) {
    const exists = await deps.db
      .selectFrom('notifications')
      .select('id')
      .where('user_id', '=', actor.userId)
      .where('id', 'in', ids)
      .executeTakeFirst();
    if (!exists) throw notFound('Notification');
  }
  return { unread: await unreadCount(deps, actor) };
}
