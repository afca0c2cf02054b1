/**
 * The nightly job end to end against a real Node server (LanceDB index, blue/green activation): a measurably
 * worse candidate is rejected with production untouched; a trained candidate is deployed; a crash injected
 * after every step followed by a rerun ends with exactly one model fully active; a failing smoke rolls back; the
 * trained candidate fine-tunes the active model (nightly.initFrom 'active') and the smoke step is an attack probe
 * through the API. Tiny data (generated scenes), few steps, a 1-attack suite on 16 held-out images.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type ManyfoldConfig } from '../../src/config.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import { MemoryRankSource, probeFromSplit, runRobustProbe } from '../../src/eval/robust/index.js';
import { loadArtifact } from '../../src/model/artifact.js';
import { Encoder } from '../../src/model/encoder.js';
import { CrashInjected, gateMetrics, runNightly, type NightlyOptions } from '../../src/nightly/job.js';
import * as training from '../../training/run.js';
import { client, KEYS, makeModels, png, rmrf, start, tmp } from '../api/helpers.js';
import type { RunningServer } from '../../src/node/server.js';

let root: string;
let dataFile: string;
let server: RunningServer;
let call: ReturnType<typeof client>;
let models: { dir: string; id: string; robust: number; clean: number }[];
let best: (typeof models)[number];
let worst: (typeof models)[number];
const logs: string[] = [];

const EVAL = { evalSplit: 'test', evalLimit: 16, attacks: [{ name: 'pgd', eps: 2, steps: 2 }], evalSeed: 0, resamples: 200, pollMs: 50, smokeSample: 3, smokeAttacks: [{ name: 'pgd', eps: 2, steps: 1 }] };

function config(nightly: Record<string, unknown> = {}, train: Record<string, unknown> = {}): ManyfoldConfig {
  return loadConfig({
    env: {},
    overrides: {
      backend: 'wasm',
      data: { file: dataFile },
      train: { preset: 'tiny', epochs: 1, batch: 16, checkpointEvery: 2, ...train },
      nightly: { stateDir: join(root, 'state'), serverUrl: server.url, adminKey: KEYS.admin, publishDir: join(root, 'data', 'models'), ...EVAL, ...nightly },
    },
  });
}

function opts(o: Partial<NightlyOptions> & { config: ManyfoldConfig }): NightlyOptions {
  return { training, modelDirs: [join(root, 'models')], log: (l) => logs.push(l), ...o };
}

async function active(): Promise<string> {
  return (await call('GET', '/v1/models', { key: KEYS.admin })).body.active;
}

/** the server is consistent: one model active, and searches are answered by it with its full namespace */
async function expectConsistent(expected: string[]): Promise<string> {
  const a = await active();
  expect(expected).toContain(a);
  const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a red circle', target: 'texts', topK: 10 } });
  expect(s.body.model).toBe(a);
  expect(s.body.results).toHaveLength(6);
  const i = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a red circle', target: 'images', topK: 10 } });
  expect(i.body.results).toHaveLength(3);
  return a;
}

beforeAll(async () => {
  root = tmp('nightly');
  const g = await generateScenes({ out: join(root, 'scenes'), train: 32, val: 0, test: 16, seed: 11, size: 32 });
  dataFile = g.file;
  // four untrained models measured with the gate's own suite: the best is production, the worst the bad candidate
  const made = await makeModels(join(root, 'models'), [1, 2, 3, 4]);
  const cfg0 = loadConfig({ env: {}, overrides: { data: { file: dataFile } } });
  models = [];
  for (const m of made) {
    const a = await loadArtifact(m.dir);
    const split = await training.loadSplit(cfg0, 'test', 32, true);
    const { queries, gallery } = probeFromSplit(split, EVAL.evalLimit);
    const r = await runRobustProbe({ source: await MemoryRankSource.create(new Encoder(a.model, a.tokenizer, a.manifest), gallery), queries, attacks: EVAL.attacks as never, seed: 0, resamples: 200 });
    a.model.dispose();
    const g2 = gateMetrics(r);
    models.push({ ...m, robust: g2.robustR1, clean: g2.cleanR1 });
  }
  const order = [...models].sort((x, y) => y.robust - x.robust || y.clean - x.clean);
  best = order[0];
  worst = order[order.length - 1];
  expect(best.robust > worst.robust || best.clean > worst.clean).toBe(true);
  server = await start({ modelDir: best.dir, dataDir: join(root, 'data') });
  call = client(server.url);
  const items = [];
  for (let k = 0; k < 3; k++) items.push({ id: `i${k}`, image: (await png(48, 48, [60 * k, 200 - 50 * k, 90])).toString('base64'), captions: [`a red circle number ${k}`, `a blue square ${k}`] });
  expect((await call('POST', '/v1/items', { key: KEYS.write, json: { items } })).status).toBe(200);
});

afterAll(async () => {
  await server?.close();
  if (root) rmrf(root);
});

