/**
 * The nightly job's publish step with --publish-to: the candidate goes to the bucket (s3rver stand-in for S3) and
 * into its catalogue, where the Lambda app (functions/lambda.ts, served over HTTP here; Pinecone: the local
 * emulator) finds it when asked to activate it. The run is stopped right after the publish step (the job's crash
 * hook), so this checks the publish step alone; test/nightly covers the steps after it.
 */
import { serve, type ServerType } from '@hono/node-server';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import { catalogKey, parseCatalog } from '../../src/edge/bucket-catalog.js';
import { S3Bucket } from '../../src/aws/s3-bucket.js';
import { CrashInjected, runNightly } from '../../src/nightly/job.js';
import { readState } from '../../src/nightly/state.js';
import { publishArtifact } from '../../src/publish/publish.js';
import * as training from '../../training/run.js';
import { KEY_SPEC, KEYS, client, makeModels, rmrf, tmp, waitFor } from '../api/helpers.js';
import { PineconeEmulator } from '../index/pinecone-emulator.js';
import { S3RVER_ENV, startS3rver, type LocalS3 } from './s3rver.js';

let root: string;
let s3: LocalS3;
let pinecone: PineconeEmulator;
let http: ServerType;
let url: string;
let close: () => Promise<void>;
let models: { dir: string; id: string }[];
let dataFile: string;

beforeAll(async () => {
  Object.assign(process.env, S3RVER_ENV);
  root = tmp('nightly-publish');
  s3 = await startS3rver();
  pinecone = new PineconeEmulator();
  const host = await pinecone.start();
  models = await makeModels(join(root, 'models'), [1, 2]);
  dataFile = (await generateScenes({ out: join(root, 'scenes'), train: 8, val: 0, test: 8, seed: 3, size: 32 })).file;
  await publishArtifact(models[0].dir, `s3://${s3.bucket}/models`, { endpoint: s3.endpoint });
  const lambda = await import('../../functions/lambda.js');
  const b = await lambda.bootLambda({
    MODEL_BUCKET: s3.bucket,
    MANYFOLD_S3_ENDPOINT: s3.endpoint,
    MODEL_PREFIX: 'models',
    MANYFOLD_DATA_DIR: join(root, 'lambda-data'),
    MANYFOLD_API_KEYS: KEY_SPEC,
    MANYFOLD_INDEX: 'pinecone',
    PINECONE_API_KEY: pinecone.apiKey,
    PINECONE_HOST: host,
    MANYFOLD_BACKEND: 'wasm',
    MANYFOLD_LOG_LEVEL: 'silent',
  });
  await new Promise<void>((resolve) => {
    http = serve({ fetch: b.edge.api.app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
      url = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
  close = () => b.edge.api.close();
});

afterAll(async () => {
  await new Promise((r) => http?.close(r));
  await close?.();
  await pinecone?.stop();
  await s3?.close();
  rmrf(root);
});

describe('manyfold nightly --publish-to (s3rver stand-in for S3, Lambda app over HTTP, Pinecone emulator)', () => {
  it('publishes the candidate to the bucket catalogue; the Lambda app then activates it from there', async () => {
    const config = loadConfig({
      env: {},
      overrides: {
        backend: 'wasm',
        data: { file: dataFile },
        nightly: { stateDir: join(root, 'state'), serverUrl: url, adminKey: KEYS.admin, evalLimit: 8, attacks: [{ name: 'pgd', eps: 2, steps: 1 }], smokeSample: 2, smokeAttacks: [{ name: 'pgd', eps: 2, steps: 1 }], robustR1Tolerance: 100, cleanR1MaxDrop: 100 },
      },
    });
    const run = runNightly({
      config,
      training,
      runId: 'to-s3',
      candidateDir: models[1].dir,
      modelDirs: [join(root, 'models')],
      publishTo: { to: `s3://${s3.bucket}/models`, endpoint: s3.endpoint },
      crashAfter: 'publish',
      log: () => undefined,
    });
    await expect(run).rejects.toBeInstanceOf(CrashInjected);

    expect(readState(join(root, 'state'), 'to-s3')!.published).toMatchObject({ id: models[1].id, remote: `s3://${s3.bucket}/models/${models[1].id}/` });
    const bucket = new S3Bucket({ bucket: s3.bucket, endpoint: s3.endpoint });
    const catalog = parseCatalog(await (await bucket.get(catalogKey('models')))!.text(), 'catalog');
    expect(catalog.models.map((m) => m.id)).toEqual([models[0].id, models[1].id]);
    expect(catalog.default).toBe(models[0].id); // activation, not publishing, changes what is served

    const call = client(url);
    const act = await call('POST', `/v1/models/${models[1].id}/activate`, { key: KEYS.admin, json: {} });
    expect(act.status).toBe(202);
    const job = await waitFor(async () => {
      const j = await call('GET', `/v1/jobs/${act.body.job.id}`, { key: KEYS.admin });
      return ['succeeded', 'failed', 'rolled-back'].includes(j.body.job.status) ? j.body.job : undefined;
    });
    expect(job.status).toBe('succeeded');
    expect((await call('GET', '/v1/models', { key: KEYS.admin })).body.active).toBe(models[1].id);
  });
});
