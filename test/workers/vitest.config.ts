/**
 * The workerd suite: tests run INSIDE workerd (the Cloudflare Workers runtime) through
 * @cloudflare/vitest-pool-workers, against functions/worker.ts bundled with infra/wrangler.jsonc (env "test").
 * The Node side first builds the static assets (a tiny model + a memory-index snapshot, test/workers/fixture.ts).
 * Two projects, two Workers, because the index is fixed per deployment:
 *   workerd-memory    the default memory index: the snapshot serves reads, writes are refused (409)
 *   workerd-pinecone  MANYFOLD_INDEX=pinecone against the local Pinecone data-plane emulator
 *                     (test/index/pinecone-emulator.ts, a Node HTTP server started by pinecone-setup.ts, reached
 *                     from workerd over 127.0.0.1: a stand-in, not the live service): ingest and the queue-driven
 *                     re-index write there
 *   workerd-catalog   an R2 bucket MODELS (Miniflare's local R2) holding a published model and its catalogue
 *   workerd-jobs      probes and activations through the JOBS_QUEUE consumer, gallery in the Pinecone emulator
 * Run: npm run test:workers
 */
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { fileURLToPath } from 'node:url';
import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { buildTestAssets } from './fixture.js';

process.env.WRANGLER_SEND_METRICS ??= 'false';
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
const fixture = await buildTestAssets();

type Inject = (key: 'pineconeHost' | 'pineconeApiKey') => string;

function workerProject(
  name: string,
  include: string,
  bindings: (inject: Inject) => Record<string, string>,
  r2Buckets: string[] = [],
  globalSetup: string[] = [],
): TestProjectInlineConfiguration {
  return {
    plugins: [
      // a function: bindings may use values the project's global setup provides (the emulator's host)
      cloudflareTest(({ inject }) => ({
        wrangler: { configPath: fileURLToPath(new URL('../../infra/wrangler.jsonc', import.meta.url)), environment: 'test' },
        miniflare: { bindings: { TEST_MODEL_ID: fixture.model, ...bindings(inject as Inject) }, r2Buckets },
      })),
    ],
    resolve: {
      alias: {
        sharp: fileURLToPath(new URL('../../src/edge/sharp-shim.ts', import.meta.url)),
        // prom-client's default metrics need node:cluster, v8, perf_hooks: a minimal registry instead
        'prom-client': fileURLToPath(new URL('../../src/edge/prom-shim.ts', import.meta.url)),
      },
    },
    test: { name, include: [include], globalSetup, testTimeout: 120_000, hookTimeout: 120_000 },
  };
}

export default defineConfig({
  test: {
    // one Worker at a time: two Miniflare instances started together answered each other's asset reads with 500
    fileParallelism: false,
    projects: [
      workerProject('workerd-memory', 'test/workers/worker.test.ts', () => ({})),
      workerProject(
        'workerd-pinecone',
        'test/workers/reindex.test.ts',
        (inject) => ({ MANYFOLD_INDEX: 'pinecone', PINECONE_HOST: inject('pineconeHost'), PINECONE_API_KEY: inject('pineconeApiKey') }),
        [],
        [fileURLToPath(new URL('./pinecone-setup.ts', import.meta.url))],
      ),
      workerProject(
        'workerd-jobs',
        'test/workers/probe.test.ts',
        (inject) => ({ MANYFOLD_INDEX: 'pinecone', PINECONE_HOST: inject('pineconeHost'), PINECONE_API_KEY: inject('pineconeApiKey') }),
        [],
        [fileURLToPath(new URL('./pinecone-setup.ts', import.meta.url))],
      ),
      // MODELS: an R2 bucket of published models, seeded by the test: the Worker discovers its catalogue
      workerProject('workerd-catalog', 'test/workers/catalog.test.ts', () => ({ TEST_CANDIDATE_ID: fixture.candidate }), ['MODELS']),
    ],
  },
});
