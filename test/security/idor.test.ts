import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverDue, deliveryExpiresAt } from '../../src/sending/delivery.ts';
import { deliver, mailbox } from '../salesinbox-fixtures.ts';
import { type Client, insertTemplate, login, startTestApp, type TestOrg } from '../support/app.ts';

// Cross-org access (IDOR) on every route: org A owns one of everything; a user of org B calls every
// route Fastify knows, with A's ids in the path, the query and the body. Nothing of A's may come
// back, no call naming A's data may succeed, and no row of A's may change. A route whose path takes
// a parameter this file does not know fails the test until it is added to PARAMS below.
let t: Awaited<ReturnType<typeof startTestApp>>;
let orgA: TestOrg;
let a: Client;
let b: Client;
const A: Record<string, string> = {};
const B: Record<string, string> = {};
const MARKER = `secret-of-A-${randomBytes(4).toString('hex')}`;
// A's suppression list entry: an address, not an id, so B may ask about it (its own list is empty).
const SUPPRESSED = `gone-${MARKER}@a.example`;

async function created(c: Client, method: string, url: string, body: unknown): Promise<any> {
  const r = await c.req(method, url, body);
  if (r.status >= 300) throw new Error(`${method} ${url}: ${r.status} ${r.text}`);
  return r.body;
}

