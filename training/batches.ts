import { tf } from '../src/engine/tf.js';
import type { DualEncoder } from '../src/model/types.js';
import { Rng } from '../src/util/rng.js';
import type { DatasetSplit } from '../src/data/types.js';

/**
 * The image order of one epoch. It depends only on (seed, epoch), so a resumed run replays exactly the batches
 * the interrupted run would have seen. The last partial batch is dropped to keep batch shapes constant.
 */
export function epochBatches(count: number, batch: number, seed: number, epoch: number): Int32Array[] {
  const order = Array.from({ length: count }, (_, i) => i);
  new Rng(seed * 7919 + epoch * 104729 + 17).shuffle(order);
  const size = Math.min(batch, count);
  const steps = Math.floor(count / size);
  const out: Int32Array[] = [];
  for (let s = 0; s < steps; s++) out.push(Int32Array.from(order.slice(s * size, (s + 1) * size)));
  return out;
}

export function stepsPerEpoch(count: number, batch: number): number {
  return Math.floor(count / Math.min(batch, count));
}

/** Pixels of the given images as float32 in [0,1], [n, S, S, 3] row-major. */
export function gatherPixels(split: Pick<DatasetSplit, 'size' | 'images'>, indices: ArrayLike<number>): Float32Array {
  const per = split.size * split.size * 3;
  const out = new Float32Array(indices.length * per);
  for (let k = 0; k < indices.length; k++) {
    const src = split.images.subarray(indices[k] * per, (indices[k] + 1) * per);
    const base = k * per;
    for (let p = 0; p < per; p++) out[base + p] = src[p] / 255;
  }
  return out;
}

/**
 * Random translation, in place: each image of the batch moves by its own offset in [-maxShift, maxShift] pixels per
 * axis, edges replicated. A patch tokenizer sees an object cut differently at every offset, so the image tower has to
 * learn what the object is rather than which pixels a training image had (without it the tiny ViT memorises shape;
 * scripts/shape-learnability.ts, docs/results.md). Relative positions (the captions' left/right/above) are kept.
 */
export function translateBatch(pixels: Float32Array, count: number, size: number, maxShift: number, rng: Rng): void {
  if (maxShift <= 0) return;
  const per = size * size * 3;
  const src = new Float32Array(per);
  const clamp = (v: number) => (v < 0 ? 0 : v >= size ? size - 1 : v);
  for (let k = 0; k < count; k++) {
    const dy = rng.int(2 * maxShift + 1) - maxShift;
    const dx = rng.int(2 * maxShift + 1) - maxShift;
    if (dx === 0 && dy === 0) continue;
    const base = k * per;
    src.set(pixels.subarray(base, base + per));
    for (let y = 0; y < size; y++) {
      const row = clamp(y - dy) * size;
      for (let x = 0; x < size; x++) {
        const from = (row + clamp(x - dx)) * 3;
        const to = base + (y * size + x) * 3;
        pixels[to] = src[from];
        pixels[to + 1] = src[from + 1];
        pixels[to + 2] = src[from + 2];
      }
    }
  }
}

/**
 * Up to k captions per image, sampled without replacement by a generator seeded per step.
 * Returns caption indices and, for each, the batch row of the image it describes.
 */
export function sampleCaptions(split: DatasetSplit, images: ArrayLike<number>, k: number, rng: Rng): { captions: number[]; owner: Int32Array } {
  const captions: number[] = [];
  const owner: number[] = [];
  for (let row = 0; row < images.length; row++) {
    const pool = split.imageToCaptions[images[row]].slice();
    if (pool.length === 0) throw new Error(`image ${split.imageIds[images[row]]} has no captions`);
    rng.shuffle(pool);
    for (const c of pool.slice(0, k)) {
      captions.push(c);
      owner.push(row);
    }
  }
  return { captions, owner: Int32Array.from(owner) };
}

/** Stacks pre-tokenised captions into [n, L] int32 ids padded with 0, L = the longest in this batch. */
export function stackIds(tokenized: number[][], captions: number[]): { ids: Int32Array; length: number } {
  let length = 1;
  for (const c of captions) length = Math.max(length, tokenized[c].length);
  const ids = new Int32Array(captions.length * length);
  captions.forEach((c, row) => ids.set(tokenized[c], row * length));
  return { ids, length };
}

/**
 * The captions of a step as `buckets` groups of similar length (sorted by token count, ties in batch order;
 * equal-sized groups), each padded only to its own longest caption, with `owner` permuted the same way.
 * Why: captions run from 6 to 32 tokens, and padding a batch to its longest caption spends ~40% of the text
 * tower's work on pad tokens. Pads are masked out of attention and pooling, so every caption's embedding is the
 * same as in one padded batch; the contrastive loss does not depend on the order of the captions.
 */
export function stackIdsBucketed(
  tokenized: number[][],
  captions: number[],
  owner: Int32Array,
  buckets: number,
): { parts: { ids: Int32Array; rows: number; length: number }[]; owner: Int32Array } {
  if (!Number.isInteger(buckets) || buckets < 1) throw new Error(`stackIdsBucketed: buckets must be a positive integer, got ${buckets}`);
  const order = captions.map((_, i) => i).sort((a, b) => tokenized[captions[a]].length - tokenized[captions[b]].length || a - b);
  const k = Math.min(buckets, captions.length);
  const parts: { ids: Int32Array; rows: number; length: number }[] = [];
  for (let p = 0; p < k; p++) {
    const slice = order.slice(Math.floor((p * order.length) / k), Math.floor(((p + 1) * order.length) / k));
    const { ids, length } = stackIds(tokenized, slice.map((i) => captions[i]));
    parts.push({ ids, rows: slice.length, length });
  }
  return { parts, owner: Int32Array.from(order, (i) => owner[i]) };
}

/** Text embeddings of stackIdsBucketed's parts, concatenated in part order (the order it gave `owner`). */
export function textTowerBucketed(model: DualEncoder, idTs: tf.Tensor2D[]): tf.Tensor2D {
  return idTs.length === 1 ? model.textTower(idTs[0]) : (tf.concat(idTs.map((t) => model.textTower(t)), 0) as tf.Tensor2D);
}
