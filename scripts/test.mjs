#!/usr/bin/env node
// `npm test`: the whole suite (unit, API, database and browser tests) in one Vitest run, then the
// totals alone on the last line as "N passed, N failed" (what CI reads).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { clearFaultTally, faultTallyLine } from './faults-tally.mjs';

mkdirSync('test-results', { recursive: true });
const report = 'test-results/vitest.json';
rmSync(report, { force: true });
clearFaultTally();
const args = [
  'vitest',
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
];
const run = spawnSync('npx', args, { stdio: 'inherit' });
let passed = 0;
let failed = 0;
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests;
  // A file that fails to load has no failed test in it, but it is a failure all the same.
  const brokenFiles = (r.testResults ?? []).filter(
    (f) => f.status === 'failed' && !f.assertionResults?.some((a) => a.status === 'failed'),
  ).length;
  failed = r.numFailedTests + brokenFiles;
} else {
  failed = 1; // vitest did not even report: count the run itself as a failure
}
const faults = faultTallyLine();
if (faults) console.log(`\n${faults}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
