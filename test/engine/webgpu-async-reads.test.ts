/**
 * Everything after the clean training loop runs on webgpu too: the MAT inner loop (word substitution or
 * token-embedding PGD, and image PGD) with hard-batch mining, a checkpoint and an N:N pool, the clean evaluation,
 * the white-box attacks (PGD, PGD through JPEG EOT, Co-Attack), the black-box oracle and Square search, and a
 * small robust evaluation with its gradient sanity probe. Dawn (the webgpu backend in Node) has no synchronous
 * GPU->CPU read, so any dataSync left on these paths fails here with webgpu.ts's "synchronous read ... not
 * possible" error.
 *
 * Without a GPU (CI, this machine) webgpu runs on Mesa's llvmpipe through Dawn's OpenGL compatibility backend: a
 * software stand-in for a GPU. Each case runs on wasm and on webgpu from the same seeds and compares: both are
 * float32, with different summation orders (tiled GPU kernels vs XNNPACK), so values agree to ~1e-5 relative, not
 * bitwise, and a discrete choice taken on a near tie (a PGD sign of a ~0 gradient, a word whose score differs in
 * the 6th digit) may differ; the tolerances below are stated per case. Skips (saying why) only when Dawn or Mesa
 * is absent, and fails under CI=true in that case, because .ci/run installs Mesa.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { discoverWebgpuAdapter, releaseWebgpu, webgpuDeviceErrors } from '../../src/engine/webgpu.js';
import { opCacheTensorCount } from '../../src/engine/ops.js';
import { trainSchema } from '../../src/config.js';
import { loadDataset } from '../../src/data/load.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import { trainModel } from '../../training/trainer.js';
import { buildAugmentPool } from '../../src/augment/pool.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { Encoder } from '../../src/model/encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { Tokenizer } from '../../src/model/types.js';
import { evaluateClean } from '../../src/eval/evaluate.js';
import { evaluateRobust } from '../../src/eval/robust/evaluate.js';
import { attackByName, embedTextRows, imagesToFloat, localOracle } from '../../src/attacks/index.js';
import type { AttackResult } from '../../src/attacks/types.js';
import { compare } from './helpers.js';

const discovery = await discoverWebgpuAdapter();
if (!discovery.ok) {
  if (process.env.CI === 'true') throw new Error(`CI=true but no WebGPU adapter (Dawn + Mesa must be installed by .ci/run): ${discovery.why}`);
  console.warn(`SKIPPING webgpu async-read tests: ${discovery.why}`);
}

type Backend = 'wasm' | 'webgpu';
const BACKENDS: Backend[] = ['wasm', 'webgpu'];

let dir = '';
let train: DatasetSplit;
let test: DatasetSplit;
let tokenizer: Tokenizer;

/** the attacks' batch: 4 test images in [0,1] and the first caption of each (few text shapes to compile) */
function attackBatch() {
  const n = 4;
  const rows = Array.from({ length: n }, (_, i) => i);
  const captions = rows.map((i) => test.captions[test.imageToCaptions[i][0]]);
  return { images: imagesToFloat(test.images, test.size, rows), size: test.size, captions, captionToImage: rows, n };
}

/** one fresh tiny model per backend from the same seed (identical weights), its tensors freed by the caller */
async function onBackend<T>(backend: Backend, body: (enc: Encoder) => Promise<T>): Promise<T> {
  await initBackend(backend);
  const before = tf.memory().numTensors - opCacheTensorCount();
  const model = createDualEncoder(modelConfigFromPreset('tiny', tokenizer.vocabSize), 7);
  try {
    return await body(new Encoder(model, tokenizer));
  } finally {
    model.dispose();
    // no tensor outlives the call (the fast ops' constant cache aside)
    expect(tf.memory().numTensors - opCacheTensorCount() - before, `${backend}: tensors leaked`).toBe(0);
  }
}

function imagesDiff(a: AttackResult, b: AttackResult) {
  const d = compare(a.images!.data, b.images!.data);
  // share of pixels that moved by more than float noise (a flipped PGD sign moves one by 2 * step)
  let moved = 0;
  for (let i = 0; i < a.images!.data.length; i++) if (Math.abs(a.images!.data[i] - b.images!.data[i]) > 1e-4) moved++;
  return { maxAbs: d.maxAbs, movedShare: moved / a.images!.data.length, objective: compare(a.images!.objective, b.images!.objective).maxAbs };
}

