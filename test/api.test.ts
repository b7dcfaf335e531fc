import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, login, startTestApp } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let admin: Client;
let org: Awaited<ReturnType<typeof t.createOrg>>;

beforeAll(async () => {
  t = await startTestApp();
  org = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
});
afterAll(() => t.stop());

describe('auth', () => {
  it('refuses a wrong password and an unknown email alike', async () => {
    for (const email of [org.adminEmail, 'nobody@test.example']) {
      const r = await t.app.inject({
        method: 'POST',
        url: '/api/auth/login',
        payload: { email, password: 'wrong-password' },
      });
      expect(r.statusCode).toBe(401);
      expect(r.json().error).toMatchObject({ code: 'unauthenticated', message: 'Wrong email or password' });
    }
  });

  it('sets an httpOnly SameSite session cookie and never exposes the password hash', async () => {
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: org.adminEmail, password: org.adminPassword },
    });
    const c = r.cookies.find((x) => x.name === 'parley_session')!;
    expect(c.httpOnly).toBe(true);
    expect(c.sameSite).toBe('Lax');
    expect(r.body).not.toContain('argon2');
    expect(r.json().user.email).toBe(org.adminEmail);
  });

  it('needs the CSRF token on state-changing requests with a session', async () => {
    const r = await admin.req(
      'POST',
      '/api/modules/leads/records',
      { data: { last_name: 'X' } },
      { 'x-csrf-token': 'forged' },
    );
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('csrf_failed');
    const ok = await admin.req('POST', '/api/modules/leads/records', { data: { last_name: 'X' } });
    expect(ok.status).toBe(201);
  });

  it('answers 401 without credentials', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/api/me' });
    expect(r.statusCode).toBe(401);
  });

  it('API keys work without CSRF and stop working the moment they are revoked', async () => {
    const k = await admin.req('POST', '/api/api-keys', { name: 'integration' });
    expect(k.status).toBe(201);
    const auth = { authorization: `Bearer ${k.body.key}` };
    const ok = await t.app.inject({
      method: 'POST',
      url: '/api/modules/leads/records',
      headers: auth,
      payload: { data: { last_name: 'ByKey' } },
    });
    expect(ok.statusCode).toBe(201);
    // "Last used" is set on first use and kept to the minute (not rewritten on every call).
    const lastUsed = async () =>
      (await admin.req('GET', '/api/api-keys')).body.find((x: { id: string }) => x.id === k.body.id)
        .lastUsedAt;
    const first = await lastUsed();
    expect(first).toBeTruthy();
    await t.app.inject({ method: 'GET', url: '/api/me', headers: auth });
    expect(await lastUsed()).toBe(first);
    expect((await admin.req('GET', '/api/api-keys')).text).not.toContain(k.body.key);
    expect((await admin.req('DELETE', `/api/api-keys/${k.body.id}`)).status).toBe(204);
    const after = await t.app.inject({ method: 'GET', url: '/api/me', headers: auth });
    expect(after.statusCode).toBe(401);
  });

  it('invites a user who sets a password; deactivation ends their session at once', async () => {
    const inv = await admin.req('POST', '/api/users', {
      email: `sam-${Date.now()}@test.example`,
      name: 'Sam',
      profileId: org.standardProfileId,
    });
    expect(inv.status).toBe(201);
    const token = new URL(inv.body.inviteUrl).searchParams.get('token');
    const acc = await t.app.inject({
      method: 'POST',
      url: '/api/auth/accept-invite',
      payload: { token, password: 'a-good-password' },
    });
    expect(acc.statusCode).toBe(200);
    const sam = await login(t.app, inv.body.user.email, 'a-good-password');
    expect((await sam.req('GET', '/api/me')).status).toBe(200);
    // Standard profile: not an admin.
    expect((await sam.req('POST', '/api/modules', { singularLabel: 'P', pluralLabel: 'Ps' })).status).toBe(
      403,
    );
    expect(
      (await admin.req('PATCH', `/api/users/${inv.body.user.id}`, { status: 'deactivated' })).status,
    ).toBe(200);
    expect((await sam.req('GET', '/api/me')).status).toBe(401);
    // The invitation cannot be used twice.
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/auth/accept-invite',
      payload: { token, password: 'another-password' },
    });
    expect(again.statusCode).toBe(404);
  });

  it('throttles repeated failed logins', async () => {
    let last = 0;
    for (let i = 0; i < 12; i++) {
      const r = await t.app.inject({
        method: 'POST',
        url: '/api/auth/login',
        remoteAddress: '10.9.9.9',
        payload: { email: 'x@test.example', password: 'nope' },
      });
      last = r.statusCode;
    }
    expect(last).toBe(429);
  });
});

