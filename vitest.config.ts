import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/workers runs inside workerd with its own config (npm run test:workers)
    exclude: ['test/workers/**', '**/node_modules/**'],
    // tfjs backends are process-global singletons: isolate test files in forked processes.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
