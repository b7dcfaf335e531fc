import { sql } from 'kysely';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../src/crm/index.ts';
import { buildApp } from '../src/http/app.ts';
import { closeSignPool, deliverDue } from '../src/sending/delivery.ts';
import { createMassEmail, getMassEmail } from '../src/sending/mass.service.ts';
import { launchDue } from '../src/sending/mass-launch.ts';
import { saveRelay } from '../src/sending/relays.ts';
import { renderTemplateRows } from '../src/sending/render-rows.ts';
import { closeRelayTransports } from '../src/sending/transport.ts';
import { verifyTrackingToken } from '../src/tracking/tokens.ts';
import { adminActor, createTestOrg, insertTemplate, testDeps } from './support/app.ts';
import { type CaptureServer, startCaptureServer } from './support/mail-peers.ts';

const deps = testDeps();
let smtp: CaptureServer;
let admin: Actor;
let templateId: string;
let accountId: string;

beforeAll(async () => {
  smtp = await startCaptureServer();
  const o = await createTestOrg(deps);
  admin = adminActor(o);
  await saveRelay(deps, admin, {
    host: '127.0.0.1',
    port: smtp.port,
    security: 'none',
    sendingDomain: 'mail.test.example',
  });
  const mods = await deps.db
    .selectFrom('modules')
    .select(['id', 'api_name'])
    .where('org_id', '=', o.orgId)
    .execute();
  const modId = (n: string) => mods.find((m) => m.api_name === n)?.id as string;
  const acct = await deps.db
    .insertInto('records')
    .values({
      org_id: o.orgId,
      module_id: modId('accounts'),
      owner_id: o.adminId,
      data: JSON.stringify({ account_name: 'Acme <GmbH>' }),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  accountId = acct.id;
  templateId = await insertTemplate(deps, o.orgId, 'contacts', {
    name: 'Offer',
    subject: 'Hello {{ contact.first_name | default: "there" }}',
    html: '<p>Dear {{ contact.first_name | default: "friend" }} of {{ contact.account.account_name }}, from {{ owner.name }}</p><p><a href="https://acme.example/offer?a=1&amp;b=2">See the offer</a></p>',
    text: 'Dear {{ contact.first_name | default: "friend" }} of {{ contact.account.account_name }}',
    createdBy: o.adminId,
  });
  await sql`
    INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${o.orgId}, ${modId('contacts')}, ${o.adminId},
      jsonb_strip_nulls(jsonb_build_object('last_name', 'L' || g, 'email', 'c' || g || '@rcpt.example',
        'first_name', CASE WHEN g % 2 = 0 THEN 'Name' || g END, 'account_id', ${accountId}::text))
    FROM generate_series(1, 40) g`.execute(deps.db);
});
afterAll(async () => {
  closeRelayTransports(deps);
  await closeSignPool(deps);
  await smtp.stop();
  await deps.close();
});

describe('a mass email, end to end', () => {
  it('is merged per recipient when delivered, reaches the SMTP server once each, and finishes as Sent', async () => {
    const id = await createMassEmail(deps, admin, {
      module: 'contacts',
      name: 'Offer',
      templateId,
      from: { kind: 'user' },
      audience: {
        kind: 'criteria',
        criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: 'L' }] },
      },
    });
    await launchDue(deps, { orgId: admin.orgId });
    for (let i = 0; i < 10; i++) {
      const c = await deliverDue(deps, { orgId: admin.orgId, render: renderTemplateRows });
      if (c.claimed === 0) break;
    }
    const got = await smtp.waitFor(40);
    expect(got).toHaveLength(40);
    expect(new Set(got.map((g) => g.rcptTo[0])).size).toBe(40);
    const byRcpt = new Map(got.map((g) => [g.rcptTo[0], g]));
    const even = await simpleParser(byRcpt.get('c2@rcpt.example')?.raw as Buffer);
    expect(even.subject).toBe('Hello Name2');
    expect(even.html).toContain('Dear Name2 of Acme &lt;GmbH&gt;');
    // Insights are on: the link goes through this message's click token, with a pixel and the trap
    const evenId = (
      await deps.db
        .selectFrom('messages')
        .select('id')
        .where('message_id_header', '=', even.messageId as string)
        .executeTakeFirstOrThrow()
    ).id;
    const evenHtml = even.html as string;
    const clicks = [...evenHtml.matchAll(/href="[^"]*\/t\/c\/([\w-]{40})"/g)].map((m) => m[1]);
    expect(clicks.map((t) => verifyTrackingToken(deps.config.secret as string, t))).toEqual([
      { messageId: evenId, kind: 'click', linkIndex: 0 },
      { messageId: evenId, kind: 'click', linkIndex: 1 }, // the hidden trap link
    ]);
    expect(evenHtml).toMatch(/<img src="[^"]*\/t\/o\/[\w-]{40}\.gif"/);
    expect(evenHtml).not.toContain('acme.example/offer');
    expect(even.text).toContain('Dear Name2 of Acme <GmbH>');
    const odd = await simpleParser(byRcpt.get('c1@rcpt.example')?.raw as Buffer);
    expect(odd.subject).toBe('Hello there');
    expect(odd.text).toContain('Dear friend');
    // The VERP return path carries the message; the Message-ID is on the sending domain.
    expect(byRcpt.get('c1@rcpt.example')?.mailFrom).toMatch(/@mail\.test\.example$/);
    expect(odd.messageId).toMatch(/@mail\.test\.example>?$/);
    const rows = await deps.db
      .selectFrom('messages')
      .select(['status', 'subject', 'tracked'])
      .where('mass_email_id', '=', id)
      .execute();
    expect(rows.every((r) => r.status === 'sent' && r.tracked)).toBe(true);
    expect(rows.filter((r) => r.subject === 'Hello there')).toHaveLength(20);
    await launchDue(deps, { orgId: admin.orgId }); // finishes sends with nothing left to go
    expect((await getMassEmail(deps, admin, id)).status).toBe('sent');

    // One-click unsubscribe (RFC 8058) from the headers of a delivered message.
    const raw = (byRcpt.get('c3@rcpt.example') as { raw: Buffer }).raw.toString('latin1');
    expect(raw).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
    const url = /^List-Unsubscribe:\s*<(https?:\/\/[^>]+)>/m.exec(raw)?.[1] as string;
    expect(url).toMatch(/\/u\/[\w-]{40}$/);
    const app = await buildApp(deps);
    const path = new URL(url).pathname;
    const look = await app.inject({ method: 'GET', url: path });
    expect(look.statusCode).toBe(200);
    expect(look.body).toContain('c•••@rcpt.example');
    const rec = async () =>
      (
        await sql<{ out: boolean | null }>`SELECT (data ->> 'email_opt_out')::boolean AS out FROM records
        WHERE org_id = ${admin.orgId} AND data ->> 'email' = 'c3@rcpt.example'`.execute(deps.db)
      ).rows[0].out;
    expect(await rec()).toBeNull(); // looking changes nothing
    const forged = await app.inject({
      method: 'POST',
      url: `${path.slice(0, -4)}AAAA`,
      payload: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(forged.statusCode).toBe(404);
    for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=xyz']) {
      const body = type.startsWith('multipart')
        ? '--xyz\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--xyz--\r\n'
        : 'List-Unsubscribe=One-Click';
      const r = await app.inject({
        method: 'POST',
        url: path,
        payload: body,
        headers: { 'content-type': type },
      });
      expect(r.statusCode).toBe(200);
      expect(r.headers.location).toBeUndefined();
    }
    await app.close();
    expect(await rec()).toBe(true);
    const supp = await deps.db
      .selectFrom('suppressions')
      .select('reason')
      .where('org_id', '=', admin.orgId)
      .execute();
    expect(supp).toEqual([{ reason: 'unsubscribe' }]);
  });
});
