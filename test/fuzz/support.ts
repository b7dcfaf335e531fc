import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { expect } from 'vitest';
import { FULL, scaled } from '../support/mode.ts';

// Shared settings of the fuzz suites. The seed is fixed so a failure reproduces, and printed so a
// run with another seed (PARLEY_FUZZ_SEED) can be replayed; fast-check also prints seed and path
// of a failing case.

export const FUZZ_SEED = Number(process.env.PARLEY_FUZZ_SEED ?? 20_261_130);

/** Per fuzz test: the quick run well inside a minute, the full run (10,000+ cases) within ten. */
export const FUZZ_TIMEOUT = scaled(90_000, 600_000);

/** At least 10,000 cases in full mode; `quick` inside `npm test`. */
export const cases = (quick: number, full = 10_000) => scaled(quick, Math.max(full, 10_000));

export function fuzzOptions<T>(name: string, numRuns: number, timeoutMs: number): fc.Parameters<T> {
  console.log(`fuzz ${name}: ${numRuns} cases, seed ${FUZZ_SEED}${FULL ? ' (full)' : ' (quick)'}`);
  // timeout fails an async case that does not settle; `within` below catches a synchronous hang
  // (a case that blocks the event loop cannot be interrupted, but its time can be measured).
  return { seed: FUZZ_SEED, numRuns, timeout: timeoutMs, endOnFailure: true };
}

/** Runs one case and fails it when it took longer than limitMs (a slow path is a hang in waiting). */
export async function within<R>(limitMs: number, what: string, fn: () => R | Promise<R>): Promise<R> {
  const t0 = performance.now();
  const out = await fn();
  const ms = performance.now() - t0;
  expect(ms, `${what} took ${Math.round(ms)} ms (limit ${limitMs} ms)`).toBeLessThan(limitMs);
  return out;
}

/** Byte-level mutations of a text: flips, cuts, duplications and insertions of hostile bytes. */
export function mutated(source: fc.Arbitrary<string>, hostile: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const edit = fc.oneof(
    fc.record({ k: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('cut' as const), at: fc.nat(), len: fc.nat(200) }),
    fc.record({ k: fc.constant('dup' as const), at: fc.nat(), len: fc.nat(400) }),
    fc.record({ k: fc.constant('insert' as const), at: fc.nat(), text: hostile }),
    fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
  );
  return fc.tuple(source, fc.array(edit, { maxLength: 6 })).map(([s, edits]) => {
    let out = s;
    for (const e of edits) {
      const at = out.length ? e.at % (out.length + 1) : 0;
      if (e.k === 'flip') out = out.slice(0, at) + String.fromCharCode(e.byte) + out.slice(at + 1);
      else if (e.k === 'cut') out = out.slice(0, at) + out.slice(at + e.len);
      else if (e.k === 'dup')
        out = out.slice(0, at + e.len) + out.slice(at, at + e.len) + out.slice(at + e.len);
      else if (e.k === 'insert') out = out.slice(0, at) + e.text + out.slice(at);
      else out = out.slice(0, at);
    }
    return out;
  });
}
