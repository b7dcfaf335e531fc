import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One file at a time: the files share one database, and the workers their apps start (hit
    // judging, trigger actions, webhooks, the mass scheduler) act on every org's rows, so files
    // running together made each other's timing-sensitive tests flaky on 2 cores.
    fileParallelism: false,
  },
});
