/**
 * The Cloudflare adapter: a Worker's bindings (static assets, R2, Queues) -> createEdgeApi -> the same Hono app as
 * every runtime; plus the queue consumer of probes, activations and the scale-out re-index (src/reindex).
 * functions/worker.ts (infra/wrangler.jsonc's main) hands in the tfjs wasm module and exports the handler.
 *
 * Bindings (see docs/deployment.md):
 *   ASSETS            static assets (run_worker_first: nothing is served publicly), built by
 *                     infra/build-worker-assets.ts: /model/* (the default artifact: manifest.json, tokenizer.json,
 *                     weights-*.bin), /models/<id>/* (more artifacts), /models.json (the list), and
 *                     /index/snapshot.mfvi (optional memory-index snapshot for small corpora)
 *   DATA              R2 bucket: items, blobs, jobs, re-index progress (memory when unbound: tests, demos)
 *   MODELS            optional R2 bucket of published models (`manyfold publish --to s3://<bucket>/<MODEL_PREFIX>`
 *                     via R2's S3 endpoint): its catalogue's models are served first, re-read at each activation
 *   MODEL_PREFIX      key prefix of the catalogue in MODELS (default 'models')
 *   REINDEX_QUEUE     Cloudflare Queue producer; this Worker is also its consumer (and the DLQ's)
 *   JOBS_QUEUE        Cloudflare Queue producer of probes and activations ({kind, id}, src/api/background.ts); this
 *                     Worker is its consumer (one job per invocation) and its DLQ's (marks the job failed). Unbound:
 *                     jobs run in the isolate that took the request under ctx.waitUntil (cut 30 s after the response)
 *   MANYFOLD_API_KEYS secret, `key=scope+scope,...`
 *   MANYFOLD_INDEX    'memory' (default here: the snapshot asset, read-only: writes get 409 naming Pinecone) or
 *                     'pinecone' (+ PINECONE_API_KEY secret, PINECONE_HOST var; index.pinecone.indexes in
 *                     MANYFOLD_CONFIG for one index per embedding dimension)
 *   MANYFOLD_BACKEND  'auto' (wasm from the bundled module, else cpu), 'wasm' or 'cpu'
 * The tfjs wasm binary comes in as a compiled module (workerd cannot compile wasm from bytes; see src/edge/backend.ts).
 */
import { edgeRunner, failJob, isJobMessage, parseJobMessage, runJob } from '../api/background.js';
import { loadConfig } from '../config.js';
import { createEdgeApi, type EdgeApi } from '../edge/api.js';
import { initEdgeBackend, type EdgeBackendInfo } from '../edge/backend.js';
import { MemoryBucket, type BucketLike } from '../edge/bucket.js';
import { catalogThen } from '../edge/bucket-catalog.js';
import { registerReindexRoutes } from '../reindex/routes.js';
import { processQueueBatch, type QueueBatchLike, type QueueMessageLike, type ReindexDeps } from '../reindex/worker.js';
import { reindexDepsOf } from '../reindex/pipeline.js';

export interface WorkerEnv {
  ASSETS?: { fetch(input: Request | string): Promise<Response> };
  DATA?: BucketLike;
  MODELS?: BucketLike;
  MODEL_PREFIX?: string;
  REINDEX_QUEUE?: { send(body: unknown): Promise<void>; sendBatch(messages: { body: unknown }[]): Promise<void> };
  JOBS_QUEUE?: { send(body: unknown): Promise<void> };
  MANYFOLD_API_KEYS?: string;
  MANYFOLD_INDEX?: string;
  MANYFOLD_BACKEND?: string;
  MANYFOLD_CONFIG?: string;
  MANYFOLD_LOG_LEVEL?: string;
  PINECONE_API_KEY?: string;
  PINECONE_HOST?: string;
  [k: string]: unknown;
}

interface Isolate {
  edge: EdgeApi;
  backend: EdgeBackendInfo;
  coldStartMs: number;
  bucket: BucketLike;
}

async function asset(env: WorkerEnv, path: string): Promise<Response> {
  if (!env.ASSETS) throw new Error('the ASSETS binding is missing (see infra/wrangler.jsonc)');
  return env.ASSETS.fetch(new Request(`https://assets.local${path}`));
}

