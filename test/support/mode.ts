// The reliability suites (test/faults, test/scale, test/load, test/fuzz, test/security) run twice:
// quick inside `npm test` (CI), and in full with `npm run test:faults` (PARLEY_TEST_MODE=full).
export const FULL = process.env.PARLEY_TEST_MODE === 'full';

/** The quick figure inside `npm test`, the full one under `npm run test:faults`. */
export function scaled<T>(quick: T, full: T): T {
  return FULL ? full : quick;
}
