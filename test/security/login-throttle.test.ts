import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOGIN_LIMITS } from '../../src/http/login-throttle.ts';
import { createTestOrg, ownDatabase, type TestOrg } from '../support/app.ts';
import { type ParleyProcess, startParley } from '../support/processes.ts';

// Brute-force sign-in is throttled per account and per client IP, and the count lives in
// PostgreSQL: guesses spread over two `serve` processes share one allowance.
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
