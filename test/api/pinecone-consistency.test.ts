/**
 * Blue/green activation against lagging index counts. Serverless Pinecone reports writes in describe_index_stats
 * only after a freshness lag, so the activation's count verification polls with bounded exponential backoff
 * (index.pinecone.consistency*) instead of reading once; LanceDB / memory are consistent at once and never wait.
 * Pinecone here is the local stand-in test/index/pinecone-emulator.ts in its lag mode (no live Pinecone is
 * reachable). The backoff sleep and the clock are injected (hooks.activation): no test sleeps for real, and the
 * assertions are on counts of polls and sleeps, never on elapsed time.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivationHooks, ActivationJob } from '../../src/api/activation.js';
import type { RunningServer } from '../../src/node/server.js';
import { PineconeEmulator } from '../index/pinecone-emulator.js';
import { CAPTIONS, KEYS, client, makeModels, png, rmrf, start, tmp, waitFor } from './helpers.js';

let root: string;
let m1: { dir: string; id: string };
let m2: { dir: string; id: string };

beforeAll(async () => {
  root = tmp('consistency');
  const models = await makeModels(join(root, 'models'), [1, 2]);
  models.sort((a, b) => a.dir.localeCompare(b.dir)); // m1 is the registry default
  [m1, m2] = models;
});
afterAll(() => rmrf(root));

/** a fake clock the injected sleep advances: the timeout is reached without waiting */
function fakeTime(): { sleeps: number[]; hooks: ActivationHooks } {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    hooks: {
      now: () => t,
      sleep: async (ms) => {
        sleeps.push(ms);
        t += ms;
      },
    },
  };
}

const N_ITEMS = 5;

async function seed(srv: RunningServer): Promise<void> {
  const items = [];
  for (let i = 0; i < N_ITEMS; i++) {
    items.push({ id: `it${i}`, image: (await png(16, 16, [(i * 37) % 255, (i * 91) % 255, 40], i)).toString('base64'), captions: [CAPTIONS[i % 6], `${CAPTIONS[(i + 1) % 6]} ${i}`] });
  }
  const r = await client(srv.url)('POST', '/v1/items', { key: KEYS.admin, json: { items } });
  expect(r.status, r.text).toBe(200);
}

/** starts the activation of m2 through the API and waits for the job to end */
async function activateM2(srv: RunningServer): Promise<ActivationJob> {
  const act = await client(srv.url)('POST', `/v1/models/${m2.id}/activate`, { key: KEYS.admin });
  expect(act.status, act.text).toBe(202);
  await srv.api.activation.settle();
  const job = await srv.api.activation.get(act.body.job.id as string);
  expect(job).toBeDefined();
  return job!;
}

const pinecone = (emu: PineconeEmulator, host: string) => ({
  index: { kind: 'pinecone', pinecone: { apiKey: emu.apiKey, host, consistencyTimeoutMs: 5_000, consistencyInitialDelayMs: 500, consistencyMaxDelayMs: 2_000 } },
});