beforeAll(async () => {
  t = await startTestApp();
  orgA = await t.createOrg({ edition: 'enterprise' });
  const orgB = await t.createOrg({ edition: 'enterprise' });
  a = await login(t.app, orgA.adminEmail, orgA.adminPassword);
  b = await login(t.app, orgB.adminEmail, orgB.adminPassword);
  const db = t.deps.db;
  A.org = orgA.orgId;
  A.admin = orgA.adminId;
  A.module = (
    await created(a, 'POST', '/api/modules', { singularLabel: 'Gadget', pluralLabel: `Gadgets${MARKER}` })
  ).apiName;
  A.field = (
    await created(a, 'POST', `/api/modules/${A.module}/fields`, { label: 'Secret', type: 'text' })
  ).id;
  A.gadget = (
    await created(a, 'POST', `/api/modules/${A.module}/records`, { data: { name: MARKER, secret: MARKER } })
  ).id;
  A.email = `victim-${MARKER}@a.example`;
  A.lead = (
    await created(a, 'POST', '/api/modules/leads/records', { data: { last_name: MARKER, email: A.email } })
  ).id;
  A.view = (
    await created(a, 'POST', '/api/modules/leads/views', {
      name: MARKER,
      columns: ['last_name'],
      shared: true,
    })
  ).id;
  A.profile = (await created(a, 'POST', '/api/profiles', { name: MARKER, permissions: {} })).id;
  A.user = (
    await created(a, 'POST', '/api/users', {
      email: `user-${MARKER}@a.example`,
      name: MARKER,
      profileId: orgA.standardProfileId,
    })
  ).user.id;
  A.apiKey = (await created(a, 'POST', '/api/api-keys', { name: MARKER })).id;
  A.folder = (await created(a, 'POST', '/api/template-folders', { name: MARKER })).id;
  A.template = await insertTemplate(t.deps, orgA.orgId, 'leads', {
    name: MARKER,
    subject: MARKER,
    html: `<p>${MARKER}</p>`,
    text: MARKER,
    createdBy: orgA.adminId,
  });
  A.orgAddress = (
    await created(a, 'POST', '/api/admin/org-addresses', {
      email: `sales-${MARKER}@a.example`,
      displayName: MARKER,
    })
  ).id;
  await db
    .updateTable('org_addresses')
    .set({ verified_at: new Date() })
    .where('id', '=', A.orgAddress)
    .execute();
  A.mass = (
    await created(a, 'POST', '/api/mass-emails', {
      module: 'leads',
      name: MARKER,
      templateId: A.template,
      from: { kind: 'user' },
      audience: { kind: 'ids', ids: [A.lead] },
      sendAt: new Date(Date.now() + 86_400_000).toISOString(),
    })
  ).id;
  // A sent message of A's (through the local outbox), then DKIM, relay, webhooks and the rest.
  A.message = (
    await db
      .insertInto('messages')
      .values({
        org_id: orgA.orgId,
        kind: 'individual',
        sender_id: orgA.adminId,
        from_address: orgA.adminEmail,
        to_address: A.email,
        subject: MARKER,
        html: `<p>${MARKER}</p>`,
        text: MARKER,
        message_id_header: `<idor.${MARKER}@a.example>`,
        transport: 'outbox',
        expires_at: deliveryExpiresAt(t.deps),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  expect((await deliverDue(t.deps, { orgId: orgA.orgId })).sent).toBeGreaterThanOrEqual(1);
  A.dkim = (
    await created(a, 'POST', '/api/admin/dkim-keys', {
      domain: 'a.example',
      selector: 'idor',
      algorithm: 'ed25519-sha256',
    })
  ).id;
  await created(a, 'PUT', '/api/admin/smtp-relay', {
    host: 'smtp.a.example',
    port: 2525,
    security: 'none',
    username: MARKER,
    password: MARKER,
  });
  A.webhook = (
    await created(a, 'POST', '/api/webhooks', {
      url: `https://hooks.a.example/${MARKER}`,
      description: MARKER,
      events: ['opened'],
    })
  ).endpoint.id;
  A.webhookDelivery = (
    await db
      .insertInto('webhook_deliveries')
      .values({
        org_id: orgA.orgId,
        endpoint_id: A.webhook,
        event_key: `idor-${MARKER}`,
        event: 'opened',
        payload: JSON.stringify({ marker: MARKER }),
        status: 'failed',
        next_attempt_at: new Date(Date.now() + 86_400_000),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  await created(a, 'PUT', '/api/bounce-webhooks/mailgun', { signingKey: `key-${MARKER}` });
  A.label = (await created(a, 'POST', '/api/inbox/labels', { name: MARKER.slice(0, 30), colour: 'red' })).id;
  A.leadRule = (
    await created(a, 'POST', '/api/inbox/lead-rules', { module: 'leads', match: 'keyword', values: [MARKER] })
  ).id;
  A.savedReport = (
    await created(a, 'POST', '/api/reports/saved', {
      name: MARKER,
      config: { columns: ['status', 'subject'], status: 'opened', from: '2026-01-01', to: null },
    })
  ).id;
  await created(a, 'POST', '/api/suppressions', { email: SUPPRESSED, note: MARKER });
  A.autoresponder = (
    await created(a, 'POST', '/api/automations/autoresponders', {
      module: 'leads',
      name: MARKER,
      templateId: A.template,
      days: 1,
      from: { kind: 'user' },
    })
  ).id;
  A.workflow = (
    await created(a, 'POST', '/api/automations/workflow-rules', {
      module: 'leads',
      name: MARKER,
      onCreate: true,
      onEdit: false,
      templateId: A.template,
      toRecord: true,
      from: { kind: 'user' },
      active: false,
    })
  ).id;
  A.dropboxSender = (
    await created(a, 'POST', '/api/admin/dropbox/senders', { email: `rep-${MARKER}@a.example` })
  ).id;
  // A connected mailbox of A's with one received email (with an attachment) and a watch on it.
  const box = await mailbox(t.deps, orgA.orgId, orgA.adminId, orgA.adminEmail);
  A.mailbox = box.accountId;
  A.mail = await deliver(t.deps, orgA.orgId, box, {
    from: A.email,
    to: [orgA.adminEmail],
    subject: MARKER,
    text: MARKER,
    date: new Date(),
    attachment: true,
  });
  A.attachment = (
    await db
      .selectFrom('mail_attachments')
      .select('id')
      .where('mail_id', '=', A.mail)
      .executeTakeFirstOrThrow()
  ).id;
  A.watch = (
    await created(a, 'POST', '/api/inbox/watches', { messageId: A.message, amount: 3, unit: 'days' })
  ).id;
  A.notification = (
    await db
      .insertInto('notifications')
      .values({ org_id: orgA.orgId, user_id: orgA.adminId, kind: 'reply', title: MARKER, body: MARKER })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  A.alert = (
    await db
      .insertInto('admin_alerts')
      .values({
        org_id: orgA.orgId,
        kind: 'bounce_policy',
        key: MARKER,
        title: MARKER,
        detail: MARKER,
        first_at: new Date(),
        last_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  A.dropboxItem = (
    await db
      .insertInto('dropbox_items')
      .values({
        org_id: orgA.orgId,
        mail_id: A.mail,
        from_address: A.email,
        subject: MARKER,
        date: new Date(),
        spf: 'pass',
        dkim: 'pass',
        state: 'unmatched',
        reason: 'no_record',
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  B.admin = orgB.adminId;
  // B's own record and template: routes that join one of B's things with one of A's.
  B.lead = (
    await created(b, 'POST', '/api/modules/leads/records', {
      data: { last_name: 'Bee', email: 'b@b.example' },
    })
  ).id;
  B.template = await insertTemplate(t.deps, orgB.orgId, 'leads', {
    subject: 'Hi',
    html: '<p>Hi</p>',
    text: 'Hi',
  });
}, 120_000);
afterAll(() => t.stop());

// Which of A's ids each parameterised path gets. Every route whose path has a parameter must match
// one prefix here (or be listed in TOKEN_ROUTES with where its tokens are tested).
const PARAMS: [string, () => Record<string, string[]>][] = [
  ['/api/admin-alerts/:id', () => ({ id: [A.alert] })],
  ['/api/admin/dkim-keys/:id', () => ({ id: [A.dkim] })],
  ['/api/admin/dropbox/items/:id', () => ({ id: [A.dropboxItem] })],
  ['/api/admin/dropbox/senders/:id', () => ({ id: [A.dropboxSender] })],
  ['/api/admin/org-addresses/:id', () => ({ id: [A.orgAddress] })],
  ['/api/api-keys/:id', () => ({ id: [A.apiKey] })],
  ['/api/automations/autoresponders/:id', () => ({ id: [A.autoresponder] })],
  ['/api/automations/workflow-rules/:id', () => ({ id: [A.workflow] })],
  [
    '/api/automations/:kind/:id',
    () => ({ kind: ['autoresponder', 'workflow'], id: [A.autoresponder, A.workflow] }),
  ],
  // Per-org settings named by provider: B's own; checked for leaks only.
  ['/api/bounce-webhooks/:provider', () => ({ provider: ['mailgun'] })],
  ['/api/inbox/labels/:id', () => ({ id: [A.label] })],
  ['/api/inbox/lead-rules/:id', () => ({ id: [A.leadRule] })],
  ['/api/inbox/mail/:id', () => ({ id: [A.mail] })],
  ['/api/inbox/watches/:id', () => ({ id: [A.watch] })],
  ['/api/mail/attachments/:id', () => ({ id: [A.attachment] })],
  ['/api/mail/:id', () => ({ id: [A.mail] })],
  ['/api/mailbox/accounts/:id', () => ({ id: [A.mailbox] })],
  ['/api/mass-emails/:id', () => ({ id: [A.mass], stat: ['sent', 'opened'] })],
  ['/api/messages/:id', () => ({ id: [A.message] })],
  [
    '/api/modules/:module',
    () => ({ module: [A.module, 'leads'], id: [A.lead, A.gadget], fieldId: [A.field] }),
  ],
  ['/api/outbox/:id', () => ({ id: [A.message] })],
  ['/api/profiles/:id', () => ({ id: [A.profile] })],
  ['/api/reports/saved/:id', () => ({ id: [A.savedReport] })],
  ['/api/suppressions/:email', () => ({ email: [encodeURIComponent(SUPPRESSED)] })],
  ['/api/template-folders/:id', () => ({ id: [A.folder] })],
  ['/api/templates/:id', () => ({ id: [A.template], version: ['1'] })],
  ['/api/users/:id', () => ({ id: [A.user] })],
  ['/api/views/:id', () => ({ id: [A.view] })],
  ['/api/webhooks/deliveries/:id', () => ({ id: [A.webhookDelivery] })],
  ['/api/webhooks/:id', () => ({ id: [A.webhook] })],
  // Signed URLs of A's attachments; a bare id (no valid signature) must not serve them.
  ['/mail/inline/:id', () => ({ id: [A.attachment] })],
];
const TOKEN_ROUTES: Record<string, string> = {
  '/u/:token': 'unsubscribe tokens: tokens.test.ts',
  '/hooks/bounces/:provider/:token': 'bounce webhook tokens: tokens.test.ts',
};

function urlsFor(url: string): string[] | undefined {
  const entry = PARAMS.find(([prefix]) => url === prefix || url.startsWith(`${prefix}/`));
  if (!entry) return undefined;
  const values = entry[1]();
  let out = [url];
  for (const name of url.match(/:[a-zA-Z]+/g) ?? []) {
    const vs = values[name.slice(1)];
    if (!vs) return undefined;
    out = out.flatMap((u) => vs.map((v) => u.replace(name, v)));
  }
  // A's own module with A's lead means nothing: B cannot know either; keep the pairs that probe.
  return out.filter((u) => !(u.includes(`/${A.module}/`) && u.includes(A.lead)));
}

// Bodies that name A's things from routes whose path does not: B must be refused every one.
const HOSTILE_BODIES: Record<string, () => unknown[]> = {
  'POST /api/mass-emails': () => [
    {
      module: 'leads',
      name: 'x',
      templateId: A.template,
      from: { kind: 'user' },
      audience: { kind: 'ids', ids: [B.lead] },
    },
    {
      module: 'leads',
      name: 'x',
      templateId: B.template,
      from: { kind: 'user' },
      audience: { kind: 'view', viewId: A.view },
    },
    {
      module: 'leads',
      name: 'x',
      templateId: B.template,
      from: { kind: 'org_address', orgAddressId: A.orgAddress },
      audience: { kind: 'ids', ids: [B.lead] },
    },
  ],
  'POST /api/mass-emails/audience': () => [{ module: 'leads', audience: { kind: 'view', viewId: A.view } }],
  'POST /api/mass-emails/audience/list': () => [
    { module: 'leads', audience: { kind: 'view', viewId: A.view }, reason: null },
  ],
  'POST /api/automations/autoresponders': () => [
    { module: 'leads', name: 'x', templateId: A.template, days: 1, from: { kind: 'user' } },
  ],
  'POST /api/automations/workflow-rules': () => [
    {
      module: 'leads',
      name: 'x',
      onCreate: true,
      onEdit: false,
      templateId: A.template,
      toRecord: true,
      from: { kind: 'user' },
    },
  ],
  'POST /api/inbox/watches': () => [{ messageId: A.message, amount: 1, unit: 'days' }],
  'POST /api/templates': () => [
    { module: 'leads', name: 'x', folderId: A.folder, subject: 'x', htmlSource: '<p>x</p>' },
  ],
  'POST /api/templates/preview': () => [
    { module: 'leads', recordId: A.lead, subject: 'x', htmlSource: '<p>{{ lead.last_name }}</p>' },
  ],
  'POST /api/users': () => [{ email: `x-${MARKER}@b.example`, name: 'x', profileId: A.profile }],
  'POST /api/modules/:module/records/query': () => [{ viewId: A.view }],
  'POST /api/modules/:module/records/count': () => [{ viewId: A.view }],
  'POST /api/reports/sent-status/email': () => [
    { from: '2026-01-01', to: '2026-12-31', columns: ['subject'], userIds: [A.admin] },
  ],
};
// Bulk actions over lists of ids may skip the ones that are not the caller's: checked for leaks, and
// the snapshot proves they changed nothing of A's.
const BULK_BODIES: Record<string, () => unknown[]> = {
  'POST /api/inbox/labels/apply': () => [{ mailIds: [A.mail], add: [A.label] }],
  'POST /api/inbox/seen': () => [{ mailIds: [A.mail], seen: true }],
  'POST /api/notifications/read': () => [{ ids: [A.notification] }],
};
// B's own thing paired with A's: B's template previewed against A's record, and the other way.
const CROSS_CALLS = (): [string, string, unknown][] => [
  ['POST', `/api/templates/${B.template}/preview`, { recordId: A.lead }],
  ['POST', `/api/modules/leads/records/${B.lead}/emails/preview`, { templateId: A.template }],
  ['POST', `/api/modules/leads/records/${B.lead}/emails`, { templateId: A.template }],
  [
    'POST',
    `/api/modules/leads/records/${B.lead}/emails`,
    { from: { kind: 'org_address', orgAddressId: A.orgAddress }, subject: 'x', text: 'x' },
  ],
  ['GET', `/api/modules/leads/records/${B.lead}/from-options?templateId=${A.template}`, undefined],
  ['PATCH', `/api/users/${B.admin}`, { profileId: A.profile }],
];
// Reads whose query names A's things.
const HOSTILE_QUERIES = (): string[] => [
  `/api/inbox/watches?mailId=${A.mail}`,
  `/api/inbox/watches?messageId=${A.message}`,
  `/api/templates?folderId=${A.folder}`,
  `/api/reports/email-analytics?from=2026-01-01&to=2026-12-31&users=${A.user}&template=${A.template}&groupBy=user`,
  `/api/reports/email-analytics?from=2026-01-01&to=2026-12-31&template=${A.template}&groupBy=template`,
  `/api/reports/leaderboards?from=2026-01-01&to=2026-12-31&users=${A.user}`,
  `/api/reports/template-performance?from=2026-01-01&to=2026-12-31&template=${A.template}`,
  `/api/modules/leads/records/search?q=${MARKER}`,
  `/api/suppressions?q=${encodeURIComponent(SUPPRESSED)}`,
  `/api/mail/${A.mail}?download=1`,
];

const GENERIC_BODY = () => ({
  data: { last_name: 'pwned', name: 'pwned', secret: 'pwned' },
  name: 'pwned',
  label: 'pwned',
  status: 'deactivated',
  field: 'last_name',
  value: 'pwned',
  ids: [A.lead, A.gadget],
  recordIds: [B.lead],
  active: false,
  criteria: { conditions: [{ field: 'last_name', op: 'contains', value: 'secret-of-A' }] },
  columns: ['last_name'],
});

/** What of A's the response holds, beyond what the request itself named (echoed in a 404). */
function leaks(text: string, request: string): string[] {
  return [MARKER, SUPPRESSED, ...Object.values(A)].filter((s) => text.includes(s) && !request.includes(s));
}

/** Every row of A's, in every table with an org_id, as text: B's calls must leave it identical. */
async function snapshotOfA(): Promise<Record<string, string>> {
  const tables = await sql<{ table_name: string }>`
    SELECT table_name FROM information_schema.columns
    WHERE column_name = 'org_id' AND table_schema = 'public' ORDER BY table_name`.execute(t.deps.db);
  const out: Record<string, string> = {};
  for (const { table_name } of tables.rows) {
    const rows = await sql<{ j: unknown }>`
      SELECT to_jsonb(x) AS j FROM ${sql.table(table_name)} x WHERE org_id = ${orgA.orgId}`.execute(
      t.deps.db,
    );
    out[table_name] = rows.rows
      .map((r) => JSON.stringify(r.j))
      .sort()
      .join('\n');
  }
  return out;
}

describe('cross-org access (IDOR)', () => {
  it('covers every parameterised route', () => {
    const uncovered = t.app.routeList
      .filter((r) => r.url.includes(':') && !(r.url in TOKEN_ROUTES))
      .filter((r) => !urlsFor(r.url)?.length)
      .map((r) => `${r.method} ${r.url}`);
    expect(uncovered).toEqual([]);
  });

  it('no route lets org B read or change org A, by path, query or body', async () => {
    const before = await snapshotOfA();
    const problems: string[] = [];
    const check = async (method: string, url: string, body: unknown, mustFail: boolean) => {
      const res = await b.req(method, url, body);
      const leaked = leaks(res.text, url + JSON.stringify(body ?? ''));
      if (leaked.length) problems.push(`${method} ${url} -> ${res.status} leaked ${leaked.join(', ')}`);
      if (mustFail && res.status < 400)
        problems.push(`${method} ${url} ${JSON.stringify(body)} -> ${res.status}`);
      if (res.status >= 500) problems.push(`${method} ${url} -> ${res.status} ${res.text}`);
    };
    // /api/feed is a stream that never ends: its org scoping is tested in email-status.test.ts.
    const routes = t.app.routeList.filter((r) => !(r.url in TOKEN_ROUTES) && r.url !== '/api/feed');
    let calls = 0;
    for (const r of routes) {
      if (r.url.includes('*') || r.url.startsWith('/api/auth/')) continue;
      const urls = r.url.includes(':') ? (urlsFor(r.url) ?? []) : [r.url];
      const hasBody = r.method !== 'GET' && r.method !== 'DELETE';
      for (const url of urls) {
        const namesA =
          url !== r.url &&
          Object.values(A).some((v) => url.includes(v) || url.includes(encodeURIComponent(v)));
        await check(r.method, url, hasBody ? GENERIC_BODY() : undefined, namesA);
        calls++;
        for (const hostile of HOSTILE_BODIES[`${r.method} ${r.url}`]?.() ?? []) {
          await check(r.method, url, hostile, true);
          calls++;
        }
        for (const bulk of BULK_BODIES[`${r.method} ${r.url}`]?.() ?? []) {
          await check(r.method, url, bulk, false);
          calls++;
        }
      }
    }
    for (const [method, url, body] of CROSS_CALLS()) {
      await check(method, url, body, true);
      calls++;
    }
    for (const url of HOSTILE_QUERIES()) {
      await check('GET', url, undefined, false);
      calls++;
    }
    expect(problems).toEqual([]);
    expect(calls).toBeGreaterThan(200);
    // Not one row of A's changed.
    const after = await snapshotOfA();
    const changed = Object.keys(before).filter((k) => before[k] !== after[k]);
    expect(changed.map((k) => ({ table: k, before: before[k], after: after[k] }))).toEqual([]);
  });

  it('the hostile bodies are valid requests: A, who owns the ids, gets them through', async () => {
    // Proves B's refusals above came from org scoping, not from a malformed body.
    for (const [key, bodies] of Object.entries({ ...HOSTILE_BODIES, ...BULK_BODIES })) {
      const [method, url] = key.split(' ');
      for (const body of bodies()) {
        const swapped = JSON.parse(
          JSON.stringify(body).replaceAll(B.lead, A.lead).replaceAll(B.template, A.template),
        );
        const r = await a.req(method, url.replace(':module', 'leads'), swapped);
        // 409: A already has one (the watch made in beforeAll): the ids were found all the same.
        const ok = r.status < 300 || r.status === 409;
        expect({ key, status: r.status, text: ok ? '' : r.text }).toMatchObject({ key, text: '' });
      }
    }
  });
});
