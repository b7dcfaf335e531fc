// Email statuses (F4.5) and the live feed (F4.11): the derivation table, late and duplicate events
// never moving a status back, the record's Emails list and latest status through the API, and the
// server-sent events stream read by a real HTTP client on a real database.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { actorForUser, createApiKey } from '../src/crm/index.ts';
import { recordEvents } from '../src/tracking/events.ts';
import {
  emailStatus,
  latestState,
  type MessageSummary,
  PROGRESS,
  progressRank,
  stepReached,
} from '../src/tracking/status.ts';
import { type Client, login, startTestApp } from './support/app.ts';

const base: MessageSummary = {
  status: 'sent',
  transport: 'relay',
  sent_at: '2026-03-01T10:00:00.000Z',
  tracked: true,
  bounced_at: null,
  bounce_kind: null,
  bounce_reason: null,
  opened_at: null,
  last_opened_at: null,
  open_count: 0,
  machine_open_count: 0,
  clicked_at: null,
  last_clicked_at: null,
  click_count: 0,
  machine_click_count: 0,
  replied_at: null,
};
const T = (h: number) => new Date(Date.parse('2026-03-01T10:00:00.000Z') + h * 3_600_000).toISOString();

describe('a message’s status', () => {
  it.each<[string, Partial<MessageSummary>, string]>([
    ['queued', { status: 'queued', sent_at: null }, 'queued'],
    ['deferred', { status: 'deferred', sent_at: null }, 'deferred'],
    ['failed', { status: 'failed', sent_at: null }, 'failed'],
    ['sent, no bounce seen', {}, 'delivered'],
    ['kept in the local outbox', { transport: 'outbox' }, 'sent'],
    ['bounced', { bounced_at: T(1), bounce_kind: 'hard', bounce_reason: '5.1.1 no such user' }, 'bounced'],
    ['refused while sending (5xx)', { status: 'failed', sent_at: null, bounced_at: T(0) }, 'bounced'],
    ['machine opens only', { machine_open_count: 3 }, 'delivered'],
    ['opened', { opened_at: T(2), last_opened_at: T(5), open_count: 3 }, 'opened'],
    ['clicked without an open recorded', { clicked_at: T(3), click_count: 1 }, 'clicked'],
    ['scanner clicks only', { machine_click_count: 4 }, 'delivered'],
    ['replied', { opened_at: T(2), open_count: 1, replied_at: T(9) }, 'replied'],
    ['replied without a tracked open', { tracked: false, replied_at: T(9) }, 'replied'],
    ['a bounce recorded after a human open', { opened_at: T(2), open_count: 1, bounced_at: T(8) }, 'opened'],
  ])('%s', (_name, patch, state) => {
    expect(emailStatus({ ...base, ...patch }).state).toBe(state);
  });

  it('gives counts and times, human and machine apart, a click counting as an open', () => {
    const s = emailStatus({
      ...base,
      opened_at: new Date(T(4)),
      last_opened_at: new Date(T(6)),
      open_count: 2,
      machine_open_count: 5,
      clicked_at: new Date(T(3)),
      last_clicked_at: new Date(T(7)),
      click_count: 2,
      machine_click_count: 1,
    });
    expect(s.opens).toEqual({ human: 2, machine: 5, first: T(3), last: T(7) });
    expect(s.clicks).toEqual({ human: 2, machine: 1, first: T(3), last: T(7) });
    expect(stepReached(s, 'delivered')).toBe(true);
    expect(stepReached(s, 'replied')).toBe(false);
    const bounced = emailStatus({
      ...base,
      bounced_at: T(1),
      bounce_kind: 'soft',
      bounce_reason: 'mailbox full',
    });
    expect(bounced.bounce).toEqual({ at: T(1), kind: 'soft', reason: 'mailbox full' });
    expect(stepReached(bounced, 'sent')).toBe(true);
    expect(stepReached(bounced, 'delivered')).toBe(false);
  });

  // The summary columns' contract (what the writers keep): first times are the earliest seen, last
  // times the latest, counts grow, a bounce keeps its first time. Folding the same events in any
  // order, with duplicates and late arrivals, must never move the state back and must end the same.
  type Ev = { kind: 'open' | 'machine_open' | 'click' | 'machine_click' | 'bounce' | 'reply'; at: string };
  const min = (a: string | Date | null, b: string) => (a === null || b < String(a) ? b : (a as string));
  const max = (a: string | Date | null, b: string) => (a === null || b > String(a) ? b : (a as string));
  function fold(m: MessageSummary, e: Ev): MessageSummary {
    switch (e.kind) {
      case 'open':
        return {
          ...m,
          opened_at: min(m.opened_at, e.at),
          last_opened_at: max(m.last_opened_at, e.at),
          open_count: m.open_count + 1,
        };
      case 'machine_open':
        return { ...m, machine_open_count: m.machine_open_count + 1 };
      case 'click':
        return {
          ...m,
          clicked_at: min(m.clicked_at, e.at),
          last_clicked_at: max(m.last_clicked_at, e.at),
          click_count: m.click_count + 1,
        };
      case 'machine_click':
        return { ...m, machine_click_count: m.machine_click_count + 1 };
      case 'bounce':
        return { ...m, bounced_at: min(m.bounced_at, e.at), bounce_kind: 'soft' };
      case 'reply':
        return { ...m, replied_at: min(m.replied_at, e.at) };
    }
  }

  it('never moves back, whatever the order of events, duplicates included', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const kinds: Ev['kind'][] = ['open', 'machine_open', 'click', 'machine_click', 'bounce', 'reply'];
    for (let run = 0; run < 500; run++) {
      const events: Ev[] = [];
      for (let i = Math.floor(rand() * 8); i >= 0; i--)
        events.push({ kind: kinds[Math.floor(rand() * kinds.length)], at: T(Math.floor(rand() * 48)) });
      // Duplicates, then two different arrival orders.
      const withDups = [...events, ...events.filter(() => rand() < 0.3)];
      const orders = [withDups, [...withDups].sort(() => rand() - 0.5)];
      const finals = orders.map((order) => {
        let m = base;
        let rank = progressRank(emailStatus(m).state);
        for (const e of order) {
          m = fold(m, e);
          const next = progressRank(emailStatus(m).state);
          expect(next, JSON.stringify(order)).toBeGreaterThanOrEqual(rank);
          rank = next;
        }
        return emailStatus(m);
      });
      expect(finals[1]).toEqual(finals[0]);
    }
    expect(PROGRESS).toEqual(['sent', 'delivered', 'bounced', 'opened', 'clicked', 'replied']);
  });

  it('the record’s latest status follows its newest email either way', () => {
    const sent = emailStatus({ ...base, sent_at: T(10) });
    expect(latestState(sent, null)).toEqual({ state: 'delivered', at: T(10) });
    expect(latestState(sent, T(5))).toEqual({ state: 'delivered', at: T(10) });
    expect(latestState(sent, T(12))).toEqual({ state: 'received', at: T(12) });
    // Their reply to our newest email is that email's status, not a separate "received".
    const replied = emailStatus({ ...base, sent_at: T(10), replied_at: T(12) });
    expect(latestState(replied, T(12))).toEqual({ state: 'replied', at: T(12) });
    expect(latestState(replied, T(14))).toEqual({ state: 'received', at: T(14) });
    expect(latestState(null, T(1))).toEqual({ state: 'received', at: T(1) });
    expect(latestState(null, null)).toBeNull();
  });
});

