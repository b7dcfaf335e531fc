import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, createRecord } from '../src/crm/index.ts';
import { countAudience, listAudience, resolveAudience } from '../src/sending/audience.ts';
import { adminActor, createTestOrg, testDeps } from './support/app.ts';

const deps = testDeps();
let admin: Actor;
let ids: Record<string, string>;

beforeAll(async () => {
  const org = await createTestOrg(deps);
  admin = adminActor(org);
  const c = async (key: string, data: Record<string, unknown>) => {
    const r = await createRecord(deps, admin, 'contacts', { data: { last_name: key, ...data } });
    return [key, r.id] as const;
  };
  ids = Object.fromEntries(
    await Promise.all([
      c('ann', { email: 'ann@x.example', first_name: 'Ann' }),
      c('ann2', { email: 'ANN@x.example' }),
      c('bob', { email: 'bob@x.example' }),
      c('none', {}),
      c('optout', { email: 'out@x.example', email_opt_out: true }),
      c('supp', { email: 'gone@x.example' }),
      c('bad', { email: 'later@x.example' }),
    ]),
  );
  // Values are validated on write; a bad one can still come from older data.
  await sql`UPDATE records SET data = data || '{"email":"not an address"}' WHERE id = ${ids.bad}`.execute(
    deps.db,
  );
  await sql`INSERT INTO suppressions (org_id, email, reason) VALUES (${admin.orgId}, 'gone@x.example', 'hard_bounce')`.execute(
    deps.db,
  );
});
afterAll(() => deps.close());

describe('mass email audience', () => {
  it('counts recipients and every reason for leaving someone out', async () => {
    const a = await resolveAudience(deps, admin, 'contacts', {
      kind: 'criteria',
      criteria: { conditions: [{ field: 'last_name', op: 'is_not_empty' }] },
    });
    const counts = await countAudience(deps, a);
    expect(counts.recipients).toBe(2); // ann (once) and bob
    expect(counts.excluded).toEqual({
      no_address: 1,
      invalid_address: 1,
      opted_out: 1,
      suppressed: 1,
      duplicate: 1,
    });
    const dup = await listAudience(deps, a, 'duplicate', { limit: 10 });
    expect(dup.items).toHaveLength(1);
    expect(dup.items[0].email).toBe('ann@x.example');
    const who = await listAudience(deps, a, null, { limit: 1 });
    expect(who.next).not.toBeNull();
    const rest = await listAudience(deps, a, null, { limit: 1, after: who.next ?? undefined });
    expect(new Set([...who.items, ...rest.items].map((i) => i.email))).toEqual(
      new Set(['ann@x.example', 'bob@x.example']),
    );
  });

  it('takes selected records or a view, and a deal reaches its contact', async () => {
    const a = await resolveAudience(deps, admin, 'contacts', { kind: 'ids', ids: [ids.bob, ids.optout] });
    expect((await countAudience(deps, a)).recipients).toBe(1);
    const deal = await createRecord(deps, admin, 'deals', {
      data: { deal_name: 'Big', closing_date: '2027-01-01', contact_id: ids.bob },
    });
    const orphan = await createRecord(deps, admin, 'deals', {
      data: { deal_name: 'Lonely', closing_date: '2027-01-01' },
    });
    const d = await resolveAudience(deps, admin, 'deals', { kind: 'ids', ids: [deal.id, orphan.id] });
    const counts = await countAudience(deps, d);
    expect(counts.recipients).toBe(1);
    expect(counts.excluded.no_address).toBe(1);
    expect((await listAudience(deps, d, null, { limit: 5 })).items[0].email).toBe('bob@x.example');
  });

  it('refuses modules without an address, empty selections and users without Mass Email', async () => {
    await expect(
      resolveAudience(deps, admin, 'accounts', {
        kind: 'criteria',
        criteria: { conditions: [{ field: 'last_name', op: 'is_not_empty' }] },
      }),
    ).rejects.toThrow(/no email field/);
    await expect(resolveAudience(deps, admin, 'contacts', { kind: 'ids', ids: [] })).rejects.toThrow(
      /at least one/,
    );
    const clerk: Actor = { ...admin, isAdmin: false, permissions: { modules: { contacts: { read: true } } } };
    await expect(resolveAudience(deps, clerk, 'contacts', { kind: 'ids', ids: [ids.bob] })).rejects.toThrow(
      /mass email/,
    );
  });
});