describe('activation waits for lagging Pinecone counts (Pinecone: local emulator test/index/pinecone-emulator.ts in lag mode, not the live service)', () => {
  it('counts that trail the upserts: the verification backs off (500, 1000 ms) until they match, then switches', async () => {
    const emu = new PineconeEmulator();
    const host = await emu.start();
    const time = fakeTime();
    const srv = await start({ modelDir: join(root, 'models'), dataDir: join(root, 'data-lag'), overrides: pinecone(emu, host), hooks: { activation: time.hooks } });
    try {
      await seed(srv);
      // from here on, a write shows in describe_index_stats only after two more stats answers
      emu.setStatsLag({ calls: 2 });
      const job = await activateM2(srv);
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
      // the first two polls (the first one is the old single check) saw stale counts: the old check would have failed the job
      expect(emu.staleStats).toBe(2);
      expect(job.verificationWait).toEqual({ polls: 3, waitedMs: 1_500 });
      expect(time.sleeps).toEqual([500, 1_000]);
      expect(job.verification).toEqual([{ namespace: 'default', expected: { images: N_ITEMS, texts: 2 * N_ITEMS }, actual: { images: N_ITEMS, texts: 2 * N_ITEMS } }]);
      expect(srv.api.service.active.id).toBe(m2.id);
      const s = await client(srv.url)('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[0], target: 'texts', topK: 1 } });
      expect(s.body.model).toBe(m2.id);
    } finally {
      await srv.close();
      await emu.stop();
    }
  });

  it('counts that never converge: the job fails after the timeout with expected vs last seen counts; the previous model stays active and serving', async () => {
    const emu = new PineconeEmulator();
    const host = await emu.start();
    const time = fakeTime();
    const srv = await start({ modelDir: join(root, 'models'), dataDir: join(root, 'data-never'), overrides: pinecone(emu, host), hooks: { activation: time.hooks } });
    try {
      await seed(srv);
      emu.setStatsLag({ calls: Infinity });
      const job = await activateM2(srv);
      expect(job.status).toBe('failed');
      // delays double from 500 ms up to the 2,000 ms cap, the last one cut to what is left of the 5,000 ms timeout
      expect(time.sleeps).toEqual([500, 1_000, 2_000, 1_500]);
      expect(job.verificationWait).toEqual({ polls: 5, waitedMs: 5_000 });
      expect(job.error).toBe(
        'verification failed: index counts did not reach the stored items within index.pinecone.consistencyTimeoutMs = 5000 ms ' +
          `(waited 5000 ms, 5 polls of describe_index_stats): default images: expected ${N_ITEMS}, last seen 0; ` +
          `default texts: expected ${2 * N_ITEMS}, last seen 0; the active model is unchanged`,
      );
      // the records were written: only the stats lag
      const tag = srv.api.service.registry.info(m2.id)!.tag;
      expect(emu.count(`default--${tag}--img`)).toBe(N_ITEMS);
      // nothing switched: in memory, on disk, in the API, and search still answers from m1
      expect(srv.api.service.active.id).toBe(m1.id);
      expect((await srv.api.service.store.getState()).active ?? m1.id).toBe(m1.id);
      const call = client(srv.url);
      const ms = await call('GET', '/v1/models', { key: KEYS.search });
      expect(ms.body.models.find((m: { id: string }) => m.id === m1.id)).toMatchObject({ active: true });
      const viaApi = await call('GET', `/v1/jobs/${job.id}`, { key: KEYS.admin });
      expect(viaApi.body.job).toMatchObject({ status: 'failed', error: job.error, verificationWait: { polls: 5, waitedMs: 5_000 } });
      const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[0], target: 'texts', topK: 1 } });
      expect(s.status).toBe(200);
      expect(s.body.model).toBe(m1.id);
      expect(s.body.results).toHaveLength(1);
    } finally {
      await srv.close();
      await emu.stop();
    }
  });
});

describe('activation stopped while waiting for Pinecone counts (local emulator test/index/pinecone-emulator.ts, not the live service)', () => {
  it('a shutdown during the wait leaves the job running, nothing switched; after a restart it verifies again and switches', async () => {
    const emu = new PineconeEmulator();
    const host = await emu.start();
    const data = join(root, 'data-stop');
    let waiting = false;
    // the first backoff sleep blocks until the shutdown aborts it
    const hooks: ActivationHooks = {
      sleep: (_ms, signal) =>
        new Promise<void>((resolve) => {
          waiting = true;
          signal.addEventListener('abort', () => resolve(), { once: true });
        }),
    };
    const a = await start({ modelDir: join(root, 'models'), dataDir: data, overrides: pinecone(emu, host), hooks: { activation: hooks } });
    let jobId: string;
    try {
      await seed(a);
      emu.setStatsLag({ calls: Infinity });
      const act = await client(a.url)('POST', `/v1/models/${m2.id}/activate`, { key: KEYS.admin });
      expect(act.status, act.text).toBe(202);
      jobId = act.body.job.id as string;
      await waitFor(async () => waiting);
    } finally {
      await a.close();
    }
    expect((await a.api.activation.get(jobId))?.status).toBe('running');
    expect(a.api.service.active.id).toBe(m1.id);
    // the stats catch up while the server is down; the restarted job finds nothing left to embed and verifies
    emu.setStatsLag(undefined);
    const time = fakeTime();
    const b = await start({ modelDir: join(root, 'models'), dataDir: data, overrides: pinecone(emu, host), hooks: { activation: time.hooks } });
    try {
      await b.api.activation.settle();
      const job = await b.api.activation.get(jobId);
      expect(job?.status, JSON.stringify(job)).toBe('succeeded');
      expect(job?.verificationWait).toEqual({ polls: 1, waitedMs: 0 });
      expect(b.api.service.active.id).toBe(m2.id);
    } finally {
      await b.close();
      await emu.stop();
    }
  });
});

describe('activation on immediately consistent indexes does not wait', () => {
  for (const kind of ['lancedb', 'memory'] as const) {
    it(`${kind}: counts are read once, the backoff sleep is never called`, async () => {
      const time = fakeTime();
      const srv = await start({
        modelDir: join(root, 'models'),
        dataDir: join(root, `data-${kind}`),
        overrides: kind === 'memory' ? { index: { kind: 'memory' } } : {},
        hooks: { activation: time.hooks },
      });
      try {
        expect(srv.index.kind).toBe(kind);
        await seed(srv);
        const job = await activateM2(srv);
        expect(job.status, JSON.stringify(job)).toBe('succeeded');
        expect(time.sleeps).toEqual([]);
        expect(job.verificationWait).toEqual({ polls: 1, waitedMs: 0 });
        expect(srv.api.service.active.id).toBe(m2.id);
      } finally {
        await srv.close();
      }
    });
  }
});