describe.skipIf(!discovery.ok)('webgpu: every read asynchronous (CI: Mesa llvmpipe via Dawn OpenGL compatibility, a software stand-in for a GPU)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mf-webgpu-async-'));
    const g = await generateScenes({ out: join(dir, 'scenes'), train: 8, val: 0, test: 6, seed: 3 });
    train = await loadDataset(g.file, { size: 32, split: 'train', cacheDir: join(dir, 'cache') });
    test = await loadDataset(g.file, { size: 32, split: 'test', cacheDir: join(dir, 'cache') });
    tokenizer = buildTokenizer([...train.captions, ...test.captions], { maxLen: 32 });
  }, 60_000);
  afterEach(() => {
    // a failed WebGPU pipeline leaves its output unwritten instead of throwing: no case may have produced one
    expect(webgpuDeviceErrors()).toEqual([]);
  });
  afterAll(() => {
    releaseWebgpu();
    rmSync(dir, { recursive: true, force: true });
  });

  it('MAT (word substitution + image PGD, hard-batch mining, checkpoint), then MAT + N:N (embedding text attack, alignment-filtered pool), then the clean eval: wasm vs webgpu', async () => {
    const run = async (backend: Backend) => {
      await initBackend(backend);
      const losses: number[] = [];
      // 8 images, batch 8: one step, which ends the epoch, so the checkpoint is written; mining from epoch 0
      const base = { preset: 'tiny', batch: 8, epochs: 1, method: 'mat', trainSteps: 1, textCandidates: 4, captionsPerImage: 1, batchSampling: 'hard', hardFromEpoch: 0 };
      const r = await trainModel({ out: join(dir, `mat-${backend}`), train, config: trainSchema.parse(base), seed: 2, quiet: true, onStep: (i) => losses.push(i.loss) });
      // N:N: the pool's alignment filter embeds every view and caption with the model just trained; MAT's other
      // text attack (PGD on token embeddings, which reads its radius back once per step)
      const nn = trainSchema.parse({ ...base, augment: ['eda', 'flip'], batchSampling: 'random', textAttack: 'embedding' });
      const pool = await buildAugmentPool(train, nn.augment, { seed: 0, scorer: new Encoder(r.model, r.tokenizer), quantile: 0.05 });
      const r2 = await trainModel({ out: join(dir, `nn-${backend}`), train, config: nn, seed: 2, quiet: true, pool, init: { model: r.model, tokenizer: r.tokenizer, id: 'mat-step' }, onStep: (i) => losses.push(i.loss) });
      const ev = await evaluateClean(new Encoder(r2.model, r2.tokenizer), test);
      r.model.dispose();
      r2.model.dispose();
      return { losses, state: r.state, kept: pool.alignment?.captions, r1: [ev.summary.tr.r1, ev.summary.ir.r1] };
    };
    const [wasm, gpu] = [await run('wasm'), await run('webgpu')];
    console.log('MAT, MAT + N:N wasm:', JSON.stringify({ losses: wasm.losses, r1: wasm.r1 }), 'webgpu:', JSON.stringify({ losses: gpu.losses, r1: gpu.r1 }));
    expect(gpu.losses).toHaveLength(2);
    expect(gpu.losses.every(Number.isFinite)).toBe(true);
    // the same mined batch and the same filtered pool on both (both read embeddings back asynchronously)
    expect(gpu.state.minedEpoch).toEqual(wasm.state.minedEpoch);
    expect(gpu.kept).toEqual(wasm.kept);
    for (let i = 0; i < 2; i++) expect(Math.abs(gpu.losses[i] - wasm.losses[i])).toBeLessThan(1e-3);
    // recall over 6 test images / 12 captions from a model one step from the same init
    expect(gpu.r1[0]).toBeCloseTo(wasm.r1[0], 5);
    expect(gpu.r1[1]).toBeCloseTo(wasm.r1[1], 5);
  }, 120_000);

  it('PGD, PGD through JPEG EOT and Co-Attack run on webgpu and match wasm', async () => {
    const b = attackBatch();
    const run = (backend: Backend) =>
      onBackend(backend, async (enc) => {
        const env = { encoder: enc.model, tokenizer: enc.tokenizer };
        const batch = { images: b.images, size: b.size, captions: b.captions, captionToImage: b.captionToImage };
        const small = { steps: 2, eps: 4 / 255, stepSize: 1 / 255, seed: 1, maxCandidates: 4 };
        return {
          pgd: await attackByName('pgd', small).run(batch, env),
          jpeg: await attackByName('pgd', { ...small, steps: 1, eotJpegQuality: 80 }).run(batch, env),
          // Co-Attack: the text stage (word search scored by the embedding objective) then image PGD; SGA is
          // the same stages (plus a rescale, all tensor ops) and would only double the shader compiles here
          coattack: await attackByName('coattack', { ...small, steps: 1 }).run(batch, env),
        };
      });
    const wasm = await run('wasm');
    const gpu = await run('webgpu');
    for (const name of ['pgd', 'jpeg', 'coattack'] as const) {
      const d = imagesDiff(gpu[name], wasm[name]);
      console.log(`${name}: webgpu vs wasm`, JSON.stringify(d), 'captions equal:', JSON.stringify(gpu[name].captions?.texts) === JSON.stringify(wasm[name].captions?.texts));
      expect(gpu[name].images!.objective.every(Number.isFinite)).toBe(true);
      expect(gpu[name].images!.linf.every((v) => v <= 4 / 255 + 1e-6)).toBe(true);
      // objective (a mean of 1 - cos): float32 noise only
      expect(d.objective).toBeLessThan(1e-3);
      // sign steps: a pixel whose gradient is ~0 may step the other way on the other backend; at most 2% do
      expect(d.movedShare).toBeLessThan(0.02);
      if (gpu[name].captions) expect(gpu[name].captions!.texts).toEqual(wasm[name].captions!.texts);
    }
  }, 180_000);

  it('the black-box oracle and a Square search run on webgpu and match wasm', async () => {
    const b = attackBatch();
    const run = (backend: Backend) =>
      onBackend(backend, async (enc) => {
        const gallery = await embedTextRows(enc.model, enc.tokenizer, b.captions);
        const oracle = localOracle({ encoder: enc.model, tokenizer: enc.tokenizer, gallery, topK: 3 });
        const hits = await oracle([{ kind: 'text', text: b.captions[0] }, { kind: 'image', pixels: b.images.subarray(0, b.size * b.size * 3), size: b.size }]);
        const imageGoldIds = Array.from({ length: b.n }, (_, i) => b.captionToImage.flatMap((img, c) => (img === i ? [c] : [])));
        const square = await attackByName('blackbox-image', { eps: 8 / 255, maxQueries: 6, seed: 1 }).run({ images: b.images, size: b.size, targets: { k: 1, imageGoldIds } }, { oracle });
        return { hits, square };
      });
    const wasm = await run('wasm');
    const gpu = await run('webgpu');
    expect(gpu.hits.map((h) => h.map((x) => x.id))).toEqual(wasm.hits.map((h) => h.map((x) => x.id)));
    const scores = (r: typeof wasm) => r.hits.flatMap((h) => h.map((x) => x.score!));
    expect(compare(scores(gpu), scores(wasm)).maxAbs).toBeLessThan(1e-4);
    expect(gpu.square.images!.queries).toEqual(wasm.square.images!.queries);
    expect(compare(gpu.square.images!.data, wasm.square.images!.data).maxAbs).toBe(0); // Square's pixels come from its rng, not the model
  }, 120_000);

  it('a small robust eval (PGD, gradient sanity probe) on webgpu equals wasm within one query', async () => {
    const run = (backend: Backend) =>
      onBackend(backend, async (enc) =>
        (
          await evaluateRobust(enc, test, {
            attacks: [{ name: 'pgd', eps: 4, steps: 1 }],
            seed: 1,
            resamples: 50,
            defended: false,
            limit: 4,
            examples: 0,
            sanity: { probeImages: 2, stepsCheck: false },
          })
        ).report,
      );
    const wasm = await run('wasm');
    const gpu = await run('webgpu');
    const r1 = (r: typeof wasm) => [
      r.clean.tr.recall.r1.mean,
      r.clean.ir.recall.r1.mean,
      ...r.attacks.flatMap((e) => [e.tr?.recall.r1?.mean ?? -1, e.ir?.recall.r1?.mean ?? -1]),
    ];
    console.log('robust R@1 wasm:', JSON.stringify(r1(wasm)), 'webgpu:', JSON.stringify(r1(gpu)));
    expect(r1(gpu).every(Number.isFinite)).toBe(true);
    // 4 images / 8 captions: one query is 25 / 12.5 points; float32 differences may move at most one rank
    r1(gpu).forEach((v, i) => expect(Math.abs(v - r1(wasm)[i])).toBeLessThanOrEqual(25));
    expect(r1(gpu).slice(0, 2)).toEqual(r1(wasm).slice(0, 2)); // clean recall: same model, same ranks
  }, 180_000);
});
