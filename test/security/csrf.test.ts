import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, login, startTestApp } from '../support/app.ts';
import { scaled } from '../support/mode.ts';

// CSRF: a request riding on the session cookie alone (what a hostile page can make the browser send)
// changes nothing on any state-changing route: the session's own CSRF token must come with it.
let t: Awaited<ReturnType<typeof startTestApp>>;
let a: Client;
let other: Client;

// State-changing routes outside /api take no session: each is authorised by an unguessable token
// in its URL or body (tested in tokens.test.ts), so a forged cross-site request gains nothing.
const TOKEN_ROUTES = new Set([
  'POST /u/:token',
  'POST /hooks/bounces/:provider/:token',
  'POST /dropbox/verify',
  'POST /org-addresses/verify',
]);
// Sign-in itself has no session yet.
const PUBLIC = new Set(['POST /api/auth/login', 'POST /api/auth/accept-invite']);

beforeAll(async () => {
  t = await startTestApp();
  const org = await t.createOrg();
  a = await login(t.app, org.adminEmail, org.adminPassword);
  const org2 = await t.createOrg();
  other = await login(t.app, org2.adminEmail, org2.adminPassword);
});
afterAll(() => t.stop());

const fill = (url: string) =>
  url
    .replace(':module', 'leads')
    .replace(':kind', 'workflow')
    .replace(':provider', 'mailgun')
    .replace(':email', 'someone%40x.example')
    .replace(/:[a-zA-Z]+/g, () => randomUUID());

describe('CSRF', () => {
  it('refuses every state-changing route called with the session cookie but without its CSRF token', async () => {
    const changing = t.app.routeList.filter((r) => !['GET', 'HEAD', 'OPTIONS'].includes(r.method));
    const unaccounted = changing
      .map((r) => `${r.method} ${r.url}`)
      .filter((k) => !k.split(' ')[1].startsWith('/api/') && !TOKEN_ROUTES.has(k));
    // A new state-changing route outside /api must be token-authorised and listed above.
    expect(unaccounted).toEqual([]);
    const problems: string[] = [];
    let checked = 0;
    for (const r of changing) {
      const key = `${r.method} ${r.url}`;
      if (!r.url.startsWith('/api/') || PUBLIC.has(key)) continue;
      const url = fill(r.url);
      const variants: [string, Record<string, string>][] = [
        ['no token', { cookie: a.cookie }],
        ["another session's token", { cookie: a.cookie, 'x-csrf-token': other.csrf }],
        // Wider in full mode: the rarer shapes of a forged request.
        ...scaled<[string, Record<string, string>][]>(
          [],
          [
            ['empty token', { cookie: a.cookie, 'x-csrf-token': '' }],
            ['token in a cookie', { cookie: `${a.cookie}; x-csrf-token=${a.csrf}` }],
          ],
        ),
      ];
      for (const [what, headers] of variants) {
        const res = await t.app.inject({ method: r.method as 'POST', url, headers, payload: {} });
        checked++;
        if (res.statusCode !== 403 || res.json().error?.code !== 'csrf_failed')
          problems.push(`${key} (${what}) -> ${res.statusCode} ${res.body.slice(0, 200)}`);
      }
      // The same route reached through a percent-encoded path is refused all the same.
      const encoded = url.replace('/api/', '/%61pi/');
      const res = await t.app.inject({
        method: r.method as 'POST',
        url: encoded,
        headers: { cookie: a.cookie },
        payload: {},
      });
      checked++;
      if (res.statusCode !== 403 || res.json().error?.code !== 'csrf_failed')
        problems.push(`${r.method} ${encoded} -> ${res.statusCode}`);
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(scaled(200, 400));
  });

  it('accepts the same request with the token (the refusals above are the CSRF check)', async () => {
    const r = await a.req('POST', '/api/modules/leads/records', { data: { last_name: 'Csrf' } });
    expect(r.status).toBe(201);
    const forged = await t.app.inject({
      method: 'POST',
      url: '/api/modules/leads/records',
      headers: { cookie: a.cookie },
      payload: { data: { last_name: 'Forged' } },
    });
    expect(forged.statusCode).toBe(403);
    const list = await a.req('POST', '/api/modules/leads/records/query', {});
    const names = list.body.records.map((x: { data: { last_name: string } }) => x.data.last_name);
    expect(names).toContain('Csrf');
    expect(names).not.toContain('Forged');
  });

  it('sets the session cookie HttpOnly and SameSite', async () => {
    const org = await t.createOrg();
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: org.adminEmail, password: org.adminPassword },
    });
    const c = res.cookies.find((x) => x.name === 'parley_session');
    expect(c).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
  });
});
