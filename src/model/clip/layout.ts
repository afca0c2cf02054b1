/**
 * The CLIP architecture as a checkpoint sees it, and the rules that turn a format's tensors into Manyfold's
 * canonical weights and back. hf.ts and open-clip.ts each describe their format as a list of MappingRules over
 * the same canonical list (canonicalWeights), so import and export share one table per format and cannot drift:
 * export is the exact inverse of import (transposes, reorders and splits move values, they never round).
 *
 * Canonical layout (what DualEncoder's variables hold): every linear weight is [in, out] (applied as x @ W);
 * `image.patch.w` row (py*p + px)*3 + c holds conv weight [w][c][py][px] (pixels flattened row-major, RGB last);
 * `attn.qkv.w` [W, 3W] has columns q | k | v.
 */
import type { ModelConfig } from '../types.js';

/** Shapes of a CLIP model, read from a checkpoint's config (never from a preset). */
export interface ClipShapes {
  imageSize: number;
  patch: number;
  visionWidth: number;
  visionLayers: number;
  visionHeads: number;
  visionMlp: number;
  textWidth: number;
  textLayers: number;
  textHeads: number;
  textMlp: number;
  contextLength: number;
  vocabSize: number;
  embedDim: number;
}

export interface SourceTensor {
  /** the name in the checkpoint (without any `module.` prefix) */
  key: string;
  shape: number[];
  /** which config fields fix this shape (quoted in errors, so a mis-shaped tensor points at the config field) */
  why: string;
}

/** One canonical weight and how it is made from (and turned back into) a format's tensors. */
export interface MappingRule {
  target: string;
  targetShape: number[];
  sources: SourceTensor[];
  /** source values (float32, in `sources` order) -> canonical values */
  forward(src: Float32Array[]): Float32Array;
  /** canonical values -> source values (in `sources` order) */
  backward(x: Float32Array): Float32Array[];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** [rows, cols] row-major -> [cols, rows] */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  if (a.length !== rows * cols) throw new Error(`transpose2d: ${a.length} values for [${rows}, ${cols}]`);
  const out = new Float32Array(a.length);
  // blocked so both sides stay in cache for the 768 x 3072 matrices of real checkpoints
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
    }
  }
  return out;
}

export function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, x) => s + x.length, 0));
  let o = 0;
  for (const x of parts) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

export function split(a: Float32Array, n: number): Float32Array[] {
  const len = a.length / n;
  return Array.from({ length: n }, (_, i) => a.slice(i * len, (i + 1) * len));
}

/** conv weight [W, 3, p, p] -> image.patch.w [p*p*3, W] */
export function patchFromConv(conv: Float32Array, width: number, p: number): Float32Array {
  const out = new Float32Array(conv.length);
  for (let w = 0; w < width; w++)
    for (let c = 0; c < 3; c++)
      for (let py = 0; py < p; py++)
        for (let px = 0; px < p; px++) out[((py * p + px) * 3 + c) * width + w] = conv[((w * 3 + c) * p + py) * p + px];
  return out;
}

/** image.patch.w [p*p*3, W] -> conv weight [W, 3, p, p] */
export function convFromPatch(patch: Float32Array, width: number, p: number): Float32Array {
  const out = new Float32Array(patch.length);
  for (let w = 0; w < width; w++)
    for (let c = 0; c < 3; c++)
      for (let py = 0; py < p; py++)
        for (let px = 0; px < p; px++) out[((w * 3 + c) * p + py) * p + px] = patch[((py * p + px) * 3 + c) * width + w];
  return out;
}

// ------------------------------------------------------------------------------------- rule constructors

/** same values, possibly a different shape (e.g. logit_scale [] or [1]) */
export function copyRule(target: string, targetShape: number[], src: SourceTensor): MappingRule {
  return { target, targetShape, sources: [src], forward: ([a]) => a, backward: (x) => [x] };
}

/** a PyTorch Linear weight [out, in] -> canonical [in, out] */
export function transposeRule(target: string, src: SourceTensor): MappingRule {
  const [rows, cols] = src.shape;
  return {
    target,
    targetShape: [cols, rows],
    sources: [src],
    forward: ([a]) => transpose2d(a, rows, cols),
    backward: (x) => [transpose2d(x, cols, rows)],
  };
}

/** separate q / k / v Linear weights [W, W] each -> [W, 3W] (rows of the stacked [3W, W] become columns) */
export function qkvSeparateRule(target: string, srcs: [SourceTensor, SourceTensor, SourceTensor], width: number): MappingRule {
  return {
    target,
    targetShape: [width, 3 * width],
    sources: srcs,
    forward: (abc) => transpose2d(concat(abc), 3 * width, width),
    backward: (x) => split(transpose2d(x, width, 3 * width), 3),
  };
}

/** separate q / k / v biases -> one [3W] */
export function concatRule(target: string, srcs: SourceTensor[]): MappingRule {
  const n = srcs.reduce((s, t) => s + numel(t.shape), 0);
  return { target, targetShape: [n], sources: srcs, forward: (xs) => concat(xs), backward: (x) => split(x, srcs.length) };
}

