/**
 * How much tensor memory a training run needs, estimated from the model config and the run's shapes before any
 * work is done, so that a run that cannot fit is refused with a hint instead of dying hours in (wasm's heap is a
 * 32-bit address space: 4 GiB).
 *
 * The estimate is the sum of
 * - weights: every parameter of the trained model, plus any other copy held during the run (FARE's frozen
 *   reference encoder), float32;
 * - AdamW moments: two float32 tensors per TRAINABLE parameter (frozen ones have none);
 * - gradients: one per trainable parameter, plus the running sum when accumulating micro-batches;
 * - on wasm, XNNPACK's packed weights: the wasm backend packs the right operand of every matrix product on first
 *   use and keeps the packed copy while the weight lives, outside tf.memory()'s count (measured: a forward pass of
 *   a CLIP-B/32-width image tower grew the heap by 1.0-1.4x its weights' bytes); counted as one copy of every
 *   model's weights;
 * - activations: the peak of what one micro-batch's forward and backward pass hold at once, per tower on the tape
 *   (both towers for clean / MAT; the image tower for TeCoA / FARE, which run the text tower outside the tape):
 *   rows x depth x (tokens x width x ACTIVATION_FLOATS_PER_TOKEN_WIDTH + heads x tokens^2) float32s, plus one copy
 *   of the tower's weights (every op on the tape saves its inputs for the backward pass, and a saved tensor is a
 *   copy on wasm: its Identity kernel copies, so each matrix product on the tape keeps a copy of its weight).
 *   The heads x tokens^2 term is the attention probabilities, which matter only at long sequences.
 *
 * The peak comes at the end of the forward pass, when the tensors every op saved for the backward pass are all
 * alive, frozen blocks included (tfjs tapes every op of the differentiated function): so freezing lowers the
 * gradients and moments, not this. The backward after it holds less, because the trainer's backward
 * (training/lean-grads.ts) releases each op's saved tensors and output gradients once the op is done; tfjs' own
 * tf.variableGrads keeps all of them to the end (measured: 2.1-2.4x the peak, tiny and small presets).
 *
 * Calibration (training/calibrate-memory.ts `towers`): the trainer's gradients (weights: a training step; input:
 * a PGD step) of a loss on one tower at a time, on the tiny and small presets (widths 128 / 256, depths 2-6, 17-257
 * tokens, 8 and 32 rows, 0 or 2 frozen blocks) and on CLIP ViT-B/32's widths and token counts (2 blocks), with
 * tf.profile's peakBytes (tf.memory().numBytes sampled after every kernel) minus the bytes live before, minus one
 * copy of the tower's weights, divided by rows x tokens x width x depth: 29-52 floats after taking out the
 * attention term (the top: CLIP ViT-B/32's widths at 8 rows; the tiny and small presets 29-44). The constant is
 * the top of that range, rounded up, so the estimate errs high. `runs` checks the whole sum against real training
 * steps (trainModel, 2 optimizer steps) by the wasm heap they grew (which includes XNNPACK's packed weights):
 * estimate / heap 0.99-1.37 for MAT / TeCoA (CLIP-B/32 widths 1.18 / 0.99), 1.5-2.5 for clean runs (their
 * captions are bucketed by length, the estimate pads every caption to the longest).
 */
import type { ModelConfig } from './types.js';

/** float32 bytes */
const F32 = 4;

/** float32s per token, per unit of width, per block (module comment: calibration) */
export const ACTIVATION_FLOATS_PER_TOKEN_WIDTH = 56;

/** wasm32: emscripten's maximum heap in tfjs-backend-wasm 4.22 (getHeapMax(): 4 GiB minus one 64 KiB page) */
export const WASM_HEAP_LIMIT_BYTES = 4294901760;

export type TrainMethod = 'clean' | 'tecoa' | 'fare' | 'mat';

