// Templates through the API on the real database: folders, create → versions → preview, the
// merge context (record, related records, owner, sender, org), permissions and org isolation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorForUser } from '../src/crm/index.ts';
import { buildMergeContext, buildMergeContexts, renderForRecord } from '../src/templates/index.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
let writer: Client; // may read leads and contacts, but not manage templates
let outsider: Client; // may read nothing
let other: Client; // the admin of another org
let otherOrg: TestOrg;
const ids: Record<string, string> = {};

async function newUser(name: string, permissions: unknown): Promise<Client> {
  const prof = await admin.req('POST', '/api/profiles', { name: `${name} profile`, permissions });
  expect(prof.status).toBe(201);
  const inv = await admin.req('POST', '/api/users', {
    email: `${name.toLowerCase()}-${Date.now()}@t.example`,
    name,
    profileId: prof.body.id,
  });
  await admin.req('POST', '/api/auth/accept-invite', {
    token: new URL(inv.body.inviteUrl).searchParams.get('token'),
    password: `${name}-password-1`,
  });
  ids[name] = inv.body.user.id;
  return login(t.app, inv.body.user.email, `${name}-password-1`);
}

beforeAll(async () => {
  t = await startTestApp();
  org = await t.createOrg();
  otherOrg = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  other = await login(t.app, otherOrg.adminEmail, otherOrg.adminPassword);
  writer = await newUser('Writer', {
    manage_templates: false,
    modules: { leads: { read: true }, contacts: { read: true } },
  });
  outsider = await newUser('Outsider', { modules: {} });
  ids.account = (
    await admin.req('POST', '/api/modules/accounts/records', {
      data: { account_name: 'Globex <Corp>', website: 'https://globex.example' },
    })
  ).body.id;
  ids.contact = (
    await admin.req('POST', '/api/modules/contacts/records', {
      data: {
        first_name: 'Hank',
        last_name: 'Scorpio',
        email: 'hank@globex.example',
        account_id: ids.account,
      },
    })
  ).body.id;
  ids.lead = (
    await admin.req('POST', '/api/modules/leads/records', {
      data: { first_name: 'Ada', last_name: 'Lovelace', company: 'Engines & <Co>', email: 'ada@example.com' },
    })
  ).body.id;
  ids.bareLead = (
    await admin.req('POST', '/api/modules/leads/records', { data: { last_name: 'Nameless' } })
  ).body.id;
  ids.otherLead = (
    await other.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'Secret-of-B', company: 'B Corp' },
    })
  ).body.id;
});
afterAll(() => t.stop());

const leadTemplate = {
  name: 'Welcome',
  module: 'leads',
  subject: 'Hello {{ lead.first_name | default: "there" }} from {{ org.name }}',
  htmlSource:
    '<style>p { color: #333 }</style><p>Dear {{ lead.first_name | default: "friend" }} at {{ lead.company }},</p><p>{{ sender.name }} / owner {{ owner.email }}</p>',
  fromAddress: 'sales@acme.example',
  fromName: 'Acme Sales',
  replyTo: 'Replies <replies@acme.example>',
  comment: 'first draft',
};

