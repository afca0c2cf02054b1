/**
 * The Lambda handler tested locally with synthetic function-URL events (payload v2.0), a tiny model read from
 * MANYFOLD_MODEL_DIRS and the store in a temp directory (no AWS call); plus the SQS re-index consumer with
 * synthetic SQS events (success, redelivery = idempotent, failure -> batchItemFailures, DLQ record); plus model
 * discovery from the bucket catalogue through the AWS SDK against s3rver, a local S3 API server (the stand-in
 * for S3: the same SDK calls, signed requests, real HTTP).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishArtifact } from '../../src/publish/publish.js';
import { PineconeEmulator } from '../index/pinecone-emulator.js';
import { KEY_SPEC, KEYS, makeModels, rmrf, tmp, waitFor } from '../api/helpers.js';
import { S3RVER_ENV, startS3rver, type LocalS3 } from '../publish/s3rver.js';
import { urlEvent } from './events.js';

let root: string;
/** the edge's memory index is a read-only snapshot: writes (ingest, re-index, activation) go to Pinecone, here its local emulator */
let pinecone: PineconeEmulator;
let pineconeHost: string;
let models: { dir: string; id: string }[];
let lambda: typeof import('../../functions/lambda.js');

type Handler = (event: any, context?: any) => Promise<any>;

async function call(method: string, path: string, opts: { key?: string; json?: unknown; via?: Handler } = {}): Promise<{ status: number; body: any; headers: Record<string, string> }> {
  const r = await (opts.via ?? lambda.handler)(urlEvent(method, path, opts), {});
  return { status: r.statusCode, body: r.body ? JSON.parse(r.isBase64Encoded ? Buffer.from(r.body, 'base64').toString() : r.body) : undefined, headers: r.headers };
}

beforeAll(async () => {
  root = tmp('lambda');
  models = await makeModels(`${root}/models`, [3, 4]);
  process.env.MANYFOLD_MODEL_DIRS = models.map((m) => m.dir).join(',');
  process.env.MANYFOLD_DATA_DIR = `${root}/data`;
  process.env.MANYFOLD_API_KEYS = KEY_SPEC;
  pinecone = new PineconeEmulator();
  pineconeHost = await pinecone.start();
  process.env.MANYFOLD_INDEX = 'pinecone';
  process.env.PINECONE_API_KEY = pinecone.apiKey;
  process.env.PINECONE_HOST = pineconeHost;
  process.env.MANYFOLD_BACKEND = 'wasm';
  process.env.MANYFOLD_LOG_LEVEL = 'silent';
  lambda = await import('../../functions/lambda.js');
});

afterAll(async () => {
  const b = await lambda?.boot().catch(() => undefined);
  await b?.edge.api.close();
  await pinecone?.stop();
  rmrf(root);
});

describe('AWS Lambda handler (function URL events; Pinecone: the local emulator, not the live service)', () => {
  it('serves health, auth errors, ingest and search through the same app', async () => {
    const t0 = performance.now();
    const h = await call('GET', '/health');
    console.log(`[lambda] cold start (boot + first request) ${(performance.now() - t0).toFixed(0)} ms`);
    expect(h.status).toBe(200);
    expect(h.headers['x-request-id']).toBeTruthy();
    expect((await call('POST', '/v1/search', { json: { text: 'x' } })).status).toBe(401);
    expect((await call('POST', '/v1/items', { key: KEYS.search, json: { items: [{ id: 'a', captions: ['x'] }] } })).status).toBe(403);
    const w = await call('POST', '/v1/items', {
      key: KEYS.write,
      json: { items: [{ id: 'a', captions: ['a red circle next to a small blue square'], metadata: { n: 1 } }, { id: 'b', captions: ['two big brown dogs run across the green field'] }] },
    });
    expect(w.status).toBe(200);
    const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'two big brown dogs run across the green field', target: 'texts', topK: 1 } });
    expect(s.status).toBe(200);
    expect(s.body.results[0].id).toBe('b');
    expect(s.body.model).toBe(models[0].id);
    const bad = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'x', bogus: true } });
    expect(bad.status).toBe(422);
  });

  it('re-index over SQS events: consumer idempotent on redelivery, failures reported per message, DLQ recorded', async () => {
    const { planReindex, reindexStatus } = await import('../../src/reindex/pipeline.js');
    const b = await lambda.boot();
    const sent: unknown[] = [];
    const plan = await planReindex({ ...b.deps(), enqueue: async (m) => void sent.push(...m) }, models[1].id, { batchSize: 1 });
    expect(sent).toHaveLength(2);
    const records = sent.map((m, i) => ({ messageId: `m${i}`, body: JSON.stringify(m) }));
    const r1 = await lambda.reindexConsumer({ Records: [...records, { messageId: 'poison', body: '{"nope":1}' }] });
    expect(r1.batchItemFailures).toEqual([{ itemIdentifier: 'poison' }]);
    // redelivery of the same batch (at-least-once): same records, same counts
    expect((await lambda.reindexConsumer({ Records: records })).batchItemFailures).toEqual([]);
    const st = await reindexStatus(b.deps(), plan.runId);
    expect(st!.state).toBe('complete');
    expect(st!.verification![0].actual).toEqual(st!.verification![0].expected);
    const act = await call('POST', `/v1/reindex/${plan.runId}/activate`, { key: KEYS.admin, json: {} });
    expect(act.status).toBe(200);
    expect(act.body.active).toBe(models[1].id);
    // a DLQ record marks a run failed
    await lambda.reindexDeadLetter({ Records: [{ messageId: 'd1', body: JSON.stringify({ ...(sent[0] as object), batch: 99 }) }] });
    expect((await reindexStatus(b.deps(), plan.runId))!.batches.dead).toBe(1);
  });
});

