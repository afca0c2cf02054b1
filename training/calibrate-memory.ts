/**
 * Calibrates and checks src/model/memory.ts: `npx tsx training/calibrate-memory.ts [towers|runs|all]` (wasm).
 *
 * towers: for one tower at a time, the peak of tf.memory().numBytes (tf.profile's peakBytes, sampled after every
 *   kernel) while the trainer's backward (training/lean-grads.ts) computes the gradient of a loss on that tower:
 *   w.r.t. the trainable weights (a training step; 0 or 2 frozen blocks) or w.r.t. the input pixels with weight
 *   gradients off (a PGD step). Minus the bytes live before and one copy of the tower's weights (the tape saves a
 *   copy of every weight it multiplies by), divided by rows x tokens x width x depth after taking out the attention
 *   probabilities (rows x heads x tokens^2 per block). Models: the tiny and small presets (also at patch 4: 65 and
 *   257 tokens) and CLIP ViT-B/32's widths, heads and token counts with 2 blocks per tower. Measured (2026-12-06,
 *   after the per-block tidy of the model's forward): 29-44 floats on the presets, 52 at CLIP widths (8 rows);
 *   the three gradient kinds peak alike (at the end of the forward pass). ACTIVATION_FLOATS_PER_TOKEN_WIDTH = 56.
 *   tf.variableGrads, which keeps every intermediate gradient to the end, measured 70-96 before the per-block tidy.
 * runs: real training (trainModel, 2 optimizer steps, scenes data, captions padded to the longest) in a child
 *   process each, so the wasm heap (which only grows, by up to 20% or 96 MiB beyond what is asked) belongs to that
 *   run: its size afterwards vs the estimate with backend 'wasm'. Measured estimate / heap: tiny MAT 1.37,
 *   TeCoA 1.20; small MAT (batch 16, accumulation 2) 1.53; clean runs 1.85-2.46 (bucketed captions);
 *   CLIP-B/32 widths (2 blocks) MAT batch 8: 1.18 (heap 663 MiB), TeCoA batch 8 with 1 frozen block: 0.99.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../src/engine/tf.js';
import { initBackend } from '../src/engine/backend.js';
import { trainSchema } from '../src/config.js';
import { loadDataset } from '../src/data/load.js';
import { generateScenes } from '../src/data/scenes/generate.js';
import { createDualEncoder } from '../src/model/dual-encoder.js';
import { ACTIVATION_FLOATS_PER_TOKEN_WIDTH, estimateTrainingMemory, towerParameterCount, formatBytes, imageTokens } from '../src/model/memory.js';
import { modelConfigFor } from '../src/model/presets.js';
import { buildTokenizer } from '../src/model/tokenizer.js';
import type { ModelConfig } from '../src/model/types.js';
import { Rng } from '../src/util/rng.js';
import { trainModel } from './trainer.js';
import { trainableNames } from './freeze.js';
import { leanValueAndGrad, leanVariableGrads } from './lean-grads.js';
import { withoutWeightGrads } from '../src/engine/ops.js';

type Mode = 'towers' | 'runs' | 'all' | 'run-one';
const mode = (process.argv[2] ?? 'all') as Mode;

function heapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } };
  return b.wasm ? b.wasm.HEAPU8.length : NaN;
}

/** CLIP ViT-B/32's image and text widths, heads and tokens at 224 px, with 2 blocks per tower */
function clipB32d2(vocabSize: number): ModelConfig {
  return {
    preset: 'clip-b32-d2',
    family: 'clip',
    embedDim: 512,
    image: { size: 224, patch: 32, width: 768, depth: 2, heads: 12, mlpRatio: 4 },
    text: { width: 512, depth: 2, heads: 8, mlpRatio: 4, maxLen: 77, vocabSize },
    initLogitScale: Math.log(100),
    clip: { activation: 'quick_gelu', textPooling: 'argmax', eosTokenId: vocabSize - 1, pixelMean: [0.48145466, 0.4578275, 0.40821073], pixelStd: [0.26862954, 0.26130258, 0.27577711], lnEps: 1e-5, resizeShortestEdge: 224 },
  };
}

