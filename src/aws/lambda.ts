/**
 * The AWS adapter: Lambda's environment -> S3 buckets, SQS queues -> createEdgeApi -> the same Hono app as every
 * runtime, served through hono/aws-lambda (function URL / API Gateway v2 events); the SQS consumers of the
 * re-index pipeline and of probes / activations; the nightly trigger of the cron. functions/lambda.ts re-exports
 * the handlers sst.config.ts names.
 *
 * Environment (sst.config.ts links them):
 *   MANYFOLD_API_KEYS, PINECONE_API_KEY   secrets (SST Secret -> env)
 *   MANYFOLD_INDEX                        'pinecone' (production) or 'memory'; PINECONE_HOST
 *   MODEL_BUCKET + MODEL_PREFIX           S3 location of published models (`manyfold publish`, docs/deployment.md):
 *                                         the catalogue <prefix>/catalog.json lists them, re-read at every
 *                                         activation; MODEL_IDS (optional comma list, first = default) serves
 *                                         only those (without a catalogue: <prefix>/<id>/ as published by hand)
 *   MANYFOLD_S3_ENDPOINT                  optional S3 API endpoint (R2, MinIO, a local server) for both buckets
 *   DATA_BUCKET                           S3 bucket for items, blobs, jobs, re-index progress
 *   REINDEX_QUEUE_URL                     SQS queue of the re-index (DLQ by redrive policy)
 *   JOBS_QUEUE_URL                        SQS queue of probes and activations ({kind, id}, src/api/background.ts),
 *                                         consumed by `jobsConsumer` (a function of its own: a frozen API container
 *                                         runs nothing after its response); unset (local runs): in-process
 *   local runs/tests: MANYFOLD_MODEL_DIRS (comma list of artifact directories) and MANYFOLD_DATA_DIR instead
 *   of the buckets (no AWS SDK call at all).
 * The AWS SDK v3 (@aws-sdk/client-s3, a dependency; client-sqs ships with the Lambda runtime) is imported only
 * when a bucket or queue is configured. Credentials: the SDK's standard chain (the function's role on AWS).
 */
import { handle } from 'hono/aws-lambda';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../config.js';
import { initBackend } from '../engine/backend.js';
import { edgeRunner, failJob, parseJobMessage, runJob, type JobMessage } from '../api/background.js';
import { createEdgeApi, type EdgeApi } from '../edge/api.js';
import type { BucketLike } from '../edge/bucket.js';
import { artifactKey, catalogKey, catalogSources, normalizePrefix, readCatalog } from '../edge/bucket-catalog.js';
import type { EdgeModelSources } from '../edge/registry.js';
import { DirBucket } from '../node/dir-bucket.js';
import { registerReindexRoutes } from '../reindex/routes.js';
import { processMessage, recordDead, reindexDepsOf, type ReindexDeps, type ReindexMessage } from '../reindex/pipeline.js';
import type { S3Bucket } from './s3-bucket.js';
import { sqsSender } from './sqs.js';

type Env = Record<string, string | undefined>;

interface Boot {
  edge: EdgeApi;
  bucket: BucketLike;
  http: ReturnType<typeof handle>;
  deps: () => ReindexDeps;
  coldStartMs: number;
  backend: string;
}

let booting: Promise<Boot> | undefined;

async function s3Bucket(bucket: string, env: Env): Promise<S3Bucket> {
  const { S3Bucket } = await import('./s3-bucket.js');
  return new S3Bucket({ bucket, ...(env.MANYFOLD_S3_ENDPOINT ? { endpoint: env.MANYFOLD_S3_ENDPOINT } : {}) });
}

async function modelSources(env: Env): Promise<EdgeModelSources> {
  if (env.MANYFOLD_MODEL_DIRS) {
    return env.MANYFOLD_MODEL_DIRS.split(',').map((dir) => ({ name: dir, read: async (f: string) => new Uint8Array(await readFile(join(dir, f))) }));
  }
  if (!env.MODEL_BUCKET) throw new Error('set MODEL_BUCKET (+ MODEL_PREFIX; the bucket catalogue lists the models) or MANYFOLD_MODEL_DIRS');
  const b = await s3Bucket(env.MODEL_BUCKET, env);
  const prefix = normalizePrefix(env.MODEL_PREFIX ?? 'models');
  const ids = (env.MODEL_IDS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const label = b.url().replace(/\/$/, '');
  return async () => {
    const catalog = await readCatalog(b, prefix, label);
    if (catalog) return catalogSources(catalog, b, prefix, label, ids);
    if (!ids.length) throw new Error(`no model catalogue at ${b.url(catalogKey(prefix))}: publish a model (manyfold publish <artifact> --to s3://${env.MODEL_BUCKET}/${prefix}) or set MODEL_IDS`);
    // no catalogue: artifacts copied under <prefix>/<id>/ by hand, named by MODEL_IDS
    return ids.map((id) => ({
      name: b.url(artifactKey(prefix, id, '')),
      read: async (f: string) => {
        const o = await b.get(artifactKey(prefix, id, f));
        if (!o) throw new Error(`${b.url(artifactKey(prefix, id, f))} not found`);
        return new Uint8Array(await o.arrayBuffer());
      },
    }));
  };
}

export interface LambdaBootOptions {
  /** sends a probe / activation message instead of SQS at JOBS_QUEUE_URL (tests capture what the app sends) */
  sendJob?: (job: JobMessage) => Promise<void>;
}

export async function bootLambda(env: Env = process.env, opts: LambdaBootOptions = {}): Promise<Boot> {
  const t0 = Date.now();
  const config = loadConfig({ env });
  const backend = await initBackend(config.backend, { threads: config.threads });
  const bucket = env.MANYFOLD_DATA_DIR ? new DirBucket(env.MANYFOLD_DATA_DIR) : env.DATA_BUCKET ? await s3Bucket(env.DATA_BUCKET, env) : new DirBucket('/tmp/manyfold-data');
  const jobsToSqs = env.JOBS_QUEUE_URL ? await sqsSender<JobMessage>(env.JOBS_QUEUE_URL, 'job') : undefined;
  const sendJob = opts.sendJob ?? (jobsToSqs ? (job: JobMessage) => jobsToSqs([job]) : undefined);
  const edge = await createEdgeApi({ config, bucket, models: await modelSources(env), background: edgeRunner({ name: 'sqs', send: sendJob }) });
  const enqueue = env.REINDEX_QUEUE_URL ? await sqsSender<ReindexMessage>(env.REINDEX_QUEUE_URL, 're-index') : undefined;
  const deps = (): ReindexDeps => reindexDepsOf(edge, bucket, enqueue);
  registerReindexRoutes(edge.api.app, deps);
  const http = handle(edge.api.app);
  return { edge, bucket, http, deps, coldStartMs: Date.now() - t0, backend: `${backend.name}: ${backend.reason}` };
}

/** The booted function (one per container; tests use it to reach the re-index deps). */
export function boot(): Promise<Boot> {
  booting ??= bootLambda().catch((e) => {
    booting = undefined;
    throw e;
  });
  return booting;
}

/** Function URL / API Gateway (payload v2) handler. */
export async function handler(event: any, context?: any): Promise<any> {
  let b: Boot;
  try {
    b = await boot();
  } catch (e) {
    console.error(JSON.stringify({ level: 50, msg: 'lambda failed to start', err: (e as Error).message }));
    return { statusCode: 503, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'not_ready', message: 'the function failed to start; see its logs' } }) };
  }
  return b.http(event, context);
}