// ---- Through the API and the live feed --------------------------------------------------------

let t: Awaited<ReturnType<typeof startTestApp>>;
let owner: Client;
let orgId: string;
let ownerId: string;
let moduleId: string;
let leadId: string;

async function lead(name: string, ownerUser?: string) {
  const r = await owner.req('POST', '/api/modules/leads/records', {
    data: { last_name: name, email: `${name.toLowerCase()}@client.example` },
  });
  expect(r.status).toBe(201);
  if (ownerUser)
    await t.deps.db.updateTable('records').set({ owner_id: ownerUser }).where('id', '=', r.body.id).execute();
  return r.body.id as string;
}

async function message(recordId: string, f: Partial<Record<string, unknown>>, org = orgId, mod = moduleId) {
  const r = await t.deps.db
    .insertInto('messages')
    .values({
      org_id: org,
      kind: 'individual',
      module_id: mod,
      record_id: recordId,
      from_address: 'me@ourco.example',
      to_address: 'lena@client.example',
      subject: (f.subject as string) ?? 'Our offer',
      message_id_header: `<${randomBytes(8).toString('hex')}@ourco.example>`,
      transport: 'relay',
      status: 'sent',
      expires_at: new Date(Date.now() + 3_600_000),
      tracked: true,
      ...f,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return r.id;
}

const event = (
  kind: 'opened' | 'clicked' | 'bounced' | 'replied' | 'received',
  recordId: string,
  o: { messageId?: string | null; human?: boolean; org?: string; data?: Record<string, unknown> } = {},
) => ({
  orgId: o.org ?? orgId,
  messageId: o.messageId ?? null,
  recordId,
  massEmailId: null,
  kind,
  human: o.human ?? true,
  at: new Date(),
  data: o.data,
});

beforeAll(async () => {
  t = await startTestApp();
  const org = await t.createOrg();
  orgId = org.orgId;
  ownerId = org.adminId;
  owner = await login(t.app, org.adminEmail, org.adminPassword);
  moduleId = (
    await t.deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow()
  ).id;
  leadId = await lead('Lena');
});
afterAll(() => t.stop());

describe('the record’s Emails list', () => {
  it('carries each email’s status and the record’s latest status', async () => {
    const url = `/api/modules/leads/records/${leadId}/emails`;
    expect((await owner.req('GET', url)).body).toEqual({ emails: [], latest: null });
    const start = Date.now() - 10 * 3_600_000;
    const hour = (h: number) => new Date(start + h * 3_600_000);
    const first = await message(leadId, {
      sent_at: hour(0),
      opened_at: hour(1),
      last_opened_at: hour(3),
      open_count: 2,
      machine_open_count: 1,
      bounced_at: hour(4), // late: it was opened, so it stays opened
      bounce_kind: 'soft',
      bounce_reason: 'mailbox full',
      created_at: hour(0),
    });
    let r = await owner.req('GET', url);
    expect(r.body.emails[0]).toMatchObject({
      id: first,
      insight: {
        state: 'opened',
        opens: { human: 2, machine: 1, first: hour(1).toISOString(), last: hour(3).toISOString() },
        bounce: { kind: 'soft', reason: 'mailbox full' },
      },
    });
    expect(r.body.latest).toEqual({ state: 'opened', at: hour(0).toISOString(), messageId: first });
    // A newer email from the lead replaces the older sent one …
    await recordEvents(t.deps.db, [{ ...event('received', leadId), at: hour(5) }]);
    r = await owner.req('GET', url);
    expect(r.body.latest).toEqual({ state: 'received', at: hour(5).toISOString(), messageId: null });
    // … and a newer email of ours replaces it in turn.
    const second = await message(leadId, {
      sent_at: hour(6),
      created_at: hour(6),
      clicked_at: hour(7),
      click_count: 1,
    });
    r = await owner.req('GET', url);
    expect(r.body.emails.map((e: { id: string }) => e.id)).toEqual([second, first]);
    expect(r.body.latest).toEqual({ state: 'clicked', at: hour(6).toISOString(), messageId: second });
  });
});

// ---- The live feed ------------------------------------------------------------------------------

interface Sse {
  event: string;
  id: string;
  data: Record<string, unknown>;
}

/** An SSE client over fetch: the events as they come, each awaited with a deadline. */
async function openFeed(headers: Record<string, string>) {
  const ctrl = new AbortController();
  const res = await fetch(`${t.url}/api/feed`, { headers, signal: ctrl.signal });
  const queue: Sse[] = [];
  const waiting: { fn: ((e: Sse) => void) | null } = { fn: null };
  let opened!: () => void;
  const ready = new Promise<void>((r) => {
    opened = r;
  });
  void (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    try {
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i = buf.indexOf('\n\n');
        while (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith('retry:')) opened();
          const f = Object.fromEntries(
            block
              .split('\n')
              .filter((l) => /^(id|event|data):/.test(l))
              .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
          );
          if (f.event) {
            const e = { event: f.event, id: f.id, data: JSON.parse(f.data) };
            const w = waiting.fn;
            waiting.fn = null;
            if (w) w(e);
            else queue.push(e);
          }
          i = buf.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    status: res.status,
    ready,
    next(ms = 10_000): Promise<Sse> {
      const q = queue.shift();
      if (q) return Promise.resolve(q);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no event within the deadline')), ms);
        waiting.fn = (e) => {
          clearTimeout(timer);
          resolve(e);
        };
      });
    },
    close: () => ctrl.abort(),
  };
}

describe('GET /api/feed', () => {
  it('needs a signed-in user', async () => {
    const res = await fetch(`${t.url}/api/feed`);
    expect(res.status).toBe(401);
  });

  it('tells the owner of a record, live, about people’s events only, and resumes from Last-Event-ID', async () => {
    const feed = await openFeed({ cookie: owner.cookie });
    expect(feed.status).toBe(200);
    await feed.ready;
    const msg = await message(leadId, { sent_at: new Date(), subject: 'Pricing' });
    // Not for this user: a machine open, a record owned by someone else, another org's record.
    const other = (
      await t.deps.db
        .insertInto('users')
        .values({
          org_id: orgId,
          profile_id: (
            await t.deps.db
              .selectFrom('users')
              .select('profile_id')
              .where('id', '=', ownerId)
              .executeTakeFirstOrThrow()
          ).profile_id,
          email: `other-${randomBytes(4).toString('hex')}@test.example`,
          name: 'Other',
          status: 'active',
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
    const theirs = await lead('Theirs', other);
    const org2 = await t.createOrg();
    const client2 = await login(t.app, org2.adminEmail, org2.adminPassword);
    const foreign = (
      await client2.req('POST', '/api/modules/leads/records', { data: { last_name: 'Foreign' } })
    ).body.id;
    await recordEvents(t.deps.db, [
      event('opened', leadId, { messageId: msg, human: false }),
      event('clicked', leadId, { messageId: msg, human: false }),
      event('opened', theirs),
      event('opened', foreign, { org: org2.orgId }),
    ]);
    await recordEvents(t.deps.db, [event('opened', leadId, { messageId: msg })]);
    const opened = await feed.next();
    expect(opened.event).toBe('opened');
    expect(opened.data).toMatchObject({
      kind: 'opened',
      recordId: leadId,
      recordName: 'Lena',
      module: 'leads',
      messageId: msg,
      subject: 'Pricing',
    });
    await recordEvents(t.deps.db, [
      event('bounced', leadId, { messageId: msg, data: { kind: 'hard', status: '5.1.1' } }),
    ]);
    const bounced = await feed.next();
    expect(bounced.data).toMatchObject({ kind: 'bounced', bounceKind: 'hard' });
    expect(BigInt(bounced.id)).toBeGreaterThan(BigInt(opened.id));
    feed.close();

    // Reconnecting after the open: the bounce comes again, then what happened meanwhile.
    await recordEvents(t.deps.db, [event('received', leadId)]);
    const again = await openFeed({ cookie: owner.cookie, 'last-event-id': opened.id });
    expect((await again.next()).event).toBe('bounced');
    expect((await again.next()).data).toMatchObject({ kind: 'received', messageId: null, subject: null });
    again.close();
  });

  it('delivers an event whose transaction commits after a newer one', async () => {
    const feed = await openFeed({ cookie: owner.cookie });
    await feed.ready;
    const slow = new pg.Client({ connectionString: inject('dbUrl') });
    await slow.connect();
    try {
      await slow.query('BEGIN');
      await slow.query(
        `INSERT INTO email_events (org_id, record_id, kind, human, at) VALUES ($1, $2, 'replied', true, now())`,
        [orgId, leadId],
      );
      await slow.query(`SELECT pg_notify('parley_email_events', $1)`, [orgId]);
      await recordEvents(t.deps.db, [event('clicked', leadId)]);
      expect((await feed.next()).event).toBe('clicked');
      await slow.query('COMMIT');
      const late = await feed.next();
      expect(late.event).toBe('replied');
    } finally {
      await slow.end();
      feed.close();
    }
  });

  it('skips records in modules the user may not read, however many, without holding the stream up', async () => {
    const profile = await t.deps.db
      .insertInto('profiles')
      .values({
        org_id: orgId,
        name: `Contacts only ${randomBytes(3).toString('hex')}`,
        permissions: JSON.stringify({ modules: { contacts: { read: true } } }),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const user = await t.deps.db
      .insertInto('users')
      .values({
        org_id: orgId,
        profile_id: profile.id,
        email: `contacts-${randomBytes(4).toString('hex')}@test.example`,
        name: 'Contacts Only',
        status: 'active',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const actor = await actorForUser(t.deps, { userId: user.id });
    if (!actor) throw new Error('no actor');
    const { key } = await createApiKey(t.deps, actor, 'feed');
    const hidden = await lead('Hidden', user.id);
    const contact = (
      await owner.req('POST', '/api/modules/contacts/records', { data: { last_name: 'Visible' } })
    ).body.id as string;
    await t.deps.db.updateTable('records').set({ owner_id: user.id }).where('id', '=', contact).execute();

    const feed = await openFeed({ authorization: `Bearer ${key}` });
    await feed.ready;
    // More than one read's worth of events the user may not see, then one they may.
    await recordEvents(
      t.deps.db,
      Array.from({ length: 450 }, () => event('opened', hidden)),
    );
    await recordEvents(t.deps.db, [event('received', contact)]);
    const e = await feed.next();
    expect(e.data).toMatchObject({
      kind: 'received',
      recordId: contact,
      module: 'contacts',
      recordName: 'Visible',
    });
    feed.close();
  });
});
