/**
 * Background jobs on Lambda: a probe (and an activation) started through the function-URL handler is only queued by
 * the API function (a Lambda is frozen once it has answered) and runs to completion in the SQS consumer
 * (functions/lambda.ts consumeJobs, the body of jobsConsumer), booted separately as AWS runs it: a function of its
 * own sharing only the store and the index. SQS itself is stood in by a capturing sender: the message bodies the app
 * would send with SendMessageBatch are delivered to the consumer as the SQS event AWS would build. Pinecone: the
 * local emulator (the edge's memory index takes no writes); the store (S3 on AWS) is a shared temp directory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failJob, type JobMessage } from '../../src/api/background.js';
import { PineconeEmulator } from '../index/pinecone-emulator.js';
import { KEY_SPEC, KEYS, makeModels, png, rmrf, tmp, waitFor } from '../api/helpers.js';
import { GALLERY } from '../fixtures/gallery.js';
import { sqsEvent, urlEvent } from './events.js';

type Lambda = typeof import('../../functions/lambda.js');
type Boot = Awaited<ReturnType<Lambda['bootLambda']>>;

let root: string;
let pinecone: PineconeEmulator;
let pineconeHost: string;
let lambda: Lambda;
let boot: Boot;
/** the SQS consumer function: its own boot over the same store and index */
let consumer: Boot;
let models: { dir: string; id: string }[];
/** the environment of both functions (API and consumer): the same store, index and models */
const env = (): Record<string, string> => ({
  MANYFOLD_MODEL_DIRS: models.map((m) => m.dir).join(','),
  MANYFOLD_DATA_DIR: `${root}/data`,
  MANYFOLD_API_KEYS: KEY_SPEC,
  MANYFOLD_INDEX: 'pinecone',
  PINECONE_API_KEY: pinecone.apiKey,
  PINECONE_HOST: pineconeHost,
  MANYFOLD_BACKEND: 'wasm',
  MANYFOLD_LOG_LEVEL: 'silent',
});
/** what the API function handed to "SQS" */
const sent: JobMessage[] = [];

async function call(method: string, path: string, key: string, json?: unknown): Promise<{ status: number; body: any }> {
  const http = boot.http as (event: unknown, context: unknown) => Promise<{ statusCode: number; body?: string; isBase64Encoded?: boolean }>;
  const r = await http(urlEvent(method, path, { key, ...(json !== undefined ? { json } : {}) }), {});
  return { status: r.statusCode, body: r.body ? JSON.parse(r.isBase64Encoded ? Buffer.from(r.body, 'base64').toString() : r.body) : undefined };
}

/** delivers what was sent since the last delivery, as one SQS event */
async function deliver(): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const bodies = sent.splice(0);
  return lambda.consumeJobs(consumer, sqsEvent(bodies));
}

beforeAll(async () => {
  root = tmp('lambda-jobs');
  models = await makeModels(`${root}/models`, [7, 8]);
  pinecone = new PineconeEmulator();
  pineconeHost = await pinecone.start();
  lambda = await import('../../functions/lambda.js');
  boot = await lambda.bootLambda(env(), { sendJob: async (job) => void sent.push(job) });
  consumer = await lambda.bootLambda(env());
  const items = await Promise.all(GALLERY.map(async (g, i) => ({ id: `it${i}`, image: (await png(32, 32, g.rgb, i)).toString('base64'), captions: [g.caption] })));
  const w = await call('POST', '/v1/items', KEYS.write, { items });
  expect(w.status, JSON.stringify(w.body)).toBe(200);
});

afterAll(async () => {
  await boot?.edge.api.close();
  await consumer?.edge.api.close();
  await pinecone?.stop();
  rmrf(root);
});