/**
 * SQS consumer of the re-index queue (ReportBatchItemFailures): failed messages return to the queue and, after
 * maxReceiveCount, go to the dead-letter queue, whose consumer (`reindexDeadLetter`) records them.
 */
export async function reindexConsumer(event: { Records: { messageId: string; body: string }[] }): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const b = await boot();
  const failures: { itemIdentifier: string }[] = [];
  await Promise.all(
    event.Records.map(async (r) => {
      try {
        await processMessage(b.deps(), JSON.parse(r.body) as ReindexMessage);
      } catch (e) {
        console.error(JSON.stringify({ level: 50, msg: 're-index batch failed; SQS will redeliver', messageId: r.messageId, err: (e as Error).message }));
        failures.push({ itemIdentifier: r.messageId });
      }
    }),
  );
  return { batchItemFailures: failures };
}

export async function reindexDeadLetter(event: { Records: { messageId: string; body: string; attributes?: Record<string, string> }[] }): Promise<void> {
  const b = await boot();
  for (const r of event.Records) await recordDead(b.bucket, JSON.parse(r.body) as ReindexMessage, `exhausted SQS receives (${r.attributes?.ApproximateReceiveCount ?? '?'})`);
}

type SqsEvent = { Records: { messageId: string; body: string; attributes?: Record<string, string> }[] };

/**
 * SQS consumer of probes and activations (ReportBatchItemFailures): each message's job runs to completion from the
 * store; a job that did not finish (or a malformed message) returns to the queue and, after maxReceiveCount, goes to
 * the dead-letter queue, whose consumer (`jobsDeadLetter`) marks the job failed.
 */
export async function consumeJobs(b: Boot, event: SqsEvent): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const failures: { itemIdentifier: string }[] = [];
  for (const r of event.Records) {
    try {
      await runJob(b.edge.api, parseJobMessage(r.body));
    } catch (e) {
      console.error(JSON.stringify({ level: 50, msg: 'job did not finish; SQS will redeliver', messageId: r.messageId, err: (e as Error).message }));
      failures.push({ itemIdentifier: r.messageId });
    }
  }
  return { batchItemFailures: failures };
}

export async function jobsConsumer(event: SqsEvent): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  return consumeJobs(await boot(), event);
}

export async function jobsDeadLetter(event: SqsEvent): Promise<void> {
  const b = await boot();
  for (const r of event.Records) await failJob(b.edge.api, parseJobMessage(r.body), `its SQS receives were exhausted (${r.attributes?.ApproximateReceiveCount ?? '?'})`);
}

/**
 * The nightly cron (sst.config.ts): training needs the GPU runner, so the cron dispatches the GitHub Actions
 * workflow .github/workflows/nightly.yml (workflow_dispatch) on the self-hosted GPU runner.
 * Env: GITHUB_REPOSITORY (owner/name), GITHUB_TOKEN (secret; actions:write), NIGHTLY_REF (default main).
 */
export async function nightlyTrigger(): Promise<{ dispatched: boolean; status: number }> {
  const repo = process.env.GITHUB_REPOSITORY;
  const token = process.env.GITHUB_TOKEN;
  if (!repo || !token) throw new Error('nightlyTrigger needs GITHUB_REPOSITORY and GITHUB_TOKEN');
  const r = await fetch(`https://api.github.com/repos/${repo}/actions/workflows/nightly.yml/dispatches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'content-type': 'application/json', 'user-agent': 'manyfold-nightly-cron' },
    body: JSON.stringify({ ref: process.env.NIGHTLY_REF ?? 'main' }),
  });
  if (r.status !== 204) throw new Error(`workflow dispatch failed: HTTP ${r.status}`);
  return { dispatched: true, status: r.status };
}
