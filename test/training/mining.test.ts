/**
 * Hard-negative batch mining (training/mining.ts): nearest neighbours agree with a brute-force scan, mined batches
 * keep clusters together, cover distinct images, depend only on (embeddings, seed, epoch); and a 'hard' training
 * run killed mid-epoch and resumed ends bit-identical to an uninterrupted one (the mined batches travel in the
 * checkpoint). Real tfjs on the wasm backend.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { trainSchema } from '../../src/config.js';
import { loadDataset } from '../../src/data/load.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { Rng } from '../../src/util/rng.js';
import { hardBatches, nearestNeighbours } from '../../training/mining.js';
import { trainModel, type StepInfo } from '../../training/trainer.js';

/** n unit vectors in `clusters` tight clusters around random centres; returns embeddings and cluster ids */
function clustered(n: number, clusters: number, dim: number, seed: number): { emb: Float32Array; label: Int32Array } {
  const rng = new Rng(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: dim }, () => rng.normal()));
  const emb = new Float32Array(n * dim);
  const label = new Int32Array(n);
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  for (let i = 0; i < n; i++) {
    const c = order[i] % clusters;
    label[i] = c;
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      const v = centres[c][d] + 0.05 * rng.normal();
      emb[i * dim + d] = v;
      norm += v * v;
    }
    for (let d = 0; d < dim; d++) emb[i * dim + d] /= Math.sqrt(norm);
  }
  return { emb, label };
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('nearestNeighbours', () => {
  it('returns each row’s k most similar other rows, most similar first, like a brute-force scan', async () => {
    const n = 70;
    const dim = 8;
    const { emb } = clustered(n, 9, dim, 1);
    const k = 5;
    const knn = await nearestNeighbours(emb, n, dim, k, 16); // chunk 16: several chunks, one partial
    for (let i = 0; i < n; i++) {
      const sims = Array.from({ length: n }, (_, j) => {
        let s = 0;
        for (let d = 0; d < dim; d++) s += emb[i * dim + d] * emb[j * dim + d];
        return { j, s };
      }).filter((e) => e.j !== i);
      sims.sort((a, b) => b.s - a.s);
      const got = Array.from(knn.subarray(i * k, (i + 1) * k));
      expect(got).not.toContain(i);
      // compare similarities rather than indices (float ties may order differently)
      got.forEach((j, r) => expect(sims.find((e) => e.j === j)!.s).toBeCloseTo(sims[r].s, 5));
    }
  });

  it('clamps k to n - 1 and rejects embeddings of the wrong size', async () => {
    const { emb } = clustered(3, 1, 4, 2);
    expect((await nearestNeighbours(emb, 3, 4, 10)).length).toBe(3 * 2);
    await expect(nearestNeighbours(emb, 4, 4, 2)).rejects.toThrow(/expected 4x4 embeddings, got 12 values/);
  });
});

describe('hardBatches', () => {
  const n = 64;
  const dim = 16;
  const { emb, label } = clustered(n, 16, dim, 3); // 16 clusters of 4

  it('groups each image with its cluster: with group 4 every batch is whole clusters', async () => {
    const batches = await hardBatches(emb, n, dim, { batch: 8, group: 4, seed: 0, epoch: 1 });
    expect(batches.length).toBe(8);
    const seen = new Set<number>();
    for (const b of batches) {
      expect(b.length).toBe(8);
      for (const i of b) seen.add(i);
      const counts = new Map<number, number>();
      for (const i of b) counts.set(label[i], (counts.get(label[i]) ?? 0) + 1);
      expect([...counts.values()].sort()).toEqual([4, 4]);
    }
    expect(seen.size).toBe(n); // every image exactly once
  });

  it('is a function of (embeddings, seed, epoch): same inputs same batches, another epoch another order', async () => {
    const a = await hardBatches(emb, n, dim, { batch: 8, group: 4, seed: 0, epoch: 1 });
    const b = await hardBatches(emb, n, dim, { batch: 8, group: 4, seed: 0, epoch: 1 });
    const c = await hardBatches(emb, n, dim, { batch: 8, group: 4, seed: 0, epoch: 2 });
    const flat = (x: Int32Array[]) => x.flatMap((r) => Array.from(r));
    expect(flat(b)).toEqual(flat(a));
    expect(flat(c)).not.toEqual(flat(a));
  });

  it('drops the last partial batch like the random sampler and rejects a bad group size', async () => {
    expect((await hardBatches(emb.subarray(0, 60 * dim), 60, dim, { batch: 8, group: 4, seed: 0, epoch: 0 })).length).toBe(7);
    await expect(hardBatches(emb, n, dim, { batch: 8, group: 0, seed: 0, epoch: 0 })).rejects.toThrow(/group must be a positive integer/);
  });
});

describe("training with batchSampling 'hard'", () => {
  let dir: string;
  let split: DatasetSplit;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mf-mining-'));
    const g = await generateScenes({ out: join(dir, 'scenes'), train: 24, val: 0, test: 0, seed: 4 });
    split = await loadDataset(g.file, { size: 32, split: 'train', cacheDir: join(dir, 'cache') });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const config = trainSchema.parse({ batch: 8, epochs: 3, checkpointEvery: 1, batchSampling: 'hard', hardGroup: 4, hardFromEpoch: 1 });
  const run = async (name: string, extra: { stopAfterStep?: number; resume?: boolean } = {}) => {
    const steps: StepInfo[] = [];
    const r = await trainModel({ out: join(dir, name), train: split, config, seed: 2, quiet: true, onStep: (s) => steps.push(s), ...extra });
    const weights = [...r.model.variables.values()].map((v) => Array.from(v.dataSync() as Float32Array));
    r.model.dispose();
    return { r, steps, weights };
  };

  it('killed in the middle of a mined epoch and resumed, ends bit-identical to an uninterrupted run', async () => {
    const straight = await run('straight');
    expect(straight.steps.length).toBe(9);
    const killed = await run('killed', { stopAfterStep: 5 }); // epoch 1 (mined) has steps 4..6
    expect(killed.r.finished).toBe(false);
    expect(killed.r.state.minedEpoch?.epoch).toBe(1);
    const resumed = await run('killed', { resume: true });
    expect(resumed.steps.map((s) => s.step)).toEqual([6, 7, 8, 9]);
    expect(resumed.steps.map((s) => s.loss)).toEqual(straight.steps.slice(5).map((s) => s.loss));
    expect(resumed.weights).toEqual(straight.weights);
  }, 120_000);
});