describe('manyfold nightly', () => {
  it('rejects a measurably worse candidate: exit 10, nothing published, production untouched', async () => {
    const before = await active();
    const s = await runNightly(opts({ config: config({ robustR1Tolerance: 0.5, cleanR1MaxDrop: 0 }), runId: 'reject', candidateDir: worst.dir }));
    expect(s.outcome).toBe('rejected');
    expect(s.exitCode).toBe(10);
    expect(s.gate!.pass).toBe(false);
    expect(s.eval!.active.robustR1 >= s.eval!.candidate.robustR1).toBe(true);
    // the paired interval of candidate - production, over the same 16 images and their captions
    expect(s.eval!.items).toEqual({ images: 16, captions: 80 });
    expect(s.gate!.paired!.robust.mean).toBeLessThanOrEqual(0);
    expect(s.gate!.paired!.robust.lo).toBeLessThanOrEqual(s.gate!.paired!.robust.mean);
    expect(existsSync(join(root, 'data', 'models', worst.id))).toBe(false);
    expect(await active()).toBe(before);
    await expectConsistent([before]);
    // rerun: same answer, nothing done again
    expect((await runNightly(opts({ config: config({ robustR1Tolerance: 0.5, cleanR1MaxDrop: 0 }), runId: 'reject', candidateDir: worst.dir }))).exitCode).toBe(10);
    console.log(`[nightly] rejected ${worst.id}: ${s.gate!.reasons.join('; ')}`);
  });

  it('dry run: trains, evaluates, gates; never publishes', async () => {
    const s = await runNightly(opts({ config: config({ robustR1Tolerance: 100, cleanR1MaxDrop: 100 }), runId: 'dry', dryRun: true, candidateDir: models.find((m) => m !== best)!.dir }));
    expect(s.outcome).toBe('dry-run');
    expect(s.exitCode).toBe(0);
    expect(s.published).toBeUndefined();
  });

  it('trains a candidate (resumable), passes the gate, publishes, re-indexes, activates, smokes', async () => {
    const t0 = Date.now();
    const before = await active();
    const s = await runNightly(opts({ config: config({ robustR1Tolerance: 100, cleanR1MaxDrop: 100 }), runId: 'train' }));
    expect(s.error).toBeUndefined();
    expect(s.outcome).toBe('deployed');
    expect(s.candidate!.source).toBe('trained');
    expect(s.backend!.name).toBe('wasm');
    expect(Object.keys(s.steps)).toEqual(['train', 'eval', 'gate', 'publish', 'reindex', 'activate', 'smoke']);
    expect(await expectConsistent([s.candidate!.id])).not.toBe(before);
    // the recipe fine-tuned production, and the smoke step probed the new model through the API
    expect(logs.join('\n')).toContain(`fine-tuning the active model ${before}`);
    expect(s.smoke!.probe).toMatchObject({ images: 3, captions: 6 });
    expect(s.smoke!.detail).toContain(s.candidate!.id);
    console.log(`[nightly] deployed ${s.candidate!.id} in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${s.gate!.reasons.join('; ')}; smoke: ${s.smoke!.detail}`);
  });

  it('a crash after each step, then a rerun: always exactly one model fully active, ending deployed', async () => {
    const steps = ['train', 'eval', 'gate', 'publish', 'reindex-started', 'reindex', 'activate', 'smoke'] as const;
    const candidates = models.filter((m) => m !== worst);
    for (const [k, step] of steps.entries()) {
      const from = await active();
      const cand = candidates.find((m) => m.id !== from)!;
      const cfg = config({ robustR1Tolerance: 100, cleanR1MaxDrop: 100 });
      await expect(runNightly(opts({ config: cfg, runId: `crash-${k}`, candidateDir: cand.dir, crashAfter: step }))).rejects.toBeInstanceOf(CrashInjected);
      await server.api.activation.settle();
      await expectConsistent([from, cand.id]);
      const s = await runNightly(opts({ config: cfg, runId: `crash-${k}`, candidateDir: cand.dir }));
      expect(s.outcome, `${step}: ${s.error}`).toBe('deployed');
      expect(await expectConsistent([cand.id])).toBe(cand.id);
    }
  });

  it('a failing smoke rolls back to the previous model: exit 11', async () => {
    const from = await active();
    const cand = models.find((m) => m.id !== from && m !== worst)!;
    const s = await runNightly(
      opts({
        config: config({ robustR1Tolerance: 100, cleanR1MaxDrop: 100 }),
        runId: 'smoke-fails',
        candidateDir: cand.dir,
        beforeStep: (step) => {
          if (step === 'smoke') throw new Error('smoke probe failed (injected)');
        },
      }),
    );
    expect(s.outcome).toBe('rolled-back');
    expect(s.exitCode).toBe(11);
    expect(s.rollback!.status).toBe('succeeded');
    expect(await expectConsistent([from])).toBe(from);
  });
});
