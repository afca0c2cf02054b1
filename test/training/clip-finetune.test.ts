/**
 * `manyfold train --init IMPORTED` on an imported CLIP (a tiny random HF checkpoint built by
 * test/reference/build-checkpoints.ts, imported by the real importer): MAT with N:N augmentation, TeCoA and FARE
 * run with --freeze-blocks and --grad-accum, print the memory estimate, keep frozen weights bit-identical to the
 * imported ones, train the rest, clamp the logit scale's log to [0, ln 100], and write a CLIP-family artifact.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import { loadArtifact } from '../../src/model/artifact.js';
import { importClipCheckpoint } from '../../src/model/clip/import.js';
import { isFrozen } from '../../training/freeze.js';
import { runTraining } from '../../training/run.js';
import { buildTinyCheckpoint } from '../reference/build-checkpoints.js';

let dir: string;
let data: string;
let imported: string;
let weights: Map<string, Float32Array>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mf-clip-ft-'));
  // ln 100 in the checkpoint: the clamp's upper bound
  const ckpt = await buildTinyCheckpoint(join(dir, 'ckpt'), 'hf-bf16-quickgelu-argmax');
  imported = join(dir, 'imported');
  await importClipCheckpoint({ from: ckpt.dir, out: imported, log: () => undefined });
  data = (await generateScenes({ out: join(dir, 'scenes'), train: 16, val: 0, test: 4, seed: 2 })).file;
  const a = await loadArtifact(imported);
  weights = new Map([...a.model.variables].map(([k, v]) => [k, Float32Array.from(v.dataSync() as Float32Array)]));
  a.model.dispose();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bitEqual = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

describe('fine-tuning an imported CLIP', () => {
  for (const [method, extra] of [
    ['mat', { augment: ['nn'], textAttack: 'embedding' }],
    ['tecoa', {}],
    ['fare', {}],
  ] as const) {
    it(`${method}${'augment' in extra ? ' --augment nn' : ''} --freeze-blocks 1 --grad-accum 2`, async () => {
      const config = loadConfig({
        overrides: {
          backend: 'wasm',
          seed: 3,
          data: { file: data },
          train: { init: imported, method, batch: 4, gradAccum: 2, freezeBlocks: 1, epochs: 2, lr: 1e-3, trainSteps: 1, captionsPerImage: 1, checkpointEvery: 100, ...extra },
        },
      });
      const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      let log = '';
      let result: Awaited<ReturnType<typeof runTraining>> | undefined;
      try {
        result = await runTraining({ config, out: join(dir, `run-${method}`), resume: false, evaluate: false });
        log = err.mock.calls.map((c) => String(c[0])).join('');
      } finally {
        err.mockRestore();
      }
      if (!result) throw new Error('no result');
      expect(result.finished).toBe(true);
      expect(log).toMatch(/memory estimate \(wasm\): [\d.]+ MiB of the 4\.00 GiB heap/);
      const trained = await loadArtifact(result.modelDir);
      expect(trained.manifest.config.family).toBe('clip');
      expect(trained.manifest.training?.init).toBeTruthy();
      const after = new Map([...trained.model.variables].map(([k, v]) => [k, Float32Array.from(v.dataSync() as Float32Array)]));
      trained.model.dispose();
      expect([...after.keys()].sort()).toEqual([...weights.keys()].sort());
      const imageOnly = method !== 'mat';
      for (const [name, w] of weights) {
        const frozen = isFrozen(name, 1) || (imageOnly && !name.startsWith('image.'));
        if (frozen) expect(bitEqual(after.get(name)!, w), `${name} is frozen but changed`).toBe(true);
        else if (name !== 'logitScale') expect(bitEqual(after.get(name)!, w), `${name} did not train`).toBe(false);
      }
      expect(isFrozen('image.lnpre.g', 1)).toBe(true);
      if (method === 'mat') expect(after.get('logitScale')![0]).toBeLessThanOrEqual(Math.fround(Math.log(100)));
    });
  }
});
