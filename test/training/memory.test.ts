/**
 * Clean training of the real tiny preset keeps tf.memory().numTensors flat: after every step the live tensors
 * are the weights, the optimizer moments and the engine's bounded cache of constants (one per distinct shape,
 * counted by opCacheTensorCount), nothing else. Captions of different lengths make the batch shapes vary.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { opCacheTensorCount } from '../../src/engine/ops.js';
import { trainSchema } from '../../src/config.js';
import { loadDataset } from '../../src/data/load.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { trainModel } from '../../training/trainer.js';

let dir: string;
let split: DatasetSplit;

beforeAll(async () => {
  await initBackend('wasm');
  dir = mkdtempSync(join(tmpdir(), 'mf-memory-'));
  const g = await generateScenes({ out: join(dir, 'scenes'), train: 48, val: 0, test: 0, seed: 5 });
  split = await loadDataset(g.file, { size: 32, split: 'train', cacheDir: join(dir, 'cache') });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('numTensors (minus cached op constants) is the same after every clean training step of the tiny preset', async () => {
  const live: number[] = [];
  const lengths = new Set<number>();
  const before = tf.memory().numTensors - opCacheTensorCount();
  const r = await trainModel({
    out: join(dir, 'run'),
    train: split,
    config: trainSchema.parse({ preset: 'tiny', batch: 16, epochs: 4, checkpointEvery: 100 }),
    seed: 1,
    quiet: true,
    onStep: (info) => {
      live.push(tf.memory().numTensors - opCacheTensorCount());
      expect(info.numTensors).toBe(tf.memory().numTensors);
    },
  });
  for (const c of split.captions) lengths.add(c.split(' ').length);
  expect(lengths.size).toBeGreaterThan(3); // the shapes really vary
  expect(live.length).toBe(12);
  expect(new Set(live).size).toBe(1);
  // after the run only the model remains (the optimizer's moments were released): disposing it returns to the start
  expect(tf.memory().numTensors - opCacheTensorCount() - before).toBeLessThan(r.model.variables.size + 8);
  r.model.dispose();
  expect(tf.memory().numTensors - opCacheTensorCount()).toBe(before);
});
