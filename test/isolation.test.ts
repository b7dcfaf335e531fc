import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverDue, deliveryExpiresAt } from '../src/sending/delivery.ts';
import { type Client, login, startTestApp } from './support/app.ts';

// A user of org B walks every API route with the ids of org A's resources: nothing of A may be
// read, changed or deleted, whatever the route.
let t: Awaited<ReturnType<typeof startTestApp>>;
let a: Client;
let b: Client;
const A: Record<string, string> = {};
const MARKER = `secret-of-A-${Date.now()}`;

beforeAll(async () => {
  t = await startTestApp();
  const orgA = await t.createOrg();
  const orgB = await t.createOrg();
  a = await login(t.app, orgA.adminEmail, orgA.adminPassword);
  b = await login(t.app, orgB.adminEmail, orgB.adminPassword);
  const mod = await a.req('POST', '/api/modules', {
    singularLabel: 'Gadget',
    pluralLabel: `Gadgets${Date.now()}`,
  });
  A.module = mod.body.apiName;
  A.field = (
    await a.req('POST', `/api/modules/${A.module}/fields`, { label: 'Secret', type: 'text' })
  ).body.id;
  A.gadget = (
    await a.req('POST', `/api/modules/${A.module}/records`, { data: { name: MARKER, secret: MARKER } })
  ).body.id;
  A.lead = (
    await a.req('POST', '/api/modules/leads/records', {
      data: { last_name: MARKER, email: 'victim@a.example' },
    })
  ).body.id;
  A.view = (
    await a.req('POST', '/api/modules/leads/views', { name: MARKER, columns: ['last_name'], shared: true })
  ).body.id;
  A.profile = (await a.req('POST', '/api/profiles', { name: MARKER, permissions: {} })).body.id;
  A.user = (
    await a.req('POST', '/api/users', {
      email: `victim-${Date.now()}@a.example`,
      name: MARKER,
      profileId: orgA.standardProfileId,
    })
  ).body.user.id;
  A.apiKey = (await a.req('POST', '/api/api-keys', { name: MARKER })).body.id;
  A.org = orgA.orgId;
  // A scheduled mass email of A's (its template written straight to the table).
  const leads = await t.deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', orgA.orgId)
    .where('api_name', '=', 'leads')
    .executeTakeFirstOrThrow();
  const tpl = await t.deps.db
    .insertInto('templates')
    .values({ org_id: orgA.orgId, module_id: leads.id, name: MARKER, created_by: orgA.adminId })
    .returning('id')
    .executeTakeFirstOrThrow();
  A.template = tpl.id;
  A.folder = (await a.req('POST', '/api/template-folders', { name: MARKER })).body.id;
  await t.deps.db
    .insertInto('template_versions')
    .values({
      org_id: orgA.orgId,
      template_id: tpl.id,
      version: 1,
      subject: MARKER,
      html_source: MARKER,
      html: MARKER,
      text: MARKER,
    })
    .execute();
  const mass = await a.req('POST', '/api/mass-emails', {
    module: 'leads',
    name: MARKER,
    templateId: tpl.id,
    from: { kind: 'user' },
    audience: { kind: 'ids', ids: [A.lead] },
    sendAt: new Date(Date.now() + 86_400_000).toISOString(),
  });
  expect(mass.status).toBe(201);
  A.mass = mass.body.id;
  // A message of A's in the local outbox, then a DKIM key and an SMTP relay (with a password).
  A.outbox = (
    await t.deps.db
      .insertInto('messages')
      .values({
        org_id: orgA.orgId,
        kind: 'individual',
        sender_id: orgA.adminId,
        from_address: orgA.adminEmail,
        to_address: 'victim@a.example',
        subject: MARKER,
        html: `<p>${MARKER}</p>`,
        text: MARKER,
        message_id_header: `<iso.${Date.now()}@a.example>`,
        transport: 'outbox',
        expires_at: deliveryExpiresAt(t.deps),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  expect((await deliverDue(t.deps, { orgId: orgA.orgId })).sent).toBe(1);
  A.dkimKey = (
    await a.req('POST', '/api/admin/dkim-keys', {
      domain: 'a.example',
      selector: 'iso',
      algorithm: 'ed25519-sha256',
    })
  ).body.id;
  expect(
    (
      await a.req('PUT', '/api/admin/smtp-relay', {
        host: 'smtp.a.example',
        port: 2525,
        security: 'none',
        username: MARKER,
        password: MARKER,
      })
    ).status,
  ).toBe(200);
});
afterAll(() => t.stop());

// Template routes take A's template or folder id.
const TEMPLATE_IDS: [string, () => string[]][] = [
  ['/api/template-folders', () => [A.folder]],
  ['/api/templates', () => [A.template]],
];

function paramsFor(url: string): string[] {
  // Try each route with A's own module (unknown to B) and with the shared built-in name.
  const modules = url.includes(':module') ? [A.module, 'leads'] : [''];
  const ids = url.startsWith('/api/outbox')
    ? [A.outbox]
    : url.startsWith('/api/admin/dkim-keys')
      ? [A.dkimKey]
      : url.startsWith('/api/mass-emails')
        ? [A.mass]
        : url.startsWith('/api/views')
          ? [A.view]
          : url.startsWith('/api/profiles')
            ? [A.profile]
            : url.startsWith('/api/users')
              ? [A.user]
              : url.startsWith('/api/api-keys')
                ? [A.apiKey]
                : (TEMPLATE_IDS.find(([prefix]) => url.startsWith(prefix))?.[1]() ?? [A.gadget, A.lead]);
  const out: string[] = [];
  for (const m of modules)
    for (const id of ids)
      out.push(
        url
          .replace(':module', m === A.module && id === A.lead ? 'leads' : m)
          .replace(':id', id)
          .replace(':fieldId', A.field)
          .replace(':version', '1'),
      );
  return [...new Set(out)];
}

const body = {
  data: { last_name: 'pwned', name: 'pwned', secret: 'pwned' },
  name: 'pwned',
  label: 'pwned',
  status: 'deactivated',
  field: 'last_name',
  value: 'pwned',
  ids: [] as string[],
  criteria: { conditions: [{ field: 'last_name', op: 'contains', value: 'secret-of-A' }] },
  columns: ['last_name'],
};

describe('org isolation', () => {
  it('no route lets org B read or change org A', async () => {
    body.ids = [A.lead, A.gadget];
    // /api/feed is a stream that never ends: its org and owner scoping is tested in email-status.test.ts.
    const routes = t.app.routeList.filter(
      (r) =>
        r.url.startsWith('/api/') &&
        !r.url.startsWith('/api/docs') &&
        !r.url.startsWith('/api/auth/') &&
        r.url !== '/api/feed',
    );
    expect(routes.length).toBeGreaterThan(25);
    let checked = 0;
    for (const r of routes) {
      for (const url of paramsFor(r.url)) {
        const res = await b.req(
          r.method,
          url,
          r.method === 'GET' || r.method === 'DELETE' ? undefined : body,
        );
        checked++;
        const leaked = [
          MARKER,
          A.lead,
          A.gadget,
          A.view,
          A.profile,
          A.user,
          A.apiKey,
          A.org,
          A.mass,
          A.outbox,
          A.dkimKey,
          A.template,
          A.folder,
        ].filter((s) => res.text.includes(s));
        expect({ route: `${r.method} ${url}`, leaked }).toEqual({ route: `${r.method} ${url}`, leaked: [] });
      }
    }
    expect(checked).toBeGreaterThan(40);
    // A's data is untouched.
    const lead = await a.req('GET', `/api/modules/leads/records/${A.lead}`);
    expect(lead.body.record.data.last_name).toBe(MARKER);
    const gadget = await a.req('GET', `/api/modules/${A.module}/records/${A.gadget}`);
    expect(gadget.body.record.data).toMatchObject({ name: MARKER, secret: MARKER });
    expect(
      (await a.req('GET', '/api/modules/leads/views')).body.some(
        (v: { id: string; name: string }) => v.id === A.view && v.name === MARKER,
      ),
    ).toBe(true);
    expect(
      (await a.req('GET', '/api/profiles')).body.some(
        (p: { id: string; name: string }) => p.id === A.profile && p.name === MARKER,
      ),
    ).toBe(true);
    expect(
      (await a.req('GET', '/api/users')).body.find((u: { id: string }) => u.id === A.user),
    ).toMatchObject({ name: MARKER, status: 'invited' });
    expect(
      (await a.req('GET', '/api/api-keys')).body.find((k: { id: string }) => k.id === A.apiKey).revokedAt,
    ).toBeNull();
    const mass = await a.req('GET', `/api/mass-emails/${A.mass}`);
    expect(mass.body).toMatchObject({ name: MARKER, status: 'scheduled' });
    const fields = (await a.req('GET', `/api/modules/${A.module}`)).body.fields;
    expect(fields.find((f: { id: string }) => f.id === A.field).label).toBe('Secret');
    expect((await a.req('GET', `/api/outbox/${A.outbox}`)).body.subject).toBe(MARKER);
    expect((await a.req('GET', `/api/templates/${A.template}`)).body).toMatchObject({
      name: MARKER,
      currentVersion: 1,
    });
    expect((await a.req('GET', '/api/template-folders')).body).toMatchObject([
      { id: A.folder, name: MARKER },
    ]);
    expect((await a.req('GET', '/api/admin/dkim-keys')).body.map((k: { id: string }) => k.id)).toEqual([
      A.dkimKey,
    ]);
    expect((await a.req('GET', '/api/admin/smtp-relay')).body.relay).toMatchObject({
      host: 'smtp.a.example',
      username: MARKER,
    });
  });
});