export function patchRule(target: string, src: SourceTensor, width: number, p: number): MappingRule {
  return {
    target,
    targetShape: [p * p * 3, width],
    sources: [src],
    forward: ([a]) => patchFromConv(a, width, p),
    backward: (x) => [convFromPatch(x, width, p)],
  };
}

// ------------------------------------------------------------------------------------- canonical model

/** The canonical names and shapes, in DualEncoder's variable order (the order an artifact stores them in). */
export function canonicalWeights(s: ClipShapes): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [];
  const n = (s.imageSize / s.patch) ** 2;
  const block = (prefix: string, w: number, m: number): void => {
    out.push(
      { name: `${prefix}.ln1.g`, shape: [w] },
      { name: `${prefix}.ln1.b`, shape: [w] },
      { name: `${prefix}.attn.qkv.w`, shape: [w, 3 * w] },
      { name: `${prefix}.attn.qkv.b`, shape: [3 * w] },
      { name: `${prefix}.attn.proj.w`, shape: [w, w] },
      { name: `${prefix}.attn.proj.b`, shape: [w] },
      { name: `${prefix}.ln2.g`, shape: [w] },
      { name: `${prefix}.ln2.b`, shape: [w] },
      { name: `${prefix}.mlp.fc1.w`, shape: [w, m] },
      { name: `${prefix}.mlp.fc1.b`, shape: [m] },
      { name: `${prefix}.mlp.fc2.w`, shape: [m, w] },
      { name: `${prefix}.mlp.fc2.b`, shape: [w] },
    );
  };
  const wv = s.visionWidth;
  out.push(
    { name: 'image.patch.w', shape: [s.patch * s.patch * 3, wv] },
    { name: 'image.cls', shape: [wv] },
    { name: 'image.pos', shape: [n + 1, wv] },
    { name: 'image.lnpre.g', shape: [wv] },
    { name: 'image.lnpre.b', shape: [wv] },
  );
  for (let i = 0; i < s.visionLayers; i++) block(`image.blocks.${i}`, wv, s.visionMlp);
  out.push({ name: 'image.ln.g', shape: [wv] }, { name: 'image.ln.b', shape: [wv] }, { name: 'image.proj.w', shape: [wv, s.embedDim] });
  const wt = s.textWidth;
  out.push({ name: 'text.tok', shape: [s.vocabSize, wt] }, { name: 'text.pos', shape: [s.contextLength, wt] });
  for (let i = 0; i < s.textLayers; i++) block(`text.blocks.${i}`, wt, s.textMlp);
  out.push({ name: 'text.ln.g', shape: [wt] }, { name: 'text.ln.b', shape: [wt] }, { name: 'text.proj.w', shape: [wt, s.embedDim] });
  out.push({ name: 'logitScale', shape: [] });
  return out;
}

/** The shapes a CLIP-family ModelConfig describes (for export). */
export function shapesFromConfig(c: ModelConfig): ClipShapes {
  return {
    imageSize: c.image.size,
    patch: c.image.patch,
    visionWidth: c.image.width,
    visionLayers: c.image.depth,
    visionHeads: c.image.heads,
    visionMlp: Math.round(c.image.mlpRatio * c.image.width),
    textWidth: c.text.width,
    textLayers: c.text.depth,
    textHeads: c.text.heads,
    textMlp: Math.round(c.text.mlpRatio * c.text.width),
    contextLength: c.text.maxLen,
    vocabSize: c.text.vocabSize,
    embedDim: c.embedDim,
  };
}

/**
 * Consistency checks every format shares; returns problems as "field: message" strings (empty = consistent).
 * `fields` maps each shape to the config field that set it, so messages quote the user's own file.
 */
export function checkShapes(s: ClipShapes, fields: Record<keyof ClipShapes, string>): string[] {
  const problems: string[] = [];
  for (const k of Object.keys(s) as (keyof ClipShapes)[]) {
    if (!Number.isSafeInteger(s[k]) || s[k] <= 0) problems.push(`${fields[k]} must be a positive integer, got ${String(s[k])}`);
  }
  if (problems.length) return problems;
  if (s.visionWidth % s.visionHeads !== 0) problems.push(`${fields.visionWidth} ${s.visionWidth} is not divisible by ${fields.visionHeads} ${s.visionHeads}`);
  if (s.textWidth % s.textHeads !== 0) problems.push(`${fields.textWidth} ${s.textWidth} is not divisible by ${fields.textHeads} ${s.textHeads}`);
  if (s.imageSize % s.patch !== 0) problems.push(`${fields.imageSize} ${s.imageSize} is not a multiple of ${fields.patch} ${s.patch}`);
  if (s.contextLength < 2) problems.push(`${fields.contextLength} ${s.contextLength} leaves no room for the start and end tokens`);
  return problems;
}