describe('Lambda background jobs through SQS (capturing sender as the SQS stand-in; Pinecone emulator)', () => {
  it('a probe started through the API is queued, runs in the SQS consumer, and its report is readable afterwards', async () => {
    expect(boot.edge.api.background).toMatchObject({ name: 'sqs', distributed: true });
    const started = await call('POST', '/v1/probes', KEYS.probe, { sample: 3, seed: 5, attacks: [{ name: 'blackbox-text', maxQueries: 3 }] });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const id = started.body.probe.id;
    expect(sent).toEqual([{ kind: 'probe', id }]);
    // nothing runs in the API function after its answer: the probe waits for its message
    await new Promise((r) => setTimeout(r, 200));
    expect((await call('GET', `/v1/probes/${id}`, KEYS.probe)).body.probe.status).toBe('queued');

    const delivered = [...sent];
    const t0 = performance.now();
    expect((await deliver()).batchItemFailures).toEqual([]);
    console.log(`[lambda] probe via the SQS consumer: 3 items, blackbox-text x3 queries, ${(performance.now() - t0).toFixed(0)} ms in the consumer`);
    const done = await call('GET', `/v1/probes/${id}`, KEYS.probe);
    expect(done.status).toBe(200);
    expect(done.body.probe.status, done.body.probe.error).toBe('succeeded');
    const report = done.body.probe.report;
    expect(report.queries.images).toBe(3);
    expect(report.attacks.map((a: { name: string }) => a.name)).toEqual(['blackbox-text']);
    expect(report.attacks[0].attackQueries).toBeGreaterThan(0);
    expect(report.clean.ir.recall.r1.mean).toBeGreaterThanOrEqual(0);

    // SQS delivers at least once: a redelivered message of a finished probe changes nothing
    expect((await lambda.consumeJobs(consumer, sqsEvent(delivered, 'again'))).batchItemFailures).toEqual([]);
    const again = await call('GET', `/v1/probes/${id}`, KEYS.probe);
    expect(again.body.probe.updatedAt).toBe(done.body.probe.updatedAt);
  });

  it('a malformed message is reported back to SQS naming the field; a canceled probe is skipped; the DLQ marks a job failed', async () => {
    const bad = await lambda.consumeJobs(consumer, sqsEvent([{ kind: 'probe', id: 'x y' }, { kind: 'train', id: 'a' }], 'bad'));
    expect(bad.batchItemFailures).toEqual([{ itemIdentifier: 'bad0' }, { itemIdentifier: 'bad1' }]);

    const body = { sample: 2, seed: 1, attacks: [{ name: 'blackbox-text', maxQueries: 3 }] };
    const first = (await call('POST', '/v1/probes', KEYS.probe, body)).body.probe.id;
    expect((await call('DELETE', `/v1/probes/${first}`, KEYS.probe)).body).toEqual({ id: first, status: 'canceled' });
    expect((await deliver()).batchItemFailures).toEqual([]);
    const canceled = (await call('GET', `/v1/probes/${first}`, KEYS.probe)).body.probe;
    expect(canceled.status).toBe('canceled');
    expect(canceled.report).toBeUndefined();

    // a probe another instance is running (here: a consumer that died mid-run, its message to be redelivered):
    // DELETE leaves a cancel marker in the store, which the runner reads before starting and before every chunk
    const running = (await call('POST', '/v1/probes', KEYS.probe, body)).body.probe.id;
    const doc = (await boot.edge.api.service.store.getDoc<any>('probes', running))!;
    await boot.edge.api.service.store.putDoc('probes', running, { ...doc, status: 'running', progress: { ...doc.progress, stage: 'clean' } });
    expect((await call('DELETE', `/v1/probes/${running}`, KEYS.probe)).body).toEqual({ id: running, status: 'canceled' });
    expect((await call('GET', `/v1/probes/${running}`, KEYS.probe)).body.probe.status).toBe('running');
    expect((await deliver()).batchItemFailures).toEqual([]);
    expect((await call('GET', `/v1/probes/${running}`, KEYS.probe)).body.probe.status).toBe('canceled');

    const second = (await call('POST', '/v1/probes', KEYS.probe, body)).body.probe.id;
    const [msg] = sent.splice(0);
    await failJob(consumer.edge.api, msg, 'its SQS receives were exhausted (3)');
    const failed = (await call('GET', `/v1/probes/${second}`, KEYS.probe)).body.probe;
    expect(failed).toMatchObject({ status: 'failed', error: 'probe failed: its SQS receives were exhausted (3)' });
  });

  it('an activation started through the API runs in the SQS consumer; the API function follows the switch from the store', async () => {
    const act = await call('POST', `/v1/models/${models[1].id}/activate`, KEYS.admin);
    expect(act.status, JSON.stringify(act.body)).toBe(202);
    expect(sent).toEqual([{ kind: 'activation', id: act.body.job.id }]);
    expect((await call('GET', `/v1/jobs/${act.body.job.id}`, KEYS.admin)).body.job.status).toBe('running');
    expect((await deliver()).batchItemFailures).toEqual([]);
    const job = (await call('GET', `/v1/jobs/${act.body.job.id}`, KEYS.admin)).body.job;
    expect(job.status, job.error).toBe('succeeded');
    expect(job.verification[0].actual).toEqual(job.verification[0].expected);
    // the API function never ran the job: it reads state.active from the store (at most every 2 s) and follows
    const t0 = Date.now();
    const s = await waitFor(async () => {
      const r = await call('POST', '/v1/search', KEYS.search, { text: 'a blue car parked on the street', target: 'texts', topK: 1 });
      return r.body.model === models[1].id && r;
    }, 10_000, 100);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(s.body.results[0].id).toBe('it2');
  });
});