describe('Lambda model discovery from the bucket catalogue (s3rver stand-in for S3; Pinecone emulator)', () => {
  let s3: LocalS3;
  let late: { dir: string; id: string };
  const booted: { edge: { api: { close(): Promise<void> } } }[] = [];
  const env = (over: Record<string, string>) => ({
    MODEL_BUCKET: s3.bucket,
    MANYFOLD_S3_ENDPOINT: s3.endpoint,
    MODEL_PREFIX: 'models',
    MANYFOLD_API_KEYS: KEY_SPEC,
    MANYFOLD_INDEX: 'pinecone',
    PINECONE_API_KEY: pinecone.apiKey,
    PINECONE_HOST: pineconeHost,
    MANYFOLD_BACKEND: 'wasm',
    MANYFOLD_LOG_LEVEL: 'silent',
    ...over,
  });
  const boot = async (over: Record<string, string>) => {
    const b = await lambda.bootLambda(env(over));
    booted.push(b);
    return b.http as Handler;
  };
  const publish = (dir: string, prefix = 'models') => publishArtifact(dir, `s3://${s3.bucket}/${prefix}`, { endpoint: s3.endpoint });

  beforeAll(async () => {
    Object.assign(process.env, S3RVER_ENV);
    s3 = await startS3rver();
    [late] = await makeModels(`${root}/late`, [5]);
    await publish(models[0].dir);
    await publish(models[1].dir);
  });
  afterAll(async () => {
    for (const b of booted) await b.edge.api.close();
    await s3?.close();
  });

  it('serves the catalogue (its default active) with no MODEL_IDS; a model published after boot can be activated', async () => {
    const via = await boot({ MANYFOLD_DATA_DIR: `${root}/s3-data-1` });
    const listed = await call('GET', '/v1/models', { key: KEYS.admin, via });
    expect(listed.status).toBe(200);
    expect(listed.body.active).toBe(models[0].id);
    expect(listed.body.models.map((m: { id: string }) => m.id)).toEqual([models[0].id, models[1].id]);
    const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a red circle', target: 'texts', topK: 1 }, via });
    expect(s.status).toBe(200);
    expect(s.body.model).toBe(models[0].id);

    await publish(late.dir); // the nightly publishes; the running function re-reads the catalogue on activation
    const act = await call('POST', `/v1/models/${late.id}/activate`, { key: KEYS.admin, json: {}, via });
    expect(act.status).toBe(202);
    const job = await waitFor(async () => {
      const j = await call('GET', `/v1/jobs/${act.body.job.id}`, { key: KEYS.admin, via });
      return ['succeeded', 'failed', 'rolled-back'].includes(j.body.job.status) ? j.body.job : undefined;
    });
    expect(job.status).toBe('succeeded');
    expect((await call('GET', '/v1/models', { key: KEYS.admin, via })).body.active).toBe(late.id);
  });

  it('MODEL_IDS filters the catalogue (first = default); an id it lacks, a missing catalogue or bucket fails the boot naming the object', async () => {
    const via = await boot({ MANYFOLD_DATA_DIR: `${root}/s3-data-2`, MODEL_IDS: models[1].id });
    const listed = await call('GET', '/v1/models', { key: KEYS.admin, via });
    expect(listed.body.active).toBe(models[1].id);
    expect(listed.body.models.map((m: { id: string }) => m.id)).toEqual([models[1].id]);
    await expect(lambda.bootLambda(env({ MANYFOLD_DATA_DIR: `${root}/s3-data-3`, MODEL_IDS: 'mf-000000000000' }))).rejects.toThrow(
      `s3://${s3.bucket}/models/catalog.json does not list mf-000000000000`,
    );
    await expect(lambda.bootLambda(env({ MANYFOLD_DATA_DIR: `${root}/s3-data-4`, MODEL_PREFIX: 'nothing-here' }))).rejects.toThrow(
      `no model catalogue at s3://${s3.bucket}/nothing-here/catalog.json`,
    );
    await expect(lambda.bootLambda(env({ MANYFOLD_DATA_DIR: `${root}/s3-data-6`, MODEL_BUCKET: 'no-such-bucket' }))).rejects.toThrow(
      'GET s3://no-such-bucket/models/catalog.json: the bucket does not exist',
    );
  });

  it('a manifest changed in the bucket after publishing no longer matches the catalogue: that model is skipped', async () => {
    await publish(models[0].dir, 'tampered');
    await publish(models[1].dir, 'tampered');
    const { S3Bucket } = await import('../../src/aws/s3-bucket.js');
    const b = new S3Bucket({ bucket: s3.bucket, endpoint: s3.endpoint });
    const key = `tampered/${models[1].id}/manifest.json`;
    const m = JSON.parse(await (await b.get(key))!.text());
    await b.put(key, JSON.stringify({ ...m, metrics: { forged: 1 } }));
    const via = await boot({ MANYFOLD_DATA_DIR: `${root}/s3-data-5`, MODEL_PREFIX: 'tampered' });
    const listed = await call('GET', '/v1/models', { key: KEYS.admin, via });
    expect(listed.body.models.map((x: { id: string }) => x.id)).toEqual([models[0].id]);
  });
});
