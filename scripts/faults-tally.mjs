// Sums what the fault tests recorded (test/faults/tally.ts) into one line.
import { existsSync, readFileSync, rmSync } from 'node:fs';

export const TALLY_FILE = 'test-results/faults.jsonl';

export function clearFaultTally() {
  rmSync(TALLY_FILE, { force: true });
}

/** "faults: <K> kills, <N> recipients, <L> lost, <D> duplicated, <U> unknown", or null if no fault test ran. */
export function faultTallyLine() {
  if (!existsSync(TALLY_FILE)) return null;
  const t = { kills: 0, recipients: 0, lost: 0, duplicated: 0, unknown: 0 };
  for (const line of readFileSync(TALLY_FILE, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    for (const k of Object.keys(t)) t[k] += r[k] ?? 0;
  }
  return `faults: ${t.kills} kills, ${t.recipients} recipients, ${t.lost} lost, ${t.duplicated} duplicated, ${t.unknown} unknown`;
}