export interface MemoryEstimateInput {
  model: ModelConfig;
  method: TrainMethod;
  /** images per micro-batch (--batch) */
  batch: number;
  /** captions per micro-batch through the text tower (batch x captions per image, + augmented and negative captions) */
  texts: number;
  /** caption length in tokens; default the model's maxLen (batches are padded to their longest caption) */
  textLen?: number;
  /** extra images per micro-batch through the image tower (hard negative images) */
  extraImages?: number;
  freezeBlocks: number;
  gradAccum: number;
  /** other full models held in memory during the run (FARE's reference: 1) */
  extraModels?: number;
  /** the tfjs backend ('wasm' adds XNNPACK's packed weights) */
  backend?: string;
}

export interface MemoryEstimate {
  parameters: number;
  trainableParameters: number;
  /** bytes */
  weights: number;
  moments: number;
  gradients: number;
  activations: number;
  /** wasm: XNNPACK's packed copies of the weights (0 elsewhere) */
  packedWeights: number;
  total: number;
}

interface ParamGroup {
  tower: 'image' | 'text' | 'scale';
  /** block index, or -1 for the embeddings (before block 0), or Infinity for the head (after the last block) */
  block: number;
  size: number;
}

/** tokens of one image: patches + class token */
export function imageTokens(c: ModelConfig): number {
  return (c.image.size / c.image.patch) ** 2 + 1;
}

/**
 * The parameter groups a config builds, by position in the towers (the canonical variable names of
 * dual-encoder.ts: conv stem, patch (with a bias unless family 'clip'), class, position, ln_pre (clip), blocks,
 * final LN, projection; token, position, blocks, final LN, projection; the logit scale).
 */
function paramGroups(c: ModelConfig): ParamGroup[] {
  const clip = c.family === 'clip';
  const block = (w: number, r: number) => {
    const m = Math.round(r * w);
    return 4 * w + (3 * w * w + 3 * w) + (w * w + w) + (w * m + m) + (m * w + w);
  };
  const out: ParamGroup[] = [];
  const im = c.image;
  const wi = im.width;
  let patchIn = im.patch * im.patch * 3;
  if ((im.stem ?? 'linear') === 'conv') {
    out.push({ tower: 'image', block: -1, size: 27 * 32 + 32 + 288 * 64 + 64 });
    patchIn = (im.patch / 4) ** 2 * 64;
  }
  out.push({ tower: 'image', block: -1, size: patchIn * wi + (clip ? 0 : wi) + wi + imageTokens(c) * wi + (clip ? 2 * wi : 0) });
  for (let i = 0; i < im.depth; i++) out.push({ tower: 'image', block: i, size: block(wi, im.mlpRatio) });
  out.push({ tower: 'image', block: Infinity, size: 2 * wi + wi * c.embedDim });
  const tx = c.text;
  const wt = tx.width;
  out.push({ tower: 'text', block: -1, size: tx.vocabSize * wt + tx.maxLen * wt });
  for (let i = 0; i < tx.depth; i++) out.push({ tower: 'text', block: i, size: block(wt, tx.mlpRatio) });
  out.push({ tower: 'text', block: Infinity, size: 2 * wt + wt * c.embedDim });
  out.push({ tower: 'scale', block: Infinity, size: 1 });
  return out;
}

/** parameters of one tower (the logit scale belongs to neither) */
export function towerParameterCount(c: ModelConfig, tower: 'image' | 'text'): number {
  return paramGroups(c)
    .filter((g) => g.tower === tower)
    .reduce((a, g) => a + g.size, 0);
}

/** parameters of a config (every variable createDualEncoder makes) */
export function parameterCount(c: ModelConfig): number {
  return paramGroups(c).reduce((a, g) => a + g.size, 0);
}

/** parameters a run trains: not frozen by freezeBlocks (training/freeze.ts), image tower only for TeCoA / FARE */
export function trainableParameterCount(c: ModelConfig, o: { freezeBlocks: number; method: TrainMethod }): number {
  const imageOnly = o.method === 'tecoa' || o.method === 'fare';
  return paramGroups(c)
    .filter((g) => !(imageOnly && g.tower !== 'image'))
    .filter((g) => o.freezeBlocks <= 0 || g.block >= o.freezeBlocks)
    .reduce((a, g) => a + g.size, 0);
}

