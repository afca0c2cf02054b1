/**
 * Image N:1 augmenters on uint8 RGB [S,S,3] images.
 * - basic: random resized crop (area 0.8-1, aspect 3/4-4/3, bilinear back to S), colour jitter (brightness,
 *   contrast, saturation; no hue shift, which would change colour words), Gaussian pixel noise. The captions are
 *   kept: none of these changes what a caption states (a crop keeps >= 80% of the area).
 * - flip: horizontal mirror. Captions without left/right words are kept as they are; captions with them get the
 *   words swapped ("a star left of a cross" -> "a star right of a cross"), so the pair stays aligned.
 */
import type { Rng } from '../util/rng.js';
import type { Augmenter, Pair } from './types.js';
import { flipLeftRight } from './words.js';

export interface BasicImageOptions {
  variants?: number;
  minArea?: number;
  brightness?: number;
  contrast?: number;
  saturation?: number;
  /** std of the Gaussian noise, in 0..255 units */
  noiseStd?: number;
}

const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** bilinear resample of the crop [x0,x0+w) x [y0,y0+h) of img (S x S) back to S x S */
export function resizedCrop(img: Uint8Array, S: number, x0: number, y0: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    const sy = Math.min(S - 1, Math.max(0, y0 + ((y + 0.5) * h) / S - 0.5));
    const ya = Math.floor(sy);
    const yb = Math.min(S - 1, ya + 1);
    const fy = sy - ya;
    for (let x = 0; x < S; x++) {
      const sx = Math.min(S - 1, Math.max(0, x0 + ((x + 0.5) * w) / S - 0.5));
      const xa = Math.floor(sx);
      const xb = Math.min(S - 1, xa + 1);
      const fx = sx - xa;
      for (let c = 0; c < 3; c++) {
        const v =
          (1 - fy) * ((1 - fx) * img[(ya * S + xa) * 3 + c] + fx * img[(ya * S + xb) * 3 + c]) +
          fy * ((1 - fx) * img[(yb * S + xa) * 3 + c] + fx * img[(yb * S + xb) * 3 + c]);
        out[(y * S + x) * 3 + c] = clamp255(v);
      }
    }
  }
  return out;
}

export function flipHorizontal(img: Uint8Array, S: number): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) {
      const a = (y * S + x) * 3;
      const b = (y * S + (S - 1 - x)) * 3;
      out[a] = img[b];
      out[a + 1] = img[b + 1];
      out[a + 2] = img[b + 2];
    }
  return out;
}

export function basicImageTransform(img: Uint8Array, S: number, rng: Rng, o: Required<Omit<BasicImageOptions, 'variants'>>): Uint8Array {
  // random resized crop
  const area = rng.uniform(o.minArea, 1) * S * S;
  const logR = rng.uniform(Math.log(3 / 4), Math.log(4 / 3));
  const w = Math.min(S, Math.sqrt(area * Math.exp(logR)));
  const h = Math.min(S, Math.sqrt(area / Math.exp(logR)));
  const x0 = rng.uniform(0, S - w);
  const y0 = rng.uniform(0, S - h);
  const out = resizedCrop(img, S, x0, y0, w, h);
  // colour jitter
  const b = 1 + rng.uniform(-o.brightness, o.brightness);
  const c = 1 + rng.uniform(-o.contrast, o.contrast);
  const s = 1 + rng.uniform(-o.saturation, o.saturation);
  let mean = 0;
  for (let i = 0; i < out.length; i++) mean += out[i];
  mean = (mean / out.length) * b;
  for (let p = 0; p < S * S; p++) {
    const r0 = out[p * 3] * b;
    const g0 = out[p * 3 + 1] * b;
    const b0 = out[p * 3 + 2] * b;
    const gray = 0.299 * r0 + 0.587 * g0 + 0.114 * b0;
    const vals = [r0, g0, b0].map((v) => (gray + (v - gray) * s - mean) * c + mean + o.noiseStd * rng.normal());
    out[p * 3] = clamp255(vals[0]);
    out[p * 3 + 1] = clamp255(vals[1]);
    out[p * 3 + 2] = clamp255(vals[2]);
  }
  return out;
}

export function basicImageAugmenter(opts: BasicImageOptions = {}): Augmenter {
  const o = { minArea: opts.minArea ?? 0.8, brightness: opts.brightness ?? 0.2, contrast: opts.contrast ?? 0.2, saturation: opts.saturation ?? 0.2, noiseStd: opts.noiseStd ?? 4 };
  const variants = opts.variants ?? 2;
  return {
    name: 'basic',
    kind: 'image',
    augment(pair: Pair, rng: Rng): Pair[] {
      return Array.from({ length: variants }, (_, k) => ({
        ...pair,
        image: basicImageTransform(pair.image, pair.size, rng, o),
        captions: pair.captions.slice(),
        origins: pair.origins.slice(),
        view: `basic#${k}`,
      }));
    },
  };
}

/** horizontal flip; left/right words in the captions are swapped with the image (the aligned rule) */
export function flipAugmenter(): Augmenter {
  return {
    name: 'flip',
    kind: 'image',
    augment(pair: Pair): Pair[] {
      return [{ ...pair, image: flipHorizontal(pair.image, pair.size), captions: pair.captions.map(flipLeftRight), origins: pair.origins.slice(), view: 'flip', scene: undefined }];
    },
  };
}
