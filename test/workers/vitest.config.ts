/**
 * The workerd suite: tests run INSIDE workerd (the Cloudflare Workers runtime) through
 * @cloudflare/vitest-pool-workers, against functions/worker.ts bundled with infra/wrangler.jsonc (env "test").
 * The Node side first builds the static assets (a tiny model + a memory-index snapshot, test/workers/fixture.ts).
 * Run: npm run test:workers
 */
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { buildTestAssets } from './fixture.js';

process.env.WRANGLER_SEND_METRICS ??= 'false';
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
const fixture = await buildTestAssets();

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: fileURLToPath(new URL('../../infra/wrangler.jsonc', import.meta.url)), environment: 'test' },
      miniflare: { bindings: { TEST_MODEL_ID: fixture.model } },
    }),
  ],
  resolve: {
    alias: {
      sharp: fileURLToPath(new URL('../../src/edge/sharp-shim.ts', import.meta.url)),
      // prom-client's default metrics need node:cluster, v8, perf_hooks: a minimal registry instead
      'prom-client': fileURLToPath(new URL('../../src/edge/prom-shim.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/workers/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
