import { afterAll, describe, expect, it } from 'vitest';
import { createTestOrg, testDeps } from '../../test/support/app.ts';
import { confirmAddress, newConfirmationToken, VERIFY_DAYS } from './address-confirmation.ts';

const deps = testDeps();
afterAll(() => deps.close());

async function pendingAddress(table: 'org_addresses' | 'dropbox_senders', sentDaysAgo: number) {
  const o = await createTestOrg(deps);
  const { token, hash } = newConfirmationToken();
  const email = `${table}-${hash.slice(0, 8)}@example.com`;
  const sent = new Date(Date.now() - sentDaysAgo * 86_400_000);
  await deps.db
    .insertInto(table)
    .values({ org_id: o.orgId, email, verify_token_hash: hash, verify_sent_at: sent })
    .execute();
  return { token, email };
}

const verifiedAt = async (table: 'org_addresses' | 'dropbox_senders', email: string) =>
  await deps.db
    .selectFrom(table)
    .select(['verified_at', 'verify_token_hash'])
    .where('email', '=', email)
    .executeTakeFirstOrThrow();

describe('confirmation links', () => {
  for (const table of ['org_addresses', 'dropbox_senders'] as const) {
    it(`${table}: a fresh link verifies the address once; a second use is not found`, async () => {
      const { token, email } = await pendingAddress(table, 1);
      await expect(confirmAddress(deps, table, token)).resolves.toEqual({ email });
      expect(await verifiedAt(table, email)).toMatchObject({ verify_token_hash: null });
      expect((await verifiedAt(table, email)).verified_at).toBeInstanceOf(Date);
      await expect(confirmAddress(deps, table, token)).rejects.toMatchObject({ code: 'not_found' });
    });

    it(`${table}: an expired link is refused and leaves the address unverified`, async () => {
      const { token, email } = await pendingAddress(table, VERIFY_DAYS + 1);
      await expect(confirmAddress(deps, table, token)).rejects.toThrow(/expired/);
      expect((await verifiedAt(table, email)).verified_at).toBeNull();
    });
  }

  it('a malformed token is refused before any lookup', async () => {
    await expect(confirmAddress(deps, 'org_addresses', 'short')).rejects.toMatchObject({
      code: 'validation_failed',
    });
    await expect(
      confirmAddress(deps, 'org_addresses', "x'; DROP TABLE orgs; --".padEnd(30, 'x')),
    ).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });
});
