#!/usr/bin/env node
// `npm run test:faults`: the reliability suites in full (more kills, longer loads, 10,000+ fuzz
// cases), then the fault tally alone on the last line. `npm test` runs the same files quickly.
import { spawnSync } from 'node:child_process';
import { faultTallyLine } from './faults-tally.mjs';

const suites = ['test/faults', 'test/scale', 'test/load', 'test/fuzz', 'test/security'];
// Paths under test/ given on the command line (`npm run test:faults -- test/faults/kills`) run
// instead of the suites: Vitest runs files matching any filter, so adding them ran everything.
const args = process.argv.slice(2);
const named = args.some((a) => /^(\.\/)?test\//.test(a));
const run = spawnSync(process.execPath, ['scripts/test.mjs', ...(named ? [] : suites), ...args], {
  stdio: 'inherit',
  env: { ...process.env, PARLEY_TEST_MODE: 'full' },
});
console.log(faultTallyLine() ?? 'faults: no fault test ran');
process.exit(run.status ?? 1);
