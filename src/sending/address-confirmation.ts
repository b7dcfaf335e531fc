import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';

// Confirming that someone owns an address (an org's sending address, a BCC dropbox sender): a link
// with a random token is mailed to it. Only the token's hash is stored; the link works once and
// for VERIFY_DAYS days.

export const VERIFY_DAYS = 7;

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export function newConfirmationToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

/** Opens a confirmation link (no sign-in needed: the token is the proof) and marks the address verified. */
export async function confirmAddress(
  deps: Deps,
  table: 'org_addresses' | 'dropbox_senders',
  token: string,
): Promise<{ email: string }> {
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{20,100}$/.test(token))
    throw invalid('This confirmation link is not valid');
  const row = (
    await sql<{ id: string; email: string; verify_sent_at: Date | null }>`
      SELECT id, email, verify_sent_at FROM ${sql.table(table)}
      WHERE verify_token_hash = ${hashToken(token)}`.execute(deps.db)
  ).rows[0];
  if (!row) throw notFound('Confirmation link (it may have been used already or replaced by a newer one)');
  const now = deps.clock.now();
  if (!row.verify_sent_at || now.getTime() - row.verify_sent_at.getTime() > VERIFY_DAYS * 86_400_000)
    throw new AppError(
      'validation_failed',
      'This confirmation link has expired; ask your administrator to send a new one',
    );
  const touch = table === 'org_addresses' ? sql`, updated_at = ${now}` : sql``;
  await sql`UPDATE ${sql.table(table)} SET verified_at = ${now}, verify_token_hash = NULL ${touch}
    WHERE id = ${row.id}`.execute(deps.db);
  return { email: row.email };
}
