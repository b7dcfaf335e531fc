// Email status in criteria (F4.8) on a real database: hand-checked cases in the user's zone, the SQL
// and the in-memory evaluator agreeing over generated email histories, and the condition working
// where criteria are used (a view, a mass email audience, a follow-up's records to ignore).
import { randomBytes } from 'node:crypto';
import { type SqlBool, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateCriteria } from '../src/crm/criteria/index.ts';
import {
  type Actor,
  type CriteriaContext,
  compileCriteria,
  createRecord,
  createView,
  queryRecords,
  scope,
  validateCriteria,
} from '../src/crm/index.ts';
import { countAudience, resolveAudience } from '../src/sending/audience.ts';
import { createMassEmail, getMassEmail } from '../src/sending/mass.service.ts';
import { launchDue } from '../src/sending/mass-launch.ts';
import { recordEvents } from '../src/tracking/events.ts';
import { CRITERIA_STATUSES, loadEmailFacts, STATUS_WINDOWS } from '../src/tracking/status-criteria.ts';
import { createTestOrg, insertTemplate, testDeps } from './support/app.ts';

// Thursday 12 March 2026, 01:30 in Kolkata (UTC+05:30); still Wednesday 11 March in UTC.
const NOW = new Date('2026-03-11T20:00:00.000Z');
let clock = NOW; // moved only by the follow-up test, at the end
const deps = testDeps({ now: () => clock });
const H = 3_600_000;
const ago = (hours: number) => new Date(NOW.getTime() - hours * H);

let actor: Actor;
let moduleId: string;
let ctx: CriteriaContext;

interface Facts {
  sent?: Date | null;
  status?: 'sent' | 'failed' | 'queued';
  transport?: 'relay' | 'outbox';
  tracked?: boolean;
  bounced?: Date | null;
  opened?: Date | null;
  clicked?: Date | null;
  replied?: Date | null;
}

async function contact(name: string, data: Record<string, unknown> = {}) {
  const r = await createRecord(deps, actor, 'contacts', {
    data: { last_name: name, email: `${name.toLowerCase()}@x.example`, ...data },
  });
  return r.id;
}

async function message(recordId: string, f: Facts) {
  await deps.db
    .insertInto('messages')
    .values({
      org_id: actor.orgId,
      kind: 'individual',
      module_id: moduleId,
      record_id: recordId,
      from_address: 'me@x.example',
      to_address: 'them@x.example',
      subject: 'Hello',
      message_id_header: `<${randomBytes(8).toString('hex')}@x.example>`,
      transport: f.transport ?? 'relay',
      status: f.status ?? (f.sent ? 'sent' : 'queued'),
      expires_at: new Date(NOW.getTime() + 96 * H),
      sent_at: f.sent ?? null,
      tracked: f.tracked ?? true,
      bounced_at: f.bounced ?? null,
      bounce_kind: f.bounced ? 'hard' : null,
      opened_at: f.opened ?? null,
      last_opened_at: f.opened ?? null,
      open_count: f.opened ? 1 : 0,
      clicked_at: f.clicked ?? null,
      last_clicked_at: f.clicked ?? null,
      click_count: f.clicked ? 1 : 0,
      replied_at: f.replied ?? null,
    })
    .execute();
}

const received = (recordId: string, at: Date) =>
  recordEvents(deps.db, [
    { orgId: actor.orgId, messageId: null, recordId, massEmailId: null, kind: 'received', human: true, at },
  ]);

/** The records the criteria select, by SQL. */
async function bySql(criteria: unknown, among?: string[]): Promise<Set<string>> {
  const where = compileCriteria(validateCriteria(criteria, ctx), ctx);
  const rows = await deps.db
    .selectFrom('records as r')
    .select('r.id')
    .where(sql<SqlBool>`r.org_id = ${actor.orgId} AND r.module_id = ${moduleId}`)
    .where(where)
    .$if(among !== undefined, (q) => q.where('r.id', 'in', among as string[]))
    .execute();
  return new Set(rows.map((r) => r.id));
}

const named: Record<string, string> = {};