describe('no job queue configured (local runs of the edge app): the job runs where the request landed, under ctx.waitUntil', () => {
  it('the probe is handed to the ExecutionContext the runtime passes with the request and completes there; one cut by the runtime reads as failed', async () => {
    const local = await lambda.bootLambda(env());
    try {
      expect(local.edge.api.background).toMatchObject({ distributed: true });
      expect(local.edge.api.background.placement('probe')).toBe('in-process');
      const kept: Promise<unknown>[] = [];
      const ctx = { waitUntil: (p: Promise<unknown>) => void kept.push(p), passThroughOnException: () => undefined, props: {} };
      const r = await local.edge.api.app.fetch(
        new Request('https://edge.local/v1/probes', {
          method: 'POST',
          headers: { authorization: `Bearer ${KEYS.probe}`, 'content-type': 'application/json' },
          body: JSON.stringify({ sample: 2, seed: 3, attacks: [{ name: 'blackbox-text', maxQueries: 3 }] }),
        }),
        {},
        ctx,
      );
      expect(r.status).toBe(202);
      const id = ((await r.json()) as { probe: { id: string } }).probe.id;
      expect(kept).toHaveLength(1);
      await Promise.all(kept);
      const done = await local.edge.api.probes.get(id);
      expect(done?.status, done?.error).toBe('succeeded');
      expect(done?.report?.queries.images).toBe(2);

      // a probe cut by the runtime (waitUntil ended, e.g. an isolate evicted mid-run) would stay `running` in the
      // store and count against limits.maxProbesPending forever: past the waitUntil horizon it reads as failed
      const stale = { ...done!, id: `${id}x`, status: 'running', report: undefined, createdAt: new Date(Date.now() - 5 * 60_000).toISOString() };
      await local.edge.api.service.store.putDoc('probes', stale.id, stale);
      const reaped = await local.edge.api.probes.get(stale.id);
      expect(reaped?.status).toBe('failed');
      expect(reaped?.error).toContain('cut by the runtime');
      expect((await local.edge.api.service.store.getDoc<{ status: string }>('probes', stale.id))?.status).toBe('failed');
    } finally {
      await local.edge.api.close();
    }
  });
});