describe('templates API', () => {
  it('creates folders and a template; CSS is inlined, the text generated, the addresses normalised', async () => {
    const folder = await admin.req('POST', '/api/template-folders', { name: 'Onboarding' });
    expect(folder.status).toBe(201);
    ids.folder = folder.body.id;
    expect((await admin.req('POST', '/api/template-folders', { name: 'Onboarding' })).status).toBe(409);

    const res = await admin.req('POST', '/api/templates', { ...leadTemplate, folderId: ids.folder });
    expect(res.status).toBe(201);
    ids.template = res.body.id;
    expect(res.body).toMatchObject({
      name: 'Welcome',
      module: 'leads',
      folderId: ids.folder,
      folderName: 'Onboarding',
      currentVersion: 1,
      canManage: true,
      current: {
        version: 1,
        comment: 'first draft',
        fromAddress: 'sales@acme.example',
        fromName: 'Acme Sales',
        replyTo: 'replies@acme.example',
        textGenerated: true,
        author: { id: org.adminId },
      },
    });
    expect(res.body.current.html).toContain(
      '<p style="color: #333;">Dear {{ lead.first_name | default: "friend" }}',
    );
    expect(res.body.current.htmlSource).toBe(leadTemplate.htmlSource);
    expect(res.body.current.text).toContain(
      'Dear {{ lead.first_name | default: "friend" }} at {{ lead.company }},',
    );
    const list = await admin.req('GET', `/api/templates?module=leads&folderId=${ids.folder}`);
    expect(list.body.map((x: { id: string }) => x.id)).toEqual([ids.template]);
    expect((await admin.req('GET', '/api/templates?q=welc')).body).toHaveLength(1);
    expect((await admin.req('GET', '/api/templates?q=nothing-like-it')).body).toHaveLength(0);
    expect((await admin.req('GET', '/api/templates?folderId=none')).body).toHaveLength(0);
    const folders = await admin.req('GET', '/api/template-folders');
    expect(folders.body).toMatchObject([{ id: ids.folder, name: 'Onboarding', templateCount: 1 }]);
  });

  it('refuses unknown merge fields, bad addresses and bad folders, saving nothing', async () => {
    const bad = await admin.req('POST', '/api/templates', {
      ...leadTemplate,
      subject: 'Hi {{ lead.frist_name }}',
      htmlSource: '<p>{{ contact.first_name }}</p>',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toBe('Unknown merge fields: lead.frist_name, contact.first_name');
    expect(bad.body.error.details.map((d: { path: string }) => d.path)).toEqual(['subject', 'htmlSource']);
    const from = await admin.req('POST', '/api/templates', {
      ...leadTemplate,
      fromAddress: 'x@y\r\nBcc: a@b.example',
    });
    expect(from.status).toBe(400);
    const folder = await admin.req('POST', '/api/templates', {
      ...leadTemplate,
      folderId: '00000000-0000-4000-8000-000000000000',
    });
    expect(folder.status).toBe(400);
    expect((await admin.req('GET', '/api/templates')).body).toHaveLength(1);
  });

  it('saves every change as a new version; old versions stay readable', async () => {
    const v2 = await admin.req('PUT', `/api/templates/${ids.template}`, {
      subject: 'Welcome aboard, {{ lead.first_name | default: "friend" }}',
      htmlSource: '<p>Version two for {{ lead.company }}</p>',
      text: 'Plain two for {{ lead.company }}',
      comment: 'shorter',
      baseVersion: 1,
    });
    expect(v2.status).toBe(200);
    expect(v2.body).toMatchObject({
      currentVersion: 2,
      name: 'Welcome',
      folderId: ids.folder,
      current: { version: 2, comment: 'shorter', textGenerated: false, fromAddress: null, replyTo: null },
    });
    // Saving over a version someone else replaced is refused.
    const stale = await admin.req('PUT', `/api/templates/${ids.template}`, {
      subject: 'x',
      htmlSource: '<p>x</p>',
      baseVersion: 1,
    });
    expect(stale.status).toBe(409);
    const versions = await admin.req('GET', `/api/templates/${ids.template}/versions`);
    expect(versions.body).toMatchObject([
      { version: 2, comment: 'shorter', current: true, author: { id: org.adminId } },
      { version: 1, comment: 'first draft', current: false },
    ]);
    const v1 = await admin.req('GET', `/api/templates/${ids.template}/versions/1`);
    expect(v1.body).toMatchObject({
      version: 1,
      subject: leadTemplate.subject,
      fromAddress: 'sales@acme.example',
    });
    expect((await admin.req('GET', `/api/templates/${ids.template}/versions/9`)).status).toBe(404);
    // Renaming or moving is not a change of content: no version.
    const moved = await admin.req('PATCH', `/api/templates/${ids.template}`, {
      name: 'Welcome (leads)',
      folderId: null,
    });
    expect(moved.body).toMatchObject({ name: 'Welcome (leads)', folderId: null, currentVersion: 2 });
    const rows = await t.deps.db
      .selectFrom('template_versions')
      .select(['version', 'author_id'])
      .where('template_id', '=', ids.template)
      .orderBy('version')
      .execute();
    expect(rows).toEqual([
      { version: 1, author_id: org.adminId },
      { version: 2, author_id: org.adminId },
    ]);
  });

  it('previews a version against a record: merged, HTML-escaped, with the template addresses', async () => {
    const cur = await admin.req('POST', `/api/templates/${ids.template}/preview`, { recordId: ids.lead });
    expect(cur.status).toBe(200);
    expect(cur.body).toMatchObject({
      templateId: ids.template,
      templateVersion: 2,
      subject: 'Welcome aboard, Ada',
      text: 'Plain two for Engines & <Co>',
    });
    expect(cur.body.html).toBe('<p>Version two for Engines &amp; &lt;Co&gt;</p>');
    expect(cur.body.from).toBeUndefined();
    const old = await admin.req('POST', `/api/templates/${ids.template}/preview`, {
      recordId: ids.bareLead,
      version: 1,
    });
    expect(old.body).toMatchObject({
      templateVersion: 1,
      subject: expect.stringMatching(/^Hello there from Org /),
      from: { address: 'sales@acme.example', name: 'Acme Sales' },
      replyTo: 'replies@acme.example',
    });
    expect(old.body.html).toContain('Dear friend at ,');
    expect(old.body.html).toContain(`owner ${org.adminEmail}`);
    // A record of another module is not a record of this template's module.
    expect(
      (await admin.req('POST', `/api/templates/${ids.template}/preview`, { recordId: ids.contact })).status,
    ).toBe(404);
  });

  it('previews unsaved content, against a record or with sample values', async () => {
    const draft = {
      module: 'contacts',
      subject: '{{ contact.first_name }} at {{ contact.account.account_name }}',
      htmlSource: '<p>{{ contact.account_id }} — {{ contact.account.website }}</p>',
    };
    const withRecord = await admin.req('POST', '/api/templates/preview', { ...draft, recordId: ids.contact });
    expect(withRecord.status).toBe(200);
    expect(withRecord.body).toMatchObject({
      subject: 'Hank at Globex <Corp>',
      html: '<p>Globex &lt;Corp&gt; — https://globex.example</p>',
      textGenerated: true,
      sample: false,
    });
    const sample = await admin.req('POST', '/api/templates/preview', draft);
    expect(sample.body).toMatchObject({ subject: '[First Name] at [Account Name]', sample: true });
    const bad = await admin.req('POST', '/api/templates/preview', {
      ...draft,
      subject: '{{ contact.nope }}',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/Unknown merge field: contact\.nope/);
    const fields = await admin.req('GET', '/api/templates/merge-fields?module=contacts');
    expect(fields.body.recordKey).toBe('contact');
    expect(fields.body.fields).toContainEqual({
      path: 'contact.account.website',
      label: 'Website',
      group: 'Contact › Account',
    });
  });

  it('builds merge contexts scoped to the org: record, related records, owner, sender, org', async () => {
    const ctx = await buildMergeContext(t.deps, org.orgId, {
      moduleApiName: 'contacts',
      recordId: ids.contact,
      senderUserId: ids.Writer,
    });
    expect(ctx.contact).toMatchObject({
      first_name: 'Hank',
      last_name: 'Scorpio',
      name: 'Hank Scorpio',
      account_id: 'Globex <Corp>',
      phone: null,
      account: { account_name: 'Globex <Corp>', website: 'https://globex.example', industry: null },
    });
    expect(ctx.owner).toMatchObject({ email: org.adminEmail });
    expect(ctx.sender).toEqual({
      name: 'Writer',
      first_name: 'Writer',
      last_name: null,
      email: expect.stringMatching(/^writer-/),
    });
    expect(ctx.org).toEqual({ name: expect.stringMatching(/^Org /) });
    expect(JSON.stringify(ctx)).not.toMatch(/password|hash|token|secret/i);
    // Another org's record (or sender) is not found through this org.
    await expect(
      buildMergeContext(t.deps, org.orgId, {
        moduleApiName: 'leads',
        recordId: ids.otherLead,
        senderUserId: null,
      }),
    ).rejects.toThrow(/not found/);
    const many = await buildMergeContexts(t.deps, org.orgId, {
      moduleApiName: 'leads',
      recordIds: [ids.lead, ids.bareLead, ids.otherLead, 'not-a-uuid'],
      senderUserId: otherOrg.adminId,
    });
    expect([...many.keys()].sort()).toEqual([ids.lead, ids.bareLead].sort());
    expect(many.get(ids.lead)?.sender).toEqual({
      name: null,
      first_name: null,
      last_name: null,
      email: null,
    });
    // A reader who cannot see accounts gets no account (nor its name) in the merge.
    const hidden = await buildMergeContext(t.deps, org.orgId, {
      moduleApiName: 'contacts',
      recordId: ids.contact,
      senderUserId: ids.Writer,
      canRead: (m) => m !== 'accounts',
    });
    expect(hidden.contact).toMatchObject({ first_name: 'Hank', account_id: null, account: null });
    // Through renderForRecord the actor is the sender, and related modules it cannot read are left out.
    const tpl = await admin.req('POST', '/api/templates', {
      name: 'Contact intro',
      module: 'contacts',
      subject: 'For {{ contact.name }}',
      htmlSource: '<p>{{ contact.account.account_name | default: "your company" }} / {{ sender.name }}</p>',
    });
    expect(tpl.status).toBe(201);
    ids.contactTemplate = tpl.body.id;
    const writerActor = (await actorForUser(t.deps, { userId: ids.Writer }))!;
    const r = await renderForRecord(t.deps, writerActor, { templateId: tpl.body.id, recordId: ids.contact });
    expect(r).toMatchObject({
      subject: 'For Hank Scorpio',
      html: '<p>your company / Writer</p>',
      templateVersion: 1,
    });
  });

  it('lets readers list, read and preview templates, and only managers change them', async () => {
    expect((await writer.req('GET', '/api/templates')).body.map((x: { id: string }) => x.id).sort()).toEqual(
      [ids.template, ids.contactTemplate].sort(),
    );
    expect((await writer.req('GET', `/api/templates/${ids.template}`)).body.canManage).toBe(false);
    expect(
      (await writer.req('POST', `/api/templates/${ids.template}/preview`, { recordId: ids.lead })).status,
    ).toBe(200);
    const denied = [
      await writer.req('POST', '/api/templates', { ...leadTemplate }),
      await writer.req('PUT', `/api/templates/${ids.template}`, { subject: 'x', htmlSource: '<p>x</p>' }),
      await writer.req('PATCH', `/api/templates/${ids.template}`, { name: 'x' }),
      await writer.req('DELETE', `/api/templates/${ids.template}`),
      await writer.req('POST', '/api/template-folders', { name: 'Mine' }),
      await writer.req('PATCH', `/api/template-folders/${ids.folder}`, { name: 'Mine' }),
      await writer.req('DELETE', `/api/template-folders/${ids.folder}`),
    ];
    expect(denied.map((r) => r.status)).toEqual([403, 403, 403, 403, 403, 403, 403]);
    expect(denied[0].body.error.message).toMatch(/manage_templates/);
    expect((await admin.req('GET', `/api/templates/${ids.template}`)).body.currentVersion).toBe(2);
    // No read access to leads: the templates of leads do not exist for this user.
    expect((await outsider.req('GET', '/api/templates')).body).toEqual([]);
    expect((await outsider.req('GET', `/api/templates/${ids.template}`)).status).toBe(404);
    expect(
      (await outsider.req('POST', `/api/templates/${ids.template}/preview`, { recordId: ids.lead })).status,
    ).toBe(404);
    expect((await outsider.req('GET', '/api/templates/merge-fields?module=leads')).status).toBe(403);
  });

  it("keeps each org's templates, folders and records to itself", async () => {
    const own = await other.req('POST', '/api/templates', {
      name: 'B template',
      module: 'leads',
      subject: 'B {{ lead.last_name }}',
      htmlSource: '<p>{{ lead.company }}</p>',
    });
    expect(own.status).toBe(201);
    const tries = [
      await other.req('GET', `/api/templates/${ids.template}`),
      await other.req('GET', `/api/templates/${ids.template}/versions`),
      await other.req('GET', `/api/templates/${ids.template}/versions/1`),
      await other.req('POST', `/api/templates/${ids.template}/preview`, { recordId: ids.lead }),
      await other.req('POST', `/api/templates/${ids.template}/preview`, { recordId: ids.otherLead }),
      await other.req('PUT', `/api/templates/${ids.template}`, { subject: 'pwned', htmlSource: 'pwned' }),
      await other.req('PATCH', `/api/templates/${ids.template}`, { name: 'pwned' }),
      await other.req('DELETE', `/api/templates/${ids.template}`),
      await other.req('PATCH', `/api/template-folders/${ids.folder}`, { name: 'pwned' }),
      await other.req('DELETE', `/api/template-folders/${ids.folder}`),
      // B's own template merged with A's record, saved or not.
      await other.req('POST', `/api/templates/${own.body.id}/preview`, { recordId: ids.lead }),
      await other.req('POST', '/api/templates/preview', {
        module: 'leads',
        subject: '{{ lead.last_name }}',
        htmlSource: '{{ lead.company }}',
        recordId: ids.lead,
      }),
    ];
    for (const r of tries) {
      expect(r.status).toBe(404);
      expect(r.text).not.toMatch(/Lovelace|Engines|Welcome|Onboarding/);
    }
    expect(
      (await other.req('POST', '/api/templates', { ...leadTemplate, folderId: ids.folder })).status,
    ).toBe(400);
    const list = await other.req('GET', '/api/templates');
    expect(list.body.map((x: { id: string }) => x.id)).toEqual([own.body.id]);
    expect((await other.req('GET', '/api/template-folders')).body).toEqual([]);
    const a = await admin.req('GET', `/api/templates/${ids.template}`);
    expect(a.body).toMatchObject({ name: 'Welcome (leads)', currentVersion: 2 });
    expect((await admin.req('GET', '/api/template-folders')).body[0].name).toBe('Onboarding');
  });

  it('deletes softly: gone from the API, kept in the database', async () => {
    expect((await admin.req('DELETE', `/api/templates/${ids.contactTemplate}`)).status).toBe(204);
    expect((await admin.req('GET', `/api/templates/${ids.contactTemplate}`)).status).toBe(404);
    expect((await admin.req('DELETE', `/api/templates/${ids.contactTemplate}`)).status).toBe(404);
    expect((await admin.req('GET', '/api/templates')).body.map((x: { id: string }) => x.id)).toEqual([
      ids.template,
    ]);
    const row = await t.deps.db
      .selectFrom('templates')
      .select(['deleted_at'])
      .where('id', '=', ids.contactTemplate)
      .executeTakeFirstOrThrow();
    expect(row.deleted_at).toBeInstanceOf(Date);
    // Deleting a folder keeps its templates, outside any folder.
    const f = await admin.req('POST', '/api/template-folders', { name: 'Temp' });
    await admin.req('PATCH', `/api/templates/${ids.template}`, { folderId: f.body.id });
    expect((await admin.req('DELETE', `/api/template-folders/${f.body.id}`)).status).toBe(204);
    expect((await admin.req('GET', `/api/templates/${ids.template}`)).body.folderId).toBeNull();
  });
});
