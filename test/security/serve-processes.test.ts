import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOGIN_LIMITS } from '../../src/http/login-throttle.ts';
import { createTestOrg, ownDatabase, type TestOrg } from '../support/app.ts';
import { type ParleyProcess, startParley } from '../support/processes.ts';

// What must hold across several `serve` processes behind a load balancer (two real ones here, on
// one PostgreSQL): brute-force sign-in is throttled per account and per client IP with one shared
// count, and revoking a session (sign-out, deactivation, a password change) or an API key takes
// effect at once on every process (nothing is cached per process).
let db: Awaited<ReturnType<typeof ownDatabase>>;
let serves: ParleyProcess[] = [];
let org: TestOrg;

beforeAll(async () => {
  db = await ownDatabase();
  const o = {
    databaseUrl: db.url,
    secret: 'test-secret-0123456789-0123456789-abcdef',
    // The tests speak for many clients through X-Forwarded-For, as a load balancer would.
    env: { PARLEY_TRUST_PROXY: '127.0.0.1' },
  };
  serves = await Promise.all([startParley('serve', o), startParley('serve', o)]);
  org = await createTestOrg(db.deps);
}, 180_000);
afterAll(async () => {
  await Promise.all(serves.map((s) => s.stop()));
  await db?.deps.close();
});

const ip = () => `198.51.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;

async function attempt(n: number, email: string, password: string, from: string) {
  const r = await fetch(`${serves[n % serves.length].url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': from },
    body: JSON.stringify({ email, password }),
  });
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() };
}

describe('login throttle', () => {
  it('refuses an account after its failed attempts, across serve processes, with Retry-After', async () => {
    const from = ip();
    for (let i = 0; i < LOGIN_LIMITS.account; i++)
      expect((await attempt(i, org.adminEmail, 'wrong', from)).status).toBe(401);
    // The next guess, on either process and from a fresh IP, is refused before the password is read.
    const refused = await attempt(1, org.adminEmail.toUpperCase(), org.adminPassword, ip());
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body).error.code).toBe('rate_limited');
    expect(Number(refused.retryAfter)).toBeGreaterThan(800);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(900);
    expect((await attempt(0, org.adminEmail, org.adminPassword, ip())).status).toBe(429);
  });

  it('refuses an IP guessing across many accounts', async () => {
    const from = ip();
    for (let i = 0; i < LOGIN_LIMITS.ip; i++)
      expect((await attempt(i, `nobody-${i}-${from}@test.example`, 'wrong', from)).status).toBe(401);
    const refused = await attempt(1, `another-${from}@test.example`, 'wrong', from);
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    // Another client is not held up.
    expect((await attempt(0, `another-${from}@test.example`, 'wrong', ip())).status).toBe(401);
  });

  it('lets no more than the allowance through when guesses arrive at once on both processes', async () => {
    const email = `burst-${randomBytes(4).toString('hex')}@test.example`;
    const statuses = await Promise.all(
      Array.from({ length: LOGIN_LIMITS.account * 2 }, (_, i) => attempt(i, email, 'wrong', ip())),
    );
    const count = (s: number) => statuses.filter((r) => r.status === s).length;
    expect({ wrongPassword: count(401), throttled: count(429) }).toEqual({
      wrongPassword: LOGIN_LIMITS.account,
      throttled: LOGIN_LIMITS.account,
    });
  });

  it('does not count successful sign-ins', async () => {
    const o = await createTestOrg(db.deps);
    const from = ip();
    for (let i = 0; i < LOGIN_LIMITS.account + 2; i++)
      expect((await attempt(i, o.adminEmail, o.adminPassword, from)).status).toBe(200);
  });
});

interface Session {
  cookie: string;
  csrf: string;
}