async function towers(): Promise<void> {
  await initBackend('wasm');
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  console.log('tower  model        grads   rows tokens width depth freeze | peak - before   floats per unit (excl. attention) | estimate/measured');
  const models: [string, ModelConfig, number[]][] = [
    ['tiny', modelConfigFor('tiny', 1000), [8, 32]],
    ['tiny p4', modelConfigFor('tiny', 1000, { patch: 4 }), [8, 32]],
    ['small', modelConfigFor('small', 1000), [8, 32]],
    // rows x tokens bounded: 32 rows of 257 tokens need more than wasm's 4 GiB
    ['small p4', modelConfigFor('small', 1000, { patch: 4 }), [8]],
    ['clip-b32-d2', clipB32d2(1000), [8]],
  ];
  for (const [label, c, rowsList] of models) {
    const model = createDualEncoder(c, 1);
    for (const rows of rowsList) {
      for (const [tower, mode, freeze] of [
        ['image', 'weights', 0],
        ['image', 'weights', 2],
        ['image', 'input', 0],
        ['text', 'weights', 0],
        ['text', 'weights', 2],
      ] as const) {
        const tokens = tower === 'image' ? imageTokens(c) : 24;
        const cfg = tower === 'image' ? c.image : c.text;
        if (tower === 'text' && label.includes('p4')) continue;
        const vars = trainableNames(model, { freezeBlocks: freeze, imageOnly: false })
          .filter((n) => n.startsWith(`${tower}.`))
          .map((n) => model.variables.get(n)!);
        const rng = new Rng(rows * 31 + tokens);
        const s = c.image.size;
        const input =
          tower === 'image'
            ? tf.tensor4d(Float32Array.from({ length: rows * s * s * 3 }, () => rng.uniform(0, 1)), [rows, s, s, 3])
            : tf.tensor2d(Int32Array.from({ length: rows * tokens }, () => 1 + rng.int(998)), [rows, tokens], 'int32');
        const embed = (x: tf.Tensor) => (tower === 'image' ? model.imageTower(x as tf.Tensor4D) : model.textTower(x as tf.Tensor2D));
        const before = tf.memory().numBytes;
        const prof = await tf.profile(() => {
          // 'weights': a training step's outer gradient; 'input': a PGD step's (the inner maximisation)
          const r =
            mode === 'weights'
              ? leanVariableGrads(() => tf.sum(tf.square(embed(input))) as tf.Scalar, vars)
              : withoutWeightGrads(() => {
                  const g = leanValueAndGrad((x: tf.Tensor) => tf.sum(tf.square(embed(x))) as tf.Scalar, input);
                  return { value: g.value, grads: { x: g.grad } };
                });
          r.value.dispose();
          for (const g of Object.values(r.grads)) g.dispose();
        });
        input.dispose();
        // the peak includes the gradients when it falls in the backward pass: the estimator adds them separately,
        // so they are counted twice there (the estimate errs high). One copy of the tower's weights (saved on the
        // tape) is the estimator's separate per-weight term.
        const weightCopy = towerParameterCount(c, tower) * 4;
        const act = prof.peakBytes - before - weightCopy;
        const attention = rows * cfg.depth * cfg.heads * tokens * tokens * 4;
        const per = (act - attention) / 4 / (rows * tokens * cfg.width * cfg.depth);
        const estimate = rows * cfg.depth * (tokens * cfg.width * ACTIVATION_FLOATS_PER_TOKEN_WIDTH + cfg.heads * tokens * tokens) * 4;
        // (estimate and measured both without the weight copy)
        console.log(
          `${tower.padEnd(6)} ${label.padEnd(12)} ${mode.padEnd(7)} ${String(rows).padStart(4)} ${String(tokens).padStart(6)} ${String(cfg.width).padStart(5)} ${String(cfg.depth).padStart(5)} ${String(freeze).padStart(6)} | ${formatBytes(act).padStart(13)}   ${per.toFixed(1).padStart(6)} | ${(estimate / act).toFixed(2)}`,
        );
      }
    }
    model.dispose();
  }
  console.log(`estimator constant: ${ACTIVATION_FLOATS_PER_TOKEN_WIDTH} floats per token, unit of width and block`);
}

interface RunSpec {
  /** 'clip-b32-d2': CLIP ViT-B/32 widths, tokens and heads at 224 px, 2 blocks per tower (the full 12 take minutes) */
  preset: 'tiny' | 'small' | 'clip-b32-d2';
  method: 'clean' | 'tecoa' | 'mat';
  batch: number;
  freezeBlocks: number;
  gradAccum: number;
}

