import type { Deps } from '../deps.ts';

/**
 * Runs a write that must happen (its outcome is already known), retried with backoff while the
 * database is away (a restart or failover takes seconds to a minute or two); throws the last error
 * once `forMs` have passed. The write must be safe to run twice: its commit may land with the
 * answer lost.
 */
export async function retryWrite(
  deps: Pick<Deps, 'log'>,
  what: string,
  forMs: number,
  write: () => Promise<unknown>,
): Promise<void> {
  const since = Date.now();
  for (let wait = 250; ; wait = Math.min(wait * 2, 5000)) {
    try {
      await write();
      return;
    } catch (e) {
      if (Date.now() - since > forMs) throw e;
      deps.log.warn({ err: e }, `${what} failed; retrying`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Runs a claim: one statement that marks due rows as taken, under an id of its own. If it fails, it
 * may still have committed with its answer lost (a crash or a broken connection after the commit),
 * so `putBack` (those rows, found by the id, back to due) runs as a write that must happen; then the
 * claim's error is thrown.
 */
export async function claimOrPutBack<T>(
  deps: Pick<Deps, 'log'>,
  what: string,
  forMs: number,
  claim: () => Promise<T>,
  putBack: () => Promise<unknown>,
): Promise<T> {
  try {
    return await claim();
  } catch (e) {
    await retryWrite(deps, `putting back ${what} whose claim answer was lost`, forMs, putBack).catch((err) =>
      deps.log.error({ err }, `putting back ${what} whose claim answer was lost failed`),
    );
    throw e;
  }
}