describe('records', () => {
  it('validates values per type with errors that name the field', async () => {
    const r = await admin.req('POST', '/api/modules/leads/records', {
      data: { email: 'not-an-email', annual_revenue: 'lots', lead_status: 'Bogus', shoe_size: 4 },
    });
    expect(r.status).toBe(400);
    const paths = r.body.error.details.map((d: { path: string }) => d.path).sort();
    expect(paths).toEqual(['annual_revenue', 'email', 'last_name', 'lead_status', 'shoe_size']);
  });

  it('creates, reads, edits and deletes a record, with lookups and related lists', async () => {
    const acc = await admin.req('POST', '/api/modules/accounts/records', {
      data: { account_name: 'Globex' },
    });
    const con = await admin.req('POST', '/api/modules/contacts/records', {
      data: {
        last_name: 'Simpson',
        first_name: 'Homer',
        email: 'Homer@Globex.example',
        account_id: acc.body.id,
      },
    });
    expect(con.status).toBe(201);
    expect(con.body.lookups.account_id).toEqual({ id: acc.body.id, displayName: 'Globex' });
    const detail = await admin.req('GET', `/api/modules/accounts/records/${acc.body.id}`);
    const contacts = detail.body.related.find((x: { module: string }) => x.module === 'contacts');
    expect(contacts.records.map((x: { id: string }) => x.id)).toEqual([con.body.id]);
    const upd = await admin.req('PATCH', `/api/modules/contacts/records/${con.body.id}`, {
      data: { title: 'Safety Inspector' },
    });
    expect(upd.body.data).toMatchObject({ title: 'Safety Inspector', last_name: 'Simpson' });
    const bad = await admin.req('PATCH', `/api/modules/contacts/records/${con.body.id}`, {
      data: { account_id: con.body.id },
    });
    expect(bad.status).toBe(400); // a contact is not an account
    expect((await admin.req('DELETE', `/api/modules/contacts/records/${con.body.id}`)).status).toBe(204);
    expect((await admin.req('GET', `/api/modules/contacts/records/${con.body.id}`)).status).toBe(404);
  });

  it('pages with a keyset cursor through every record exactly once', async () => {
    const mod = await admin.req('POST', '/api/modules', { singularLabel: 'Widget', pluralLabel: 'Widgets' });
    const api = mod.body.apiName;
    await admin.req('POST', `/api/modules/${api}/fields`, { label: 'Size', type: 'number' });
    for (let i = 0; i < 23; i++)
      await admin.req('POST', `/api/modules/${api}/records`, {
        data: { name: `W${i}`, size: i % 5 === 0 ? null : i % 7 },
      });
    // One import batch: rows share a created_at down to the microsecond's neighbourhood.
    const csv = ['Name,Size', ...Array.from({ length: 9 }, (_, i) => `I${i},${i % 3}`)].join('\n');
    const imp = await admin.req('POST', `/api/modules/${api}/import`, {
      csv,
      mapping: { Name: 'name', Size: 'size' },
    });
    expect(imp.body.imported).toBe(9);
    for (const sort of [
      undefined,
      { field: 'size', dir: 'asc' },
      { field: 'size', dir: 'desc' },
      { field: 'name', dir: 'asc' },
    ]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { body: { records: { id: string }[]; nextCursor: string | null } } = await admin.req(
          'POST',
          `/api/modules/${api}/records/query`,
          { sort, limit: 4, cursor },
        );
        seen.push(...page.body.records.map((r) => r.id));
        cursor = page.body.nextCursor;
      } while (cursor);
      expect(seen.length).toBe(32);
      expect(new Set(seen).size).toBe(32);
    }
  });

  it('mass-updates one field over all results of a filter', async () => {
    const tag = `mu${Date.now()}`;
    for (let i = 0; i < 5; i++)
      await admin.req('POST', '/api/modules/leads/records', {
        data: { last_name: `${tag}-${i}`, company: i < 3 ? tag : 'other' },
      });
    const criteria = { conditions: [{ field: 'company', op: 'is', value: tag }] };
    const r = await admin.req('POST', '/api/modules/leads/records/mass-update', {
      criteria,
      field: 'lead_status',
      value: 'Contacted',
    });
    expect(r.body.updated).toBe(3);
    const c = await admin.req('POST', '/api/modules/leads/records/count', {
      criteria: {
        conditions: [
          { field: 'company', op: 'is', value: tag },
          { field: 'lead_status', op: 'is', value: ['Contacted'] },
        ],
      },
    });
    expect(c.body.count).toBe(3);
    const bad = await admin.req('POST', '/api/modules/leads/records/mass-update', {
      criteria,
      field: 'lead_status',
      value: 'Nope',
    });
    expect(bad.status).toBe(400);
  });

  it('explains invalid criteria by condition number', async () => {
    const r = await admin.req('POST', '/api/modules/leads/records/query', {
      criteria: {
        conditions: [
          { field: 'company', op: 'is', value: 'a' },
          { field: 'annual_revenue', op: 'contains', value: 'x' },
        ],
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_criteria');
    expect(JSON.stringify(r.body.error)).toMatch(/condition 2/);
  });
});

describe('views', () => {
  it('saves a view with criteria, columns and sort, and lists records through it', async () => {
    const tag = `v${Date.now()}`;
    await admin.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'B', company: tag, annual_revenue: 10 },
    });
    await admin.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'A', company: tag, annual_revenue: 20 },
    });
    const v = await admin.req('POST', '/api/modules/leads/views', {
      name: 'Tagged',
      criteria: { conditions: [{ field: 'company', op: 'is', value: tag }] },
      columns: ['last_name', 'annual_revenue', 'owner'],
      sort: { field: 'annual_revenue', dir: 'desc' },
    });
    expect(v.status).toBe(201);
    const q = await admin.req('POST', '/api/modules/leads/records/query', { viewId: v.body.id });
    expect(q.body.records.map((r: { data: { last_name: string } }) => r.data.last_name)).toEqual(['A', 'B']);
    const views = await admin.req('GET', '/api/modules/leads/views');
    expect(views.body.map((x: { systemKey: string | null }) => x.systemKey)).toEqual(
      expect.arrayContaining(['all', 'mine']),
    );
    const sys = views.body.find((x: { systemKey: string }) => x.systemKey === 'all');
    expect((await admin.req('DELETE', `/api/views/${sys.id}`)).status).toBe(403);
    const badView = await admin.req('POST', '/api/modules/leads/views', { name: 'Bad', columns: ['nope'] });
    expect(badView.status).toBe(400);
  });
});