beforeAll(async () => {
  const org = await createTestOrg(deps);
  actor = {
    orgId: org.orgId,
    userId: org.adminId,
    isAdmin: true,
    permissions: {},
    timeZone: 'Asia/Kolkata',
    locale: 'en-US',
  };
  const s = await scope(deps, actor, 'contacts');
  moduleId = s.mod.id;
  ctx = s.ctx;
  // Hand-made histories, each named after what it shows.
  named.openedLate = await contact('OpenedLate'); // opened 23:00 Wednesday Kolkata: yesterday there
  await message(named.openedLate, { sent: ago(30), opened: new Date('2026-03-11T17:30:00.000Z') });
  named.openedToday = await contact('OpenedToday'); // 00:30 Thursday Kolkata
  await message(named.openedToday, { sent: ago(30), opened: new Date('2026-03-11T19:00:00.000Z') });
  named.clickedOnly = await contact('ClickedOnly'); // a click counts as an open
  await message(named.clickedOnly, { sent: ago(5), clicked: ago(1) });
  named.unopened = await contact('Unopened');
  await message(named.unopened, { sent: ago(40) });
  named.untracked = await contact('Untracked'); // never "not opened": opens cannot be seen
  await message(named.untracked, { sent: ago(40), tracked: false });
  named.bounced = await contact('Bounced');
  await message(named.bounced, { sent: ago(50), bounced: ago(49) });
  named.refused = await contact('Refused'); // a 5xx while sending: bounced, never sent
  await message(named.refused, { status: 'failed', bounced: ago(1) });
  named.replied = await contact('Replied');
  await message(named.replied, { sent: ago(100), opened: ago(99), replied: ago(3) });
  named.outbox = await contact('Outbox'); // kept locally: sent, never delivered
  await message(named.outbox, { sent: ago(3), transport: 'outbox' });
  named.wroteIn = await contact('WroteIn');
  await received(named.wroteIn, ago(1));
  named.queued = await contact('Queued');
  await message(named.queued, {});
  named.oldOpen = await contact('OldOpen', { first_name: 'Amount' });
  await message(named.oldOpen, { sent: ago(24 * 35), opened: ago(24 * 34) });
});
afterAll(() => deps.close());

const es = (status: string, when?: string, days?: number) => ({
  kind: 'email_status',
  status,
  ...(when ? { when } : {}),
  ...(days ? { days } : {}),
});
const names = (ids: Set<string>) =>
  Object.entries(named)
    .filter(([, id]) => ids.has(id))
    .map(([n]) => n)
    .sort();
const handMade = () => Object.values(named);

