// Bounces and complaints end to end over real SMTP: the inbound listener on a free port, a real
// PostgreSQL, the VERP return paths the sender uses. Forged tokens, graded soft suppression over
// time, policy alerts, ARF complaints, states that only move forward, the audience effect and the
// mass-email bounce guard.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, createRecord } from '../src/crm/index.ts';
import { buildApp } from '../src/http/app.ts';
import { countAudience, resolveAudience } from '../src/sending/audience.ts';
import { BOUNCE_GUARD_MIN } from '../src/sending/mass-launch.ts';
import { verpReturnPath } from '../src/sending/verp.ts';
import { type BounceListener, startBounceListener } from '../src/tracking/bounces/inbound.ts';
import { recordBounces } from '../src/tracking/bounces/record.ts';
import { reconsiderAddress } from '../src/tracking/bounces/suppression.ts';
import { adminActor, createTestOrg, insertTemplate, type TestOrg, testDeps } from './support/app.ts';
import { arf, dsn, proseBounce, smtpSend } from './support/bounce-mail.ts';

let now = new Date('2026-11-01T10:00:00Z');
const deps = testDeps({ now: () => now });
const secret = deps.config.secret as string;
const DOMAIN = 'bounces.parley.test';
let org: TestOrg;
let admin: Actor;
let listener: BounceListener;

beforeAll(async () => {
  org = await createTestOrg(deps);
  admin = adminActor(org);
  listener = await startBounceListener(deps, { port: 0, host: '127.0.0.1', maxBytes: 64 * 1024 });
});
afterAll(async () => {
  await listener?.close();
  await deps.close();
});

const DAY = 86_400_000;
const tag = () => randomBytes(4).toString('hex');

async function sent(
  to: string,
  o: { orgId?: string; recordId?: string | null; sentAt?: Date; massEmailId?: string } = {},
) {
  const row = await deps.db
    .insertInto('messages')
    .values({
      org_id: o.orgId ?? org.orgId,
      kind: o.massEmailId ? 'mass' : 'individual',
      record_id: o.recordId ?? null,
      mass_email_id: o.massEmailId ?? null,
      from_address: org.adminEmail,
      to_address: to,
      subject: 'Hello',
      text: 'Hello',
      message_id_header: `<${tag()}.${tag()}@${DOMAIN}>`,
      transport: 'relay',
      status: 'sent',
      sent_at: o.sentAt ?? now,
      expires_at: new Date(now.getTime() + DAY),
    })
    .returning(['id', 'message_id_header'])
    .executeTakeFirstOrThrow();
  return { id: row.id, header: row.message_id_header, verp: verpReturnPath(row.id, DOMAIN, secret) };
}

const message = (id: string) =>
  deps.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const suppression = (email: string, orgId = org.orgId) =>
  deps.db
    .selectFrom('suppressions')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('email', '=', email.toLowerCase())
    .executeTakeFirst();
const events = (messageId: string) =>
  deps.db.selectFrom('email_events').selectAll().where('message_id', '=', messageId).orderBy('id').execute();