describe('CSV import and export', () => {
  it('imports good rows, reports bad ones by line, and exports safely', async () => {
    const tag = `imp${Date.now()}`;
    const csv = [
      'First Name,Last Name,Email,Annual Revenue,Company',
      `Ann,Lee,ann@x.example,1000,${tag}`,
      `Bob,,bob@x.example,5,${tag}`,
      `Cy,Diaz,not-an-email,5,${tag}`,
      `"=HYPERLINK(""http://evil"")",Evil,e@x.example,"1,500",${tag}`,
    ].join('\n');
    const preview = await admin.req('POST', '/api/modules/leads/import/preview', { csv });
    expect(preview.body.suggestedMapping).toMatchObject({
      'First Name': 'first_name',
      Email: 'email',
      'Annual Revenue': 'annual_revenue',
    });
    const r = await admin.req('POST', '/api/modules/leads/import', {
      csv,
      mapping: preview.body.suggestedMapping,
    });
    expect(r.body.imported).toBe(2);
    expect(r.body.rejected.map((x: { line: number }) => x.line)).toEqual([3, 4]);
    expect(r.body.rejected[0].reason).toMatch(/Last Name is required/);
    const criteria = encodeURIComponent(
      JSON.stringify({ conditions: [{ field: 'company', op: 'is', value: tag }] }),
    );
    const exp = await admin.req(
      'GET',
      `/api/modules/leads/export?criteria=${criteria}&columns=first_name,last_name,annual_revenue`,
    );
    expect(exp.status).toBe(200);
    const lines = exp.text.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(exp.text).toContain(`"'=HYPERLINK(""http://evil"")"`);
    expect(exp.text).toContain(',1500');
  });
});
