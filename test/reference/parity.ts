/**
 * The independent reference's fixture (test/fixtures/clip/reference.json, written by clip_ref.py) and the
 * agreement bars every engine is held to: the tfjs model (test/model/clip-parity.test.ts) and the onnx towers
 * (test/model/onnx-graph.test.ts).
 */
import * as path from 'node:path';
import { z } from 'zod';

export const REFERENCE_FIXTURE = path.join(import.meta.dirname, '..', 'fixtures', 'clip', 'reference.json');

export const PARITY = {
  minCos: 0.99999,
  maxAbs: 5e-6,
  logitAbsPerScale: 2e-5,
  gradMinCos: 0.999,
  gradNormRel: 1e-3,
} as const;

const matrix = z.array(z.array(z.number()));
export const variantSchema = z.object({
  format: z.enum(['hf', 'open_clip']),
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
  config: z
    .object({
      imageSize: z.number().int().positive(),
      contextLength: z.number().int().positive(),
      embedDim: z.number().int().positive(),
      vocabSize: z.number().int().positive(),
      textPooling: z.enum(['argmax', 'eos']),
      eosTokenId: z.number().int().nonnegative(),
    })
    .loose(),
  inputs: z.object({
    pixels: z.object({ images: z.number().int().positive(), size: z.number().int().positive(), sum_u8: z.number().int(), first_u8: z.array(z.number().int()) }).loose(),
    input_ids: z.array(z.array(z.number().int().nonnegative())),
    pooled_positions: z.array(z.number().int().nonnegative()),
  }).loose(),
  image_embeds: matrix,
  text_embeds: matrix,
  logit_scale_exp: z.number().positive(),
  logits_per_image: matrix,
  pixel_grad: z.object({
    text_index: z.array(z.number().int().nonnegative()),
    indices: z.array(z.number().int().nonnegative()),
    norm: z.array(z.number().positive()),
    values: matrix,
  }).loose(),
});
export const fixtureSchema = z.object({ format: z.literal('manyfold-clip-reference/1'), variants: z.record(z.string(), variantSchema) }).loose();
export type RefVariant = z.infer<typeof variantSchema>;
export type FixtureFile = z.infer<typeof fixtureSchema>;

/** lowbias32 (Chris Wellons): the integer hash clip_ref.py's pixels_u8 uses */
function lowbias32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** [n, size, size, 3] uint8 random colour blocks, block edge 2^(b mod 4) for image b (see clip_ref.py) */
export function referencePixels(n: number, size: number): Uint8Array {
  const out = new Uint8Array(n * size * size * 3);
  let o = 0;
  for (let b = 0; b < n; b++) {
    const s = b % 4;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < 3; c++) out[o++] = lowbias32(b * 2 ** 20 + ((y >> s) * size + (x >> s)) * 3 + c) >>> 24;
      }
    }
  }
  return out;
}

export interface Agreement {
  minCos: number;
  maxAbs: number;
}

export function agreement(got: ArrayLike<number>, ref: number[][]): Agreement {
  const e = ref[0].length;
  let minCos = Infinity;
  let maxAbs = 0;
  ref.forEach((row, i) => {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = 0; k < e; k++) {
      const a = got[i * e + k];
      dot += a * row[k];
      na += a * a;
      nb += row[k] * row[k];
      maxAbs = Math.max(maxAbs, Math.abs(a - row[k]));
    }
    minCos = Math.min(minCos, dot / Math.sqrt(na * nb));
  });
  return { minCos, maxAbs };
}