describe('email status criteria, by hand', () => {
  it('statuses at any time', async () => {
    const q = async (status: string) => names(await bySql({ conditions: [es(status)] }, handMade()));
    expect(await q('sent')).toEqual(
      [
        'bounced',
        'clickedOnly',
        'oldOpen',
        'openedLate',
        'openedToday',
        'outbox',
        'replied',
        'unopened',
        'untracked',
      ].sort(),
    );
    expect(await q('delivered')).toEqual(
      ['clickedOnly', 'oldOpen', 'openedLate', 'openedToday', 'replied', 'unopened', 'untracked'].sort(),
    );
    expect(await q('bounced')).toEqual(['bounced', 'refused']);
    expect(await q('opened')).toEqual(['clickedOnly', 'oldOpen', 'openedLate', 'openedToday', 'replied']);
    expect(await q('clicked')).toEqual(['clickedOnly']);
    expect(await q('not_opened')).toEqual(['outbox', 'unopened']);
    expect(await q('not_clicked')).toEqual(
      ['oldOpen', 'openedLate', 'openedToday', 'outbox', 'replied', 'unopened'].sort(),
    );
    expect(await q('replied')).toEqual(['replied']);
    expect(await q('opened_not_replied')).toEqual(['clickedOnly', 'oldOpen', 'openedLate', 'openedToday']);
    expect(await q('received')).toEqual(['wroteIn']);
  });

  it('time windows are the user’s local days', async () => {
    const q = async (c: object) => names(await bySql({ conditions: [c] }, handMade()));
    expect(await q(es('opened', 'today'))).toEqual(['clickedOnly', 'openedToday']);
    expect(await q(es('opened', 'yesterday'))).toEqual(['openedLate']);
    expect(await q(es('opened', 'in_last_n_days', 2))).toEqual(['clickedOnly', 'openedLate', 'openedToday']);
    expect(await q(es('opened', 'older_than_n_days', 30))).toEqual(['oldOpen']);
    expect(await q(es('bounced', 'today'))).toEqual(['refused']);
    expect(await q(es('bounced', 'in_last_n_days', 3))).toEqual(['bounced', 'refused']);
    expect(await q(es('not_opened', 'in_last_n_days', 2))).toEqual(['outbox', 'unopened']);
    expect(await q(es('received', 'this_week'))).toEqual(['wroteIn']);
    expect(await q(es('replied', 'last_week'))).toEqual([]);
    expect(await q(es('sent', 'last_month'))).toEqual(['oldOpen']);
  });

  it('combines with field conditions through the pattern', async () => {
    const c = {
      conditions: [
        es('opened', 'in_last_n_days', 2),
        { field: 'last_name', op: 'starts_with', value: 'opened' },
        es('bounced'),
      ],
      pattern: '(1 and 2) or 3',
    };
    expect(names(await bySql(c, handMade()))).toEqual(['bounced', 'openedLate', 'openedToday', 'refused']);
  });

  it('refuses bad conditions with clear messages', () => {
    const err = (c: object) => {
      try {
        validateCriteria({ conditions: [{ field: 'last_name', op: 'is_not_empty' }, c] }, ctx);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(err(es('seen'))).toContain('condition 2: email status needs "status", one of: sent, delivered');
    expect(err(es('opened', 'tomorrow'))).toContain('"when" must be one of: today');
    expect(err(es('opened', 'in_last_n_days'))).toContain(
      '"in_last_n_days" needs "days", a whole number from 1',
    );
    expect(err({ ...es('opened', 'today'), days: 3 })).toContain('"today" takes no "days"');
    expect(err({ ...es('opened'), since: '2026-01-01' })).toContain('not "since"');
    expect(err(es('opened', 'in_last_n_days', 2))).toBe('accepted');
  });
});

// ---- SQL and the in-memory evaluator agree over generated histories --------------------------------

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('email status criteria, SQL against memory', () => {
  it('agree for every status and window', async () => {
    const rand = rng(20260311);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
    // Times near the edges of local days, weeks, months and years (Kolkata), and exactly on them.
    const edges = [
      '2026-03-11T18:30:00.000Z', // start of today
      '2026-03-11T18:29:59.999Z',
      '2026-03-10T18:30:00.000Z', // start of yesterday
      '2026-03-08T18:30:00.000Z', // start of this week (Monday 9 March)
      '2026-03-08T18:29:59.999Z',
      '2026-02-28T18:30:00.000Z', // start of this month
      '2025-12-31T18:30:00.000Z', // start of this year
      '2025-12-31T18:29:59.999Z',
    ].map((s) => new Date(s));
    const time = () => (rand() < 0.35 ? pick(edges) : ago(rand() * 24 * 500));
    const maybe = (p: number) => (rand() < p ? time() : null);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const id = await contact(`Gen${i}`);
      ids.push(id);
      for (let k = Math.floor(rand() * 4); k > 0; k--) {
        const sent = rand() < 0.85 ? time() : null;
        await message(id, {
          sent,
          status: sent ? 'sent' : pick(['failed', 'queued'] as const),
          transport: rand() < 0.15 ? 'outbox' : 'relay',
          tracked: rand() < 0.8,
          bounced: maybe(0.2),
          opened: maybe(0.4),
          clicked: maybe(0.25),
          replied: maybe(0.15),
        });
      }
      for (let k = Math.floor(rand() * 3); k > 0; k--) if (rand() < 0.5) await received(id, time());
    }
    const rows = await deps.db
      .selectFrom('records')
      .select(['id', 'owner_id', 'created_by', 'created_at', 'updated_at', 'data', 'module_id'])
      .where('id', 'in', ids)
      .execute();
    const records = await loadEmailFacts(deps.db, actor.orgId, rows);
    const windows: [string | undefined, number | undefined][] = [
      [undefined, undefined],
      ...STATUS_WINDOWS.filter((w) => !w.includes('_n_')).map((w) => [w, undefined] as [string, undefined]),
      ['in_last_n_days', 1],
      ['in_last_n_days', 7],
      ['older_than_n_days', 3],
    ];
    let nonEmpty = 0;
    for (const status of CRITERIA_STATUSES)
      for (const [when, days] of windows) {
        const criteria = { conditions: [es(status, when, days)] };
        const ast = validateCriteria(criteria, ctx);
        const memory = new Set(records.filter((r) => evaluateCriteria(ast, ctx, r)).map((r) => r.id));
        const db = await bySql(criteria, ids);
        expect([...db].sort(), `${status} ${when ?? 'any time'} ${days ?? ''}`).toEqual([...memory].sort());
        if (db.size > 0 && db.size < ids.length) nonEmpty++;
      }
    // The generated histories must tell the cases apart, or the agreement proves little.
    expect(nonEmpty).toBeGreaterThan(60);
  });

  it('the in-memory evaluator refuses to guess without the emails', () => {
    const ast = validateCriteria({ conditions: [es('opened')] }, ctx);
    const bare = {
      id: named.openedToday,
      owner_id: actor.userId,
      created_by: null,
      created_at: NOW,
      updated_at: NOW,
      data: {},
    };
    expect(() => evaluateCriteria(ast, ctx, bare)).toThrow(/loadEmailFacts/);
  });
});

describe('email status wherever criteria are used', () => {
  it('a view of contacts opened in the last 2 days and not replied', async () => {
    const view = await createView(deps, actor, 'contacts', {
      name: 'Warm',
      criteria: {
        conditions: [
          es('opened_not_replied', 'in_last_n_days', 2),
          { field: 'last_name', op: 'starts_with', value: 'opened' },
        ],
      },
    });
    const listed = await queryRecords(deps, actor, 'contacts', { viewId: view.id, limit: 50 });
    expect(listed.records.map((r) => r.id).sort()).toEqual([named.openedLate, named.openedToday].sort());
  });

  it('a mass email audience of those who bounced or did not open', async () => {
    const a = await resolveAudience(deps, actor, 'contacts', {
      kind: 'criteria',
      criteria: {
        conditions: [
          es('not_opened'),
          es('bounced', 'in_last_n_days', 3),
          { field: 'last_name', op: 'is', value: ['Unopened', 'Bounced', 'Refused', 'Replied'] },
        ],
        pattern: '(1 or 2) and 3',
      },
    });
    const counts = await countAudience(deps, a);
    expect(counts.recipients).toBe(3); // Unopened, Bounced and Refused; Replied neither
  });

  it('a follow-up leaves out the records that wrote in (ignore criteria)', async () => {
    const o = await createTestOrg(deps, { edition: 'enterprise' });
    const a: Actor = { ...actor, orgId: o.orgId, userId: o.adminId, timeZone: 'UTC' };
    const ids: string[] = [];
    for (const n of ['Ann', 'Ben', 'Cat', 'Dan'])
      ids.push(
        (
          await createRecord(deps, a, 'contacts', {
            data: { last_name: n, email: `${n.toLowerCase()}@y.example` },
          })
        ).id,
      );
    const templateId = await insertTemplate(deps, o.orgId, 'contacts', {
      subject: 'Hi',
      html: '<p>Hi</p>',
      text: 'Hi',
      createdBy: o.adminId,
    });
    const id = await createMassEmail(deps, a, {
      module: 'contacts',
      name: 'News',
      templateId,
      from: { kind: 'user' },
      audience: { kind: 'ids', ids },
      followups: [
        { templateId, audience: 'received', days: 1, ignoreCriteria: { conditions: [es('received')] } },
      ],
    });
    await launchDue(deps, { orgId: o.orgId });
    await sql`UPDATE messages SET status = 'sent', sent_at = ${clock} WHERE mass_email_id = ${id}`.execute(
      deps.db,
    );
    // Ben writes in before the follow-up goes.
    await recordEvents(deps.db, [
      {
        orgId: o.orgId,
        messageId: null,
        recordId: ids[1],
        massEmailId: null,
        kind: 'received',
        human: true,
        at: clock,
      },
    ]);
    clock = new Date(NOW.getTime() + 2 * 24 * H);
    await launchDue(deps, { orgId: o.orgId });
    const f = (await getMassEmail(deps, a, id)).followups[0];
    clock = new Date(new Date(f.send_at as Date).getTime() + 60_000);
    await launchDue(deps, { orgId: o.orgId });
    const got = await deps.db
      .selectFrom('messages')
      .select('record_id')
      .where('mass_email_id', '=', f.id)
      .execute();
    expect(got.map((m) => m.record_id).sort()).toEqual([ids[0], ids[2], ids[3]].sort());
  });
});