export function estimateTrainingMemory(i: MemoryEstimateInput): MemoryEstimate {
  const c = i.model;
  const parameters = parameterCount(c);
  const trainable = trainableParameterCount(c, i);
  const weights = parameters * (1 + (i.extraModels ?? 0)) * F32;
  const moments = 2 * trainable * F32;
  const gradients = trainable * (i.gradAccum > 1 ? 2 : 1) * F32;
  const tower = (name: 'image' | 'text', rows: number, tokens: number, t: { width: number; depth: number; heads: number }) =>
    (rows * t.depth * (tokens * t.width * ACTIVATION_FLOATS_PER_TOKEN_WIDTH + t.heads * tokens * tokens) + towerParameterCount(c, name)) * F32;
  const textOnTape = i.method === 'clean' || i.method === 'mat';
  const activations =
    tower('image', i.batch + (i.extraImages ?? 0), imageTokens(c), c.image) + (textOnTape ? tower('text', i.texts, i.textLen ?? c.text.maxLen, c.text) : 0);
  const packedWeights = i.backend === 'wasm' ? weights : 0;
  return { parameters, trainableParameters: trainable, weights, moments, gradients, activations, packedWeights, total: weights + moments + gradients + activations + packedWeights };
}

/** the backend's hard limit on tensor memory, or null when it has none Manyfold knows of (native TensorFlow, GPU) */
export function backendMemoryLimit(backend: string): number | null {
  return backend === 'wasm' ? WASM_HEAP_LIMIT_BYTES : null;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(1)} KiB`;
}

function formatCount(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

/** one line per term, for the run's log */
export function formatMemoryEstimate(e: MemoryEstimate, backend: string): string {
  const limit = backendMemoryLimit(backend);
  return [
    `memory estimate (${backend}): ${formatBytes(e.total)}${limit ? ` of the ${formatBytes(limit)} heap` : ''}`,
    `  weights      ${formatBytes(e.weights).padStart(11)}  (${formatCount(e.parameters)} parameters, ${formatCount(e.trainableParameters)} trainable)`,
    `  AdamW moments${formatBytes(e.moments).padStart(11)}`,
    `  gradients    ${formatBytes(e.gradients).padStart(11)}`,
    `  activations  ${formatBytes(e.activations).padStart(11)}  (one micro-batch, and the copies of the weights the tape saves)`,
    ...(e.packedWeights > 0 ? [`  packed weights${formatBytes(e.packedWeights).padStart(10)}  (XNNPACK's copies of the weights, wasm)`] : []),
  ].join('\n');
}

export class MemoryLimitError extends Error {
  override name = 'MemoryLimitError';
}

/**
 * Throws a MemoryLimitError when the estimate exceeds the backend's limit, naming both and the ways out. On
 * backends without a known limit it never throws (the caller prints the estimate).
 */
export function checkMemoryFits(e: MemoryEstimate, backend: string, run: { batch: number; freezeBlocks: number; gradAccum: number; depth: number }): void {
  const limit = backendMemoryLimit(backend);
  if (limit === null || e.total <= limit) return;
  const hints = [
    run.batch > 1 ? `a smaller --batch (now ${run.batch}; activations ${formatBytes(e.activations)} scale with it), with --grad-accum ${Math.max(2, run.gradAccum * 2)} to keep the effective batch` : null,
    run.freezeBlocks < run.depth ? `--freeze-blocks N (now ${run.freezeBlocks}): frozen blocks need no gradients or AdamW moments` : null,
    `the GPU backend (--backend tensorflow with @tensorflow/tfjs-node-gpu): B/16 and larger CLIP models are for the GPU`,
  ].filter(Boolean);
  throw new MemoryLimitError(
    `training needs about ${formatBytes(e.total)} of memory (weights ${formatBytes(e.weights)}, AdamW moments ${formatBytes(e.moments)}, ` +
      `gradients ${formatBytes(e.gradients)}, activations ${formatBytes(e.activations)}${e.packedWeights > 0 ? `, packed weights ${formatBytes(e.packedWeights)}` : ''}), ` +
      `more than the ${backend} backend's ${formatBytes(limit)} heap. Try:\n  - ${hints.join('\n  - ')}`,
  );
}
