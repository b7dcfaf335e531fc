import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** What one fault test checked. `unknown`: recipients whose send was cut off mid-SMTP (never re-sent). */
export interface FaultTally {
  kills: number;
  recipients: number;
  lost: number;
  duplicated: number;
  unknown: number;
}

// Each fault test appends its counts here; scripts/test-faults.mjs (and `npm test`) sum them into
// the line "faults: <K> kills, <N> recipients, 0 lost, 0 duplicated, <U> unknown".
export const TALLY_FILE = resolve('test-results/faults.jsonl');

export function recordFaults(test: string, t: FaultTally): void {
  mkdirSync(dirname(TALLY_FILE), { recursive: true });
  appendFileSync(TALLY_FILE, `${JSON.stringify({ test, ...t })}\n`);
}