async function metric(outcome: string): Promise<number> {
  const app = await buildApp(deps);
  try {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const m = new RegExp(`^parley_bounce_inbound_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  } finally {
    await app.close();
  }
}

describe('the inbound bounce listener', () => {
  it('a DSN to a VERP address marks the message hard-bounced, suppresses the address and writes the event', async () => {
    const to = `gone-${tag()}@remote.example`;
    const m = await sent(to);
    const r = await smtpSend(
      listener.port,
      '',
      [m.verp],
      dsn({
        to: m.verp,
        recipient: to,
        status: '5.1.1',
        diagnostic: '550 5.1.1 <x>: Recipient address rejected: User unknown',
        messageId: m.header,
      }),
    );
    expect(r).toMatchObject({ rcpt: [250], data: 250 });
    const row = await message(m.id);
    expect(row.bounce_kind).toBe('hard');
    expect(row.bounced_at?.toISOString()).toBe(now.toISOString());
    expect(row.bounce_reason).toMatch(/User unknown/);
    expect(await suppression(to)).toMatchObject({ reason: 'hard_bounce', message_id: m.id });
    const ev = await events(m.id);
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ kind: 'bounced', org_id: org.orgId });
    expect(ev[0].data).toMatchObject({ kind: 'hard', status: '5.1.1', source: 'dsn' });
  });

  it('refuses a forged or altered VERP address at RCPT, records nothing and counts it', async () => {
    const to = `safe-${tag()}@remote.example`;
    const m = await sent(to);
    const [local, domain] = m.verp.split('@');
    const last = local.at(-1) === 'a' ? 'b' : 'a';
    const forged = `${local.slice(0, -1)}${last}@${domain}`;
    const otherSecret = verpReturnPath(m.id, DOMAIN, 'another-secret-0123456789-0123456789-xyz');
    const before = await metric('forged');
    const r = await smtpSend(
      listener.port,
      '',
      [forged, otherSecret, `postmaster@${DOMAIN}`],
      dsn({ to: forged, recipient: to, status: '5.1.1', diagnostic: 'user unknown', messageId: m.header }),
    );
    expect(r.rcpt).toEqual([550, 550, 550]);
    expect(r.data).toBeUndefined();
    expect(await metric('forged')).toBe(before + 2);
    expect((await message(m.id)).bounce_kind).toBeNull();
    expect(await suppression(to)).toBeUndefined();
  });

  it('a VERP address folded to upper case by an MTA still verifies', async () => {
    const to = `caps-${tag()}@remote.example`;
    const m = await sent(to);
    const r = await smtpSend(
      listener.port,
      '',
      [m.verp.toUpperCase()],
      dsn({ to: m.verp, recipient: to, status: '5.1.2', diagnostic: 'Host not found', messageId: m.header }),
    );
    expect(r.data).toBe(250);
    expect((await message(m.id)).bounce_kind).toBe('hard');
  });

  it('refuses a message over the size limit with 552 and records nothing', async () => {
    const to = `big-${tag()}@remote.example`;
    const m = await sent(to);
    const big =
      `${dsn({ to: m.verp, recipient: to, status: '5.1.1', diagnostic: 'user unknown', messageId: m.header })}${'x'.repeat(100)}\r\n`.repeat(
        200,
      );
    const r = await smtpSend(listener.port, '', [m.verp], big);
    expect(r.data).toBe(552);
    expect((await message(m.id)).bounce_kind).toBeNull();
  });

  it('a prose bounce without a DSN part is matched by the original Message-ID, within the org only', async () => {
    const a = await sent(`first-${tag()}@remote.example`);
    const bTo = `second-${tag()}@remote.example`;
    const b = await sent(bTo);
    // The bounce came to a's return path but names b's recipient and b's Message-ID.
    const r = await smtpSend(
      listener.port,
      '',
      [a.verp],
      proseBounce({ to: a.verp, recipient: bTo, messageId: b.header }),
    );
    expect(r.data).toBe(250);
    expect((await message(b.id)).bounce_kind).toBe('hard');
    expect((await message(a.id)).bounce_kind).toBeNull();

    // Another org's Message-ID is never followed.
    const other = await createTestOrg(deps);
    const cTo = `third-${tag()}@remote.example`;
    const c = await sent(cTo, { orgId: other.orgId });
    const d = await sent(`fourth-${tag()}@remote.example`);
    await smtpSend(
      listener.port,
      '',
      [d.verp],
      proseBounce({ to: d.verp, recipient: cTo, messageId: c.header }),
    );
    expect((await message(c.id)).bounce_kind).toBeNull();
    expect(await suppression(cTo, other.orgId)).toBeUndefined();
  });

  it('an ARF complaint suppresses at once and is recorded once', async () => {
    const to = `angry-${tag()}@remote.example`;
    const m = await sent(to);
    const report = arf({ to: m.verp, recipient: to, messageId: m.header });
    expect((await smtpSend(listener.port, 'fbl@fbl.remote.test', [m.verp], report)).data).toBe(250);
    expect((await message(m.id)).complained_at?.toISOString()).toBe(now.toISOString());
    expect(await suppression(to)).toMatchObject({ reason: 'complaint' });
    expect((await smtpSend(listener.port, 'fbl@fbl.remote.test', [m.verp], report)).data).toBe(250);
    expect((await events(m.id)).map((e) => e.kind)).toEqual(['complained']);
    // The person writing in later does not lift a complaint.
    expect(await reconsiderAddress(deps, org.orgId, to)).toBeNull();
    expect(await suppression(to)).toMatchObject({ reason: 'complaint' });
  });

  it('a feedback loop writing to fbl@ counts a complaint only for a quoted VERP return path that verifies', async () => {
    const to = `fbl-${tag()}@remote.example`;
    const m = await sent(to);
    const fbl = `fbl@${DOMAIN}`;
    // Forged: the quoted return path's tag does not verify; and a bounce to fbl@ is not a complaint.
    const forged = m.verp.replace(
      /-([a-z2-7])([a-z2-7]{15})@/,
      (_x, c: string, rest: string) => `-${c === 'a' ? 'b' : 'a'}${rest}@`,
    );
    expect(
      (
        await smtpSend(
          listener.port,
          'fbl@yahoo.example',
          [fbl],
          arf({ to: fbl, recipient: to, messageId: m.header, returnPath: forged }),
        )
      ).data,
    ).toBe(250);
    await smtpSend(
      listener.port,
      '',
      [fbl],
      dsn({ to: fbl, recipient: to, status: '5.1.1', diagnostic: 'user unknown', messageId: m.header }),
    );
    expect(await message(m.id)).toMatchObject({ complained_at: null, bounce_kind: null });
    expect(await suppression(to)).toBeUndefined();
    // The real one.
    const report = arf({ to: fbl, recipient: to, messageId: m.header, returnPath: m.verp });
    expect((await smtpSend(listener.port, 'fbl@yahoo.example', [fbl], report)).data).toBe(250);
    expect((await message(m.id)).complained_at).not.toBeNull();
    expect(await suppression(to)).toMatchObject({ reason: 'complaint' });
  });

  it('a failure notice naming no recipient is about the one message whose return path it came to', async () => {
    const to = `nobody-${tag()}@remote.example`;
    const m = await sent(to);
    const notice = [
      'From: post_master@gateway.remote.example',
      `To: ${m.verp}`,
      'Subject: Re: Hello',
      '',
      'Error: Invalid user address',
      'Error message below:',
      '550 5.1.1 Requested action not taken: no such user here',
      '',
    ].join('\r\n');
    expect((await smtpSend(listener.port, '', [m.verp], notice)).data).toBe(250);
    expect(await message(m.id)).toMatchObject({
      bounce_kind: 'hard',
      bounce_reason: expect.stringMatching(/no such user/),
    });
    expect(await suppression(to)).toMatchObject({ reason: 'hard_bounce', message_id: m.id });
  });

  it('an out-of-office reply to the return path is not a bounce', async () => {
    const to = `away-${tag()}@remote.example`;
    const m = await sent(to);
    const reply = [
      `From: ${to}`,
      `To: ${m.verp}`,
      'Subject: Out of office',
      'Auto-Submitted: auto-replied',
      '',
      'I am away until Monday.',
      '',
    ].join('\r\n');
    const before = await metric('not_bounce');
    expect((await smtpSend(listener.port, '', [m.verp], reply)).data).toBe(250);
    expect(await metric('not_bounce')).toBe(before + 1);
    expect((await message(m.id)).bounced_at).toBeNull();
  });
});

describe('graded suppression and forward-only states', () => {
  it('soft bounces suppress only at 3 of the last 5 sends spanning more than a week', async () => {
    const to = `full-${tag()}@remote.example`;
    const rec = await createRecord(deps, admin, 'contacts', { data: { last_name: 'Full', email: to } });
    const start = new Date('2026-10-01T09:00:00Z');
    const at = (d: number) => new Date(start.getTime() + d * DAY);
    const soft = async (d: number) => {
      const m = await sent(to, { recordId: rec.id, sentAt: at(d) });
      now = at(d + 0.1);
      const r = await smtpSend(
        listener.port,
        '',
        [m.verp],
        dsn({
          to: m.verp,
          recipient: to,
          status: '5.2.2',
          diagnostic: '552 5.2.2 Mailbox full',
          messageId: m.header,
        }),
      );
      expect(r.data).toBe(250);
      expect((await message(m.id)).bounce_kind).toBe('soft');
      return m;
    };
    // Three soft bounces within two days: a full mailbox for a while, not a dead address.
    await soft(0);
    await soft(1);
    await soft(2);
    expect(await suppression(to)).toBeUndefined();
    // Two good sends, then a soft bounce on day 9: the last five sends are days 9, 5, 4, 2, 1,
    // soft on 9, 2 and 1, spanning 8 days → suppressed.
    await sent(to, { recordId: rec.id, sentAt: at(4) });
    await sent(to, { recordId: rec.id, sentAt: at(5) });
    expect(await suppression(to)).toBeUndefined();
    await soft(9);
    expect(await suppression(to)).toMatchObject({ reason: 'soft_bounce' });

    // It is left out of a mass email's audience.
    const a = await resolveAudience(deps, admin, 'contacts', { kind: 'ids', ids: [rec.id] });
    expect(await countAudience(deps, a)).toMatchObject({ recipients: 0, excluded: { suppressed: 1 } });

    // The address writes in: lifted, and the grading starts over (one more soft bounce is not enough).
    now = at(12);
    expect(await reconsiderAddress(deps, org.orgId, to.toUpperCase())).toBe('soft_bounce');
    expect(await suppression(to)).toBeUndefined();
    expect((await countAudience(deps, a)).recipients).toBe(1);
    await soft(13);
    expect(await suppression(to)).toBeUndefined();
    const history = await deps.db
      .selectFrom('suppression_history')
      .select(['action', 'reason'])
      .where('org_id', '=', org.orgId)
      .where('email', '=', to)
      .orderBy('id')
      .execute();
    expect(history).toEqual([
      { action: 'added', reason: 'soft_bounce' },
      { action: 'removed', reason: 'soft_bounce' },
    ]);
  });

  it('soft bounces spread over weeks but diluted by deliveries do not suppress', async () => {
    const to = `spread-${tag()}@remote.example`;
    const rec = await createRecord(deps, admin, 'contacts', { data: { last_name: 'Spread', email: to } });
    const start = new Date('2026-09-01T09:00:00Z');
    for (let d = 0; d < 30; d += 2) {
      const m = await sent(to, { recordId: rec.id, sentAt: new Date(start.getTime() + d * DAY) });
      // Every third send bounces soft: never 3 in any 5 consecutive sends.
      if (d % 6 === 0)
        await recordBounces(deps, [
          {
            messageId: m.id,
            kind: 'soft',
            status: '4.2.2',
            reason: 'mailbox full',
            at: new Date(start.getTime() + (d + 0.5) * DAY),
            source: 'dsn',
          },
        ]);
    }
    expect(await suppression(to)).toBeUndefined();
  });

  it('a policy bounce (5.7.x) does not suppress; the admins get one alert and one email per problem', async () => {
    const domain = `strict-${tag()}.example`;
    const outboxBefore = await deps.db
      .selectFrom('messages')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('org_id', '=', org.orgId)
      .where('kind', '=', 'system')
      .executeTakeFirstOrThrow();
    for (const who of ['a', 'b']) {
      const to = `${who}@${domain}`;
      const m = await sent(to);
      await smtpSend(
        listener.port,
        '',
        [m.verp],
        dsn({
          to: m.verp,
          recipient: to,
          status: '5.7.1',
          diagnostic: '550 5.7.1 Message rejected due to sender reputation (listed on a block list)',
          messageId: m.header,
        }),
      );
      expect((await message(m.id)).bounce_kind).toBe('policy');
      expect(await suppression(to)).toBeUndefined();
    }
    const alerts = await deps.db
      .selectFrom('admin_alerts')
      .selectAll()
      .where('org_id', '=', org.orgId)
      .where('key', 'like', `${domain}%`)
      .execute();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'bounce_policy', count: 2, dismissed_at: null });
    expect(alerts[0].title).toContain(domain);
    const mails = await deps.db
      .selectFrom('messages')
      .select(['to_address', 'subject', 'text'])
      .where('org_id', '=', org.orgId)
      .where('kind', '=', 'system')
      .execute();
    expect(mails.length).toBe(outboxBefore.n + 1);
    const mail = mails.find((x) => x.subject.includes(domain));
    expect(mail?.to_address).toBe(org.adminEmail);
    expect(mail?.text).toMatch(/not suppressed/);
  });

  it('duplicate and late events never move a state back', async () => {
    const to = `late-${tag()}@remote.example`;
    const m = await sent(to);
    const base = { messageId: m.id, reason: 'x', source: 'dsn' as const };
    const hardAt = new Date(now.getTime() + 1000);
    const first = await recordBounces(deps, [
      { ...base, kind: 'hard', status: '5.1.1', reason: 'user unknown', at: hardAt },
    ]);
    expect(first).toMatchObject({ recorded: 1, suppressed: [to] });
    const again = await recordBounces(deps, [
      { ...base, kind: 'hard', status: '5.1.1', at: new Date(hardAt.getTime() + 5000) },
      { ...base, kind: 'soft', status: '4.2.2', at: new Date(hardAt.getTime() + 9000) },
      { ...base, kind: 'policy', status: '5.7.1', at: new Date(hardAt.getTime() + 9000) },
    ]);
    expect(again).toMatchObject({ recorded: 0, duplicates: 3, suppressed: [] });
    const row = await message(m.id);
    expect(row).toMatchObject({ bounce_kind: 'hard', bounce_reason: 'user unknown' });
    expect(row.bounced_at?.toISOString()).toBe(hardAt.toISOString());
    expect((await events(m.id)).map((e) => e.kind)).toEqual(['bounced']);

    // A soft bounce first, then the hard one: moves forward to hard.
    const to2 = `later-${tag()}@remote.example`;
    const m2 = await sent(to2);
    await recordBounces(deps, [{ ...base, messageId: m2.id, kind: 'soft', status: '4.4.1', at: hardAt }]);
    await recordBounces(deps, [{ ...base, messageId: m2.id, kind: 'hard', status: '5.1.1', at: hardAt }]);
    expect((await message(m2.id)).bounce_kind).toBe('hard');
    expect(await suppression(to2)).toMatchObject({ reason: 'hard_bounce' });
    // One batch with two messages to one address (and its complaint): one suppression, the strongest.
    const to3 = `twice-${tag()}@remote.example`;
    const [x, y] = [await sent(to3), await sent(to3.toUpperCase())];
    const batch = await recordBounces(deps, [
      { ...base, messageId: x.id, kind: 'hard', status: '5.1.1', at: hardAt },
      { ...base, messageId: y.id, kind: 'hard', status: '5.1.1', at: hardAt },
      { ...base, messageId: y.id, kind: 'complaint', status: '', at: hardAt },
    ]);
    expect(batch).toMatchObject({ recorded: 3, suppressed: [to3] });
    expect(await suppression(to3)).toMatchObject({ reason: 'complaint' });
    // An unknown message id is counted, not an error.
    expect(
      (
        await recordBounces(deps, [
          {
            ...base,
            messageId: '00000000-0000-4000-8000-000000000000',
            kind: 'hard',
            status: '5.1.1',
            at: hardAt,
          },
        ])
      ).unknown,
    ).toBe(1);
    // A webhook's org restriction keeps another org's message untouched.
    const other = await createTestOrg(deps);
    expect(
      (
        await recordBounces(
          deps,
          [{ ...base, messageId: m2.id, kind: 'complaint', status: '', at: hardAt }],
          { orgId: other.orgId },
        )
      ).unknown,
    ).toBe(1);
    expect((await message(m2.id)).complained_at).toBeNull();
  });

  it("inside the caller's transaction (the deliverer), a rollback leaves no trace", async () => {
    const to = `trx-${tag()}@remote.example`;
    const m = await sent(to);
    const item = {
      messageId: m.id,
      kind: 'hard' as const,
      status: '5.1.1',
      reason: '550 5.1.1 no such user',
      at: now,
      source: 'smtp' as const,
    };
    await expect(
      deps.db.transaction().execute(async (trx) => {
        expect((await recordBounces({ ...deps, db: trx }, [item])).recorded).toBe(1);
        throw new Error('the send outcome could not be written');
      }),
    ).rejects.toThrow(/could not be written/);
    expect((await message(m.id)).bounce_kind).toBeNull();
    expect(await suppression(to)).toBeUndefined();
    await deps.db.transaction().execute((trx) => recordBounces({ ...deps, db: trx }, [item]));
    expect((await message(m.id)).bounce_kind).toBe('hard');
    expect(await suppression(to)).toMatchObject({ reason: 'hard_bounce' });
  });

  it('a weaker reason never replaces a stronger one; a hard bounce after an unsubscribe keeps the unsubscribe', async () => {
    const to = `unsub-${tag()}@remote.example`;
    await sql`INSERT INTO suppressions (org_id, email, reason) VALUES (${org.orgId}, ${to}, 'unsubscribe')`.execute(
      deps.db,
    );
    const m = await sent(to);
    await recordBounces(deps, [
      { messageId: m.id, kind: 'hard', status: '5.1.1', reason: 'gone', at: now, source: 'smtp' },
    ]);
    expect(await suppression(to)).toMatchObject({ reason: 'unsubscribe' });
    // A hard bounce is lifted when the address writes in; an unsubscribe is not.
    const to2 = `back-${tag()}@remote.example`;
    const m2 = await sent(to2);
    await recordBounces(deps, [
      { messageId: m2.id, kind: 'hard', status: '5.1.1', reason: 'gone', at: now, source: 'smtp' },
    ]);
    expect(await reconsiderAddress(deps, org.orgId, to2)).toBe('hard_bounce');
    expect(await reconsiderAddress(deps, org.orgId, to)).toBeNull();
  });
});

describe('the mass-email bounce guard', () => {
  it('hard bounces recorded after the send pause a mass email past the threshold', async () => {
    const tpl = await insertTemplate(deps, org.orgId, 'contacts', {
      subject: 'S',
      html: '<p>x</p>',
      text: 'x',
    });
    const mod = await deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', org.orgId)
      .where('api_name', '=', 'contacts')
      .executeTakeFirstOrThrow();
    const mass = (
      await sql<{ id: string }>`
        INSERT INTO mass_emails (org_id, module_id, created_by, name, template_id, from_choice, audience, status, started_at, send_at)
        VALUES (${org.orgId}, ${mod.id}, ${org.adminId}, 'Big send', ${tpl}, '{"kind":"user"}', '{"kind":"ids","ids":[]}', 'sending', ${now}, ${now})
        RETURNING id`.execute(deps.db)
    ).rows[0].id;
    const n = BOUNCE_GUARD_MIN + 20;
    const ids = (
      await sql<{ id: string }>`
        INSERT INTO messages (org_id, kind, mass_email_id, from_address, to_address, subject, message_id_header, transport, status, sent_at, expires_at)
        SELECT ${org.orgId}, 'mass', ${mass}, 'a@parley.test', 'r' || g || '-' || ${tag()} || '@bulk.example', 'S',
          '<bulk' || g || '.' || ${tag()} || '@parley.test>', 'relay', 'sent', ${now}, ${new Date(now.getTime() + DAY)}
        FROM generate_series(1, ${n}) g RETURNING id`.execute(deps.db)
    ).rows.map((r) => r.id);
    const item = (id: string) => ({
      messageId: id,
      kind: 'hard' as const,
      status: '5.1.1',
      reason: 'unknown',
      at: now,
      source: 'dsn' as const,
    });
    // 5 % exactly is tolerated …
    const atLimit = Math.floor(n * 0.05);
    const first = await recordBounces(deps, ids.slice(0, atLimit).map(item));
    expect(first.paused).toEqual([]);
    // … one more is not.
    const r = await recordBounces(deps, [item(ids[atLimit])]);
    expect(r.paused).toEqual([mass]);
    const me = await deps.db
      .selectFrom('mass_emails')
      .select(['status', 'stop_reason'])
      .where('id', '=', mass)
      .executeTakeFirstOrThrow();
    expect(me).toEqual({ status: 'stopped', stop_reason: 'bounce_rate_too_high' });
  });
});
