import { sql } from 'kysely';
import type { Deps } from '../deps.ts';

// Sign-in attempts counted in PostgreSQL, per account and per client IP, so the limit holds however
// many `serve` processes share the load (an in-memory counter per process multiplies it).
export const LOGIN_WINDOW_MS = 15 * 60_000;
export const LOGIN_LIMITS = { account: 10, ip: 30 };

export interface LoginAttempt {
  /** Seconds until the spent allowance comes back; undefined when the attempt may go ahead. */
  retryAfter?: number;
  taken: { key: string; windowStart: Date }[];
}

export function loginThrottleKeys(email: string, ip: string) {
  return { account: `account:${email.trim().toLowerCase().slice(0, 320)}`, ip: `ip:${ip}` };
}

/**
 * Counts one attempt against the account and the IP before the password is checked, atomically,
 * so concurrent guesses on several processes cannot all slip under the limit.
 */
export async function takeLoginAttempt(
  deps: Deps,
  keys: { account: string; ip: string },
): Promise<LoginAttempt> {
  const now = deps.clock.now();
  const expired = new Date(now.getTime() - LOGIN_WINDOW_MS);
  // Rows are locked in VALUES order (account, then IP) in every statement: no deadlock.
  const rows = await sql<{ key: string; window_start: Date; attempts: number }>`
    INSERT INTO login_attempts AS a (key, window_start, attempts)
    VALUES (${keys.account}, ${now}, 1), (${keys.ip}, ${now}, 1)
    ON CONFLICT (key) DO UPDATE SET
      attempts = CASE WHEN a.window_start <= ${expired} THEN 1 ELSE a.attempts + 1 END,
      window_start = CASE WHEN a.window_start <= ${expired} THEN ${now} ELSE a.window_start END
    RETURNING key, window_start, attempts`.execute(deps.db);
  let wait = 0;
  for (const r of rows.rows) {
    const max = r.key.startsWith('ip:') ? LOGIN_LIMITS.ip : LOGIN_LIMITS.account;
    if (r.attempts > max) wait = Math.max(wait, r.window_start.getTime() + LOGIN_WINDOW_MS - now.getTime());
  }
  return {
    retryAfter: wait > 0 ? Math.max(1, Math.ceil(wait / 1000)) : undefined,
    taken: rows.rows.map((r) => ({ key: r.key, windowStart: r.window_start })),
  };
}

/** A successful sign-in hands its attempt back: only failures use up the allowance. */
export async function giveBackLoginAttempt(deps: Deps, attempt: LoginAttempt) {
  for (const t of attempt.taken)
    await deps.db
      .updateTable('login_attempts')
      .set({ attempts: sql`greatest(attempts - 1, 0)` })
      .where('key', '=', t.key)
      .where('window_start', '=', t.windowStart)
      .execute();
}

export async function purgeLoginAttempts(deps: Deps) {
  const r = await deps.db
    .deleteFrom('login_attempts')
    .where('window_start', '<=', new Date(deps.clock.now().getTime() - LOGIN_WINDOW_MS))
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