const RUNS: RunSpec[] = [
  { preset: 'tiny', method: 'clean', batch: 32, freezeBlocks: 0, gradAccum: 1 },
  { preset: 'tiny', method: 'clean', batch: 32, freezeBlocks: 2, gradAccum: 2 },
  { preset: 'tiny', method: 'mat', batch: 32, freezeBlocks: 0, gradAccum: 1 },
  { preset: 'tiny', method: 'tecoa', batch: 32, freezeBlocks: 0, gradAccum: 1 },
  { preset: 'small', method: 'clean', batch: 32, freezeBlocks: 0, gradAccum: 1 },
  { preset: 'small', method: 'clean', batch: 32, freezeBlocks: 3, gradAccum: 1 },
  { preset: 'small', method: 'mat', batch: 16, freezeBlocks: 0, gradAccum: 2 },
  { preset: 'clip-b32-d2', method: 'mat', batch: 8, freezeBlocks: 0, gradAccum: 1 },
  { preset: 'clip-b32-d2', method: 'tecoa', batch: 8, freezeBlocks: 1, gradAccum: 1 },
];

/** the model a run spec trains; vocabSize from the run's tokenizer */
function runModelConfig(spec: RunSpec, vocabSize: number): ModelConfig {
  return spec.preset === 'clip-b32-d2' ? clipB32d2(vocabSize) : modelConfigFor(spec.preset, vocabSize);
}

/** one real run (in its own process): 2 optimizer steps, peak tensor bytes, heap size, and the estimate */
async function runOne(spec: RunSpec): Promise<void> {
  await initBackend('wasm');
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  const dir = mkdtempSync(join(tmpdir(), 'mf-calib-'));
  try {
    const size = spec.preset === 'tiny' ? 32 : spec.preset === 'small' ? 64 : 224;
    const g = await generateScenes({ out: join(dir, 'scenes'), train: spec.batch * spec.gradAccum * 2, val: 0, test: 0, seed: 1, size: Math.max(64, size) });
    const split = await loadDataset(g.file, { size, split: 'train', cacheDir: join(dir, 'cache') });
    const tokenizer = buildTokenizer(split.captions, { maxLen: 32 });
    const c = runModelConfig(spec, tokenizer.vocabSize);
    const init = createDualEncoder(c, 1);
    const textLen = Math.max(...split.captions.map((t) => tokenizer.encode(t).length));
    const config = trainSchema.parse({ preset: spec.preset === 'clip-b32-d2' ? 'base' : spec.preset, method: spec.method, batch: spec.batch, gradAccum: spec.gradAccum, freezeBlocks: spec.freezeBlocks, epochs: 1, maxSteps: 2, trainSteps: 2, textAttack: 'embedding', checkpointEvery: 100 });
    const before = tf.memory().numBytes;
    const prof = await tf.profile(async () => {
      const r = await trainModel({ out: join(dir, 'run'), train: split, config, seed: 1, quiet: true, init: { model: init, tokenizer, id: 'calib', adopt: true } });
      r.model.dispose();
    });
    const est = estimateTrainingMemory({ model: c, method: spec.method, batch: spec.batch, texts: spec.batch * config.captionsPerImage, textLen, freezeBlocks: spec.freezeBlocks, gradAccum: spec.gradAccum, backend: 'wasm' });
    // `before` holds the adopted init model's weights, which the estimate counts: add them back
    const measured = prof.peakBytes - before + est.weights;
    console.log(JSON.stringify({ ...spec, textLen, measuredPeak: measured, estimate: est.total, ratio: est.total / measured, heap: heapBytes(), activations: est.activations }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runs(): void {
  console.log('preset       method batch freeze accum | tensor peak  wasm heap | estimate (wasm) | est/heap');
  for (const spec of RUNS) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'run-one', JSON.stringify(spec)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`run ${JSON.stringify(spec)} failed:\n${r.stderr}`);
    const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as RunSpec & { measuredPeak: number; estimate: number; ratio: number; heap: number };
    console.log(
      `${o.preset.padEnd(12)} ${o.method.padEnd(6)} ${String(o.batch).padStart(5)} ${String(o.freezeBlocks).padStart(6)} ${String(o.gradAccum).padStart(5)} | ${formatBytes(o.measuredPeak).padStart(11)} ${formatBytes(o.heap).padStart(10)} | ${formatBytes(o.estimate).padStart(15)} | ${(o.estimate / o.heap).toFixed(2)}`,
    );
  }
}

if (mode === 'run-one') await runOne(JSON.parse(process.argv[3]) as RunSpec);
else {
  if (mode === 'towers' || mode === 'all') await towers();
  if (mode === 'runs' || mode === 'all') runs();
}