async function signIn(n: number, email: string, password: string): Promise<Session> {
  const r = await fetch(`${serves[n].url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  expect(r.status).toBe(200);
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0];
  return { cookie, csrf: (await r.json()).csrfToken };
}

async function call(n: number, method: string, path: string, auth: Session | string, body?: unknown) {
  const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (typeof auth === 'string') headers.authorization = `Bearer ${auth}`;
  else Object.assign(headers, { cookie: auth.cookie, 'x-csrf-token': auth.csrf });
  const r = await fetch(`${serves[n].url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: r.status === 204 ? undefined : await r.json() };
}

describe('revocation', () => {
  // Its own org: the throttle tests above locked the first one's admin out, as they should.
  let rorg: TestOrg;
  beforeAll(async () => {
    rorg = await createTestOrg(db.deps);
  });

  it('a sign-out on one serve process ends the session on the other at once', async () => {
    const s = await signIn(0, rorg.adminEmail, rorg.adminPassword);
    expect((await call(1, 'GET', '/api/me', s)).status).toBe(200);
    expect((await call(0, 'POST', '/api/auth/logout', s)).status).toBe(204);
    expect((await call(1, 'GET', '/api/me', s)).status).toBe(401);
    expect((await call(0, 'GET', '/api/me', s)).status).toBe(401);
  });

  it('a revoked API key is refused at once by every serve process', async () => {
    const s = await signIn(0, rorg.adminEmail, rorg.adminPassword);
    const k = await call(0, 'POST', '/api/api-keys', s, { name: 'revoke me' });
    expect(k.status).toBe(201);
    expect((await call(0, 'GET', '/api/me', k.body.key)).status).toBe(200);
    expect((await call(1, 'GET', '/api/me', k.body.key)).status).toBe(200);
    expect((await call(1, 'DELETE', `/api/api-keys/${k.body.id}`, s)).status).toBe(204);
    expect((await call(0, 'GET', '/api/me', k.body.key)).status).toBe(401);
    expect((await call(1, 'GET', '/api/me', k.body.key)).status).toBe(401);
  });

  it("deactivating a user ends the user's sessions and API keys everywhere at once", async () => {
    const admin = await signIn(0, rorg.adminEmail, rorg.adminPassword);
    const inv = await call(0, 'POST', '/api/users', admin, {
      email: `sam-${Date.now()}@test.example`,
      name: 'Sam',
      profileId: rorg.standardProfileId,
    });
    expect(inv.status).toBe(201);
    const accepted = await fetch(`${serves[1].url}/api/auth/accept-invite`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        token: new URL(inv.body.inviteUrl).searchParams.get('token'),
        password: 'sams-password-123',
      }),
    });
    expect(accepted.status).toBe(200);
    const sam = await signIn(1, inv.body.user.email, 'sams-password-123');
    const key = (await call(1, 'POST', '/api/api-keys', sam, { name: 'sam' })).body.key;
    expect((await call(0, 'GET', '/api/me', key)).status).toBe(200);
    expect(
      (await call(0, 'PATCH', `/api/users/${inv.body.user.id}`, admin, { status: 'deactivated' })).status,
    ).toBe(200);
    for (const n of [0, 1]) {
      expect((await call(n, 'GET', '/api/me', sam)).status).toBe(401);
      expect((await call(n, 'GET', '/api/me', key)).status).toBe(401);
    }
  });

  it('a password change signs out every other session at once, keeping the one that made it', async () => {
    const o = await createTestOrg(db.deps);
    const mine = await signIn(0, o.adminEmail, o.adminPassword);
    const stolen = await signIn(1, o.adminEmail, o.adminPassword);
    const r = await call(0, 'PATCH', '/api/me', mine, {
      currentPassword: o.adminPassword,
      newPassword: 'a-brand-new-password-42',
    });
    expect(r.status).toBe(200);
    expect((await call(1, 'GET', '/api/me', stolen)).status).toBe(401);
    expect((await call(0, 'GET', '/api/me', stolen)).status).toBe(401);
    expect((await call(1, 'GET', '/api/me', mine)).status).toBe(200);
  });
});
