/**
 * Hard-negative batches mined with the model being trained.
 *
 * Why: a random batch of 64 rarely holds two images a retrieval gallery confuses (on `scenes`, the same colours
 * with different shapes, or a twin with two objects swapped), so the contrastive loss spends its gradient on
 * negatives the model already separates. Grouping each image with its nearest neighbours in the model's own
 * image-embedding space puts the confusable pairs in the same batch, where InfoNCE must tell them apart
 * (the batch-level counterpart of VSE++'s hardest negatives and of ANCE's ANN-mined negatives in dense retrieval).
 *
 * Mining happens once per epoch from the weights at the start of that epoch: the image tower embeds the split
 * (the trainer uses Encoder.embedImagesMatrix: forward only, chunked), each image's nearest neighbours come from chunked matrix products, and a greedy pass
 * in a seeded random order forms groups of `group` images (a seed image plus its nearest still-unassigned
 * neighbours). Groups are shuffled and cut into batches; the batch count equals the random sampler's, so
 * schedules and step counts do not change. Everything depends on (weights, seed, epoch), and the trainer stores
 * the epoch's batches in its checkpoint, so a resumed run replays the same batches.
 */
import { tf } from '../src/engine/tf.js';
import { takeData } from '../src/engine/read.js';
import { Rng } from '../src/util/rng.js';

/**
 * For every row of `emb` ([n, dim], unit rows), the indices of its k most similar other rows, most similar
 * first ([n * k]). Similarities come from tf matrix products over row chunks, so memory stays O(chunk * n).
 */
export async function nearestNeighbours(emb: Float32Array, n: number, dim: number, k: number, chunk = 512): Promise<Int32Array> {
  if (emb.length !== n * dim) throw new Error(`nearestNeighbours: expected ${n}x${dim} embeddings, got ${emb.length} values`);
  const kk = Math.max(0, Math.min(k, n - 1));
  const out = new Int32Array(n * kk);
  if (kk === 0) return out;
  const all = tf.tensor2d(emb, [n, dim]);
  try {
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      // one async read per chunk: webgpu in Node has no synchronous read
      const data = await takeData(tf.tidy(() => tf.matMul(tf.slice(all, [start, 0], [rows, dim]), all, false, true)));
      for (let r = 0; r < rows; r++) {
        const self = start + r;
        // a k-slot insertion list: k is small (tens), n can be large
        const bestI = new Int32Array(kk).fill(-1);
        const bestV = new Float32Array(kk).fill(-Infinity);
        const row = data.subarray(r * n, (r + 1) * n);
        for (let j = 0; j < n; j++) {
          const v = row[j];
          if (j === self || v <= bestV[kk - 1]) continue;
          let p = kk - 1;
          while (p > 0 && bestV[p - 1] < v) {
            bestV[p] = bestV[p - 1];
            bestI[p] = bestI[p - 1];
            p--;
          }
          bestV[p] = v;
          bestI[p] = j;
        }
        out.set(bestI, self * kk);
      }
    }
  } finally {
    all.dispose();
  }
  return out;
}

export interface HardBatchOptions {
  /** images per batch */
  batch: number;
  /** images per mined group (a seed image and its group - 1 nearest unassigned neighbours) */
  group: number;
  /** neighbours considered per image (default 4 * group) */
  candidates?: number;
  seed: number;
  epoch: number;
}

/**
 * Batches of mined groups from unit-norm image embeddings ([n * dim]). Returns floor(n / batch) batches of
 * `batch` distinct images; with fewer unassigned neighbours than needed a group is simply smaller.
 */
export async function hardBatches(emb: Float32Array, n: number, dim: number, opts: HardBatchOptions): Promise<Int32Array[]> {
  const { batch, group } = opts;
  if (!Number.isInteger(group) || group < 1) throw new Error(`hardBatches: group must be a positive integer, got ${group}`);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`hardBatches: batch must be a positive integer, got ${batch}`);
  const size = Math.min(batch, n);
  const knn = await nearestNeighbours(emb, n, dim, opts.candidates ?? 4 * group);
  const k = n > 1 ? knn.length / n : 0;
  // its own stream, distinct from the random sampler's (seed, epoch) stream
  const rng = new Rng(opts.seed * 7919 + opts.epoch * 104729 + 0x4a4d);
  const order = Array.from({ length: n }, (_, i) => i);
  rng.shuffle(order);
  const assigned = new Uint8Array(n);
  const groups: number[][] = [];
  for (const i of order) {
    if (assigned[i]) continue;
    const g = [i];
    assigned[i] = 1;
    for (let c = 0; c < k && g.length < group; c++) {
      const j = knn[i * k + c];
      if (!assigned[j]) {
        assigned[j] = 1;
        g.push(j);
      }
    }
    groups.push(g);
  }
  rng.shuffle(groups);
  const flat = groups.flat();
  const steps = Math.floor(n / size);
  const out: Int32Array[] = [];
  for (let s = 0; s < steps; s++) out.push(Int32Array.from(flat.slice(s * size, (s + 1) * size)));
  return out;
}