async function boot(env: WorkerEnv, wasmSimd: WebAssembly.Module, memoryBucket: BucketLike): Promise<Isolate> {
  const t0 = Date.now();
  const config = loadConfig({ env });
  // tensorflow and webgpu do not exist in workerd: auto is wasm from the bundled module, else cpu
  const kind = config.backend === 'cpu' || config.backend === 'wasm' ? config.backend : 'auto';
  const backend = await initEdgeBackend(kind, wasmSimd);
  const bucket = env.DATA ?? memoryBucket;
  const list = await asset(env, '/models.json');
  const folders = list.ok ? ((await list.json()) as string[]) : ['model'];
  const edge = await createEdgeApi({
    config,
    bucket,
    models: catalogThen(
      env.MODELS,
      env.MODEL_PREFIX ?? 'models',
      'r2://MODELS',
      folders.map((folder) => ({
        name: `assets:/${folder}/`,
        read: async (name: string) => {
          const r = await asset(env, `/${folder}/${name}`);
          if (!r.ok) throw new Error(`asset /${folder}/${name}: HTTP ${r.status}`);
          return new Uint8Array(await r.arrayBuffer());
        },
      })),
    ),
    snapshot: async () => {
      const r = await asset(env, '/index/snapshot.mfvi');
      return r.ok ? new Uint8Array(await r.arrayBuffer()) : null;
    },
    background: edgeRunner({ name: 'cloudflare-queues', send: env.JOBS_QUEUE ? (job) => env.JOBS_QUEUE!.send(job) : undefined }),
  });
  if (!env.JOBS_QUEUE) console.warn(JSON.stringify({ level: 40, msg: 'JOBS_QUEUE is not bound: probes and activations run under ctx.waitUntil, which ends 30 s after the response' }));
  // first forward pass compiles the kernels: do it here, not in the first search
  edge.api.service.active.encoder.embedTextsMatrix(['warm up']);
  const iso: Isolate = { edge, backend, coldStartMs: 0, bucket };
  registerReindexRoutes(edge.api.app, () => reindexDeps(iso, env));
  iso.coldStartMs = Date.now() - t0;
  return iso;
}

function reindexDeps(iso: Isolate, env: WorkerEnv): ReindexDeps {
  return reindexDepsOf(iso.edge, iso.bucket, env.REINDEX_QUEUE ? (msgs) => env.REINDEX_QUEUE!.sendBatch(msgs.map((body) => ({ body }))) : undefined);
}

export interface WorkerHandler {
  fetch(request: Request, env: WorkerEnv, ctx: unknown): Promise<Response>;
  queue(batch: QueueBatchLike, env: WorkerEnv): Promise<void>;
}

/**
 * The Worker's handler. One isolate boots once (model, index, backend) on its first request; a failed boot is
 * retried by the next one. Without a DATA binding, items live in one in-memory bucket per isolate (tests, demos).
 */
export function createWorker(wasmSimd: WebAssembly.Module): WorkerHandler {
  let isolate: Promise<Isolate> | undefined;
  const memoryBucket = new MemoryBucket();
  const getIsolate = (env: WorkerEnv): Promise<Isolate> =>
    (isolate ??= boot(env, wasmSimd, memoryBucket).catch((e) => {
      isolate = undefined;
      throw e;
    }));
  return {
    async fetch(request: Request, env: WorkerEnv, ctx: unknown): Promise<Response> {
      let iso: Isolate;
      try {
        iso = await getIsolate(env);
      } catch (e) {
        console.error(JSON.stringify({ level: 50, msg: 'worker failed to start', err: (e as Error).message }));
        return Response.json({ error: { code: 'not_ready', message: 'the worker failed to start; see its logs' } }, { status: 503 });
      }
      const url = new URL(request.url);
      if (url.pathname === '/edge/info') {
        return Response.json({ backend: iso.backend, coldStartMs: iso.coldStartMs, appStartMs: iso.edge.startMs, model: iso.edge.api.service.active.id, index: iso.edge.index.kind, jobs: iso.edge.api.background.name });
      }
      return iso.edge.api.app.fetch(request, env, ctx as never);
    },

    async queue(batch: QueueBatchLike, env: WorkerEnv): Promise<void> {
      const iso = await getIsolate(env);
      const jobs = batch.messages.filter((m) => isJobMessage(m.body));
      const reindex = batch.messages.filter((m) => !isJobMessage(m.body));
      for (const m of jobs) await consumeJob(iso, m, batch.queue.endsWith('-dlq'));
      if (reindex.length) await processQueueBatch({ queue: batch.queue, messages: reindex }, reindexDeps(iso, env));
    },
  };
}

/**
 * One probe / activation message: run to completion from the store and ack; retried (then dead-lettered) when it
 * did not finish. From the DLQ: the job is marked failed. One at a time: a job is minutes of CPU.
 */
async function consumeJob(iso: Isolate, m: QueueMessageLike, dead: boolean): Promise<void> {
  const job = parseJobMessage(m.body);
  try {
    if (dead) await failJob(iso.edge.api, job, `its queue deliveries were exhausted (${m.attempts} attempts)`);
    else await runJob(iso.edge.api, job);
    m.ack();
  } catch (e) {
    console.error(JSON.stringify({ level: 50, msg: 'job did not finish; will retry', job, attempts: m.attempts, err: (e as Error).message }));
    m.retry({ delaySeconds: Math.min(60, 2 ** Math.max(0, m.attempts - 1)) });
  }
}
