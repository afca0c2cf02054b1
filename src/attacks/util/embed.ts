/**
 * Batched, tensor-leak-free embedding helpers over a DualEncoder (forward only; no gradients).
 */
import { tf } from '../../engine/tf.js';
import { takeData } from '../../engine/read.js';
import type { DualEncoder } from '../../model/types.js';

/** images: row-major [n,S,S,3] in [0,1] -> row-major [n,E] (async: read back as webgpu allows) */
export async function embedImageRows(encoder: DualEncoder, images: Float32Array, n: number, size: number, batch = 64): Promise<Float32Array> {
  const E = encoder.config.embedDim;
  const per = size * size * 3;
  if (images.length !== n * per) throw new Error(`embedImageRows: expected ${n * per} pixels, got ${images.length}`);
  const out = new Float32Array(n * E);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const emb = tf.tidy(() => encoder.imageTower(tf.tensor4d(images.subarray(s * per, (s + m) * per), [m, size, size, 3])));
    out.set(await takeData(emb), s * E);
  }
  return out;
}

/** texts -> row-major [n,E], grouped by length (see src/model/text-rows.ts) */
export { embedTextRows } from '../../model/text-rows.js';

/** dot product of row a of A and row b of B (both [*, dim]) */
export function rowDot(A: Float32Array, a: number, B: Float32Array, b: number, dim: number): number {
  let s = 0;
  const oa = a * dim;
  const ob = b * dim;
  for (let k = 0; k < dim; k++) s += A[oa + k] * B[ob + k];
  return s;
}

/** per-image L-inf and L2 norms of adv - clean (row-major [n, per]) */
export function perturbationNorms(adv: Float32Array, clean: Float32Array, n: number): { linf: number[]; l2: number[] } {
  const per = clean.length / n;
  const linf: number[] = [];
  const l2: number[] = [];
  for (let i = 0; i < n; i++) {
    let mx = 0;
    let ss = 0;
    for (let k = i * per; k < (i + 1) * per; k++) {
      const d = Math.abs(adv[k] - clean[k]);
      if (d > mx) mx = d;
      ss += d * d;
    }
    linf.push(mx);
    l2.push(Math.sqrt(ss));
  }
  return { linf, l2 };
}

/** caption index -> image index as an int array (missing pairing -> all -1) */
export function pairingOf(captionToImage: ArrayLike<number> | undefined, nCaptions: number): Int32Array {
  const out = new Int32Array(nCaptions).fill(-1);
  if (!captionToImage) return out;
  if (captionToImage.length !== nCaptions) throw new Error(`captionToImage has ${captionToImage.length} entries for ${nCaptions} captions`);
  for (let i = 0; i < nCaptions; i++) out[i] = captionToImage[i];
  return out;
}

/** image index -> caption indices */
export function imageToCaptions(pairing: Int32Array, nImages: number): number[][] {
  const out: number[][] = Array.from({ length: nImages }, () => []);
  pairing.forEach((img, c) => {
    if (img >= 0) {
      if (img >= nImages) throw new Error(`caption ${c} is paired with image ${img} but the batch has ${nImages} images`);
      out[img].push(c);
    }
  });
  return out;
}

/** uint8 RGB images (row-major [count,S,S,3], e.g. DatasetSplit.images) -> float32 [0,1] for the given rows */
export function imagesToFloat(images: Uint8Array, size: number, rows?: readonly number[]): Float32Array {
  const per = size * size * 3;
  const idx = rows ?? Array.from({ length: images.length / per }, (_, i) => i);
  const out = new Float32Array(idx.length * per);
  idx.forEach((r, k) => {
    for (let j = 0; j < per; j++) out[k * per + j] = images[r * per + j] / 255;
  });
  return out;
}
