/**
 * Model size presets.
 * - tiny: CPU/wasm, CI and tests. 32x32 images, 4-block ViT (width 128), 2-block text transformer (width 128).
 * - small: CPU, a longer run. 64x64 images, 6-block ViT (width 256), 4-block text transformer (width 256).
 * - base: GPU (tfjs-node-gpu). 224x224 images, 12-block ViT-B/16-like towers at width 512.
 */
import type { ModelConfig } from './types.js';

export type PresetName = 'tiny' | 'small' | 'base';

export const PRESET_NAMES: readonly PresetName[] = ['tiny', 'small', 'base'];

/**
 * Channels of the conv stem's two convolutions. Why a conv stem at all: with the linear stem a patch is one linear
 * map of its pixels, so an object that straddles patch borders differently in every image must be learned at every
 * offset; on `scenes` the tiny ViT learned colour in a few hundred steps but shape not in thousands (docs/results.md).
 * Overlapping 3x3 convolutions are translation-equivariant, which is the bias shape needs (Xiao et al. 2021,
 * "Early convolutions help transformers see better").
 */
export const CONV_STEM_CHANNELS = [32, 64] as const;

/** log(1/0.07): CLIP's initial inverse temperature. */
export const INIT_LOGIT_SCALE = Math.log(1 / 0.07);

/** Build the ModelConfig of a preset; vocabSize comes from the tokenizer. */
export function modelConfigFromPreset(preset: PresetName, vocabSize: number): ModelConfig {
  if (!Number.isInteger(vocabSize) || vocabSize < 2) {
    throw new Error(`modelConfigFromPreset: vocabSize must be an integer >= 2, got ${vocabSize}`);
  }
  switch (preset) {
    case 'tiny':
      return {
        preset,
        embedDim: 128,
        image: { size: 32, patch: 8, width: 128, depth: 4, heads: 4, mlpRatio: 4 },
        text: { width: 128, depth: 2, heads: 4, mlpRatio: 4, maxLen: 32, vocabSize },
        initLogitScale: INIT_LOGIT_SCALE,
      };
    case 'small':
      return {
        preset,
        embedDim: 256,
        image: { size: 64, patch: 8, width: 256, depth: 6, heads: 8, mlpRatio: 4 },
        text: { width: 256, depth: 4, heads: 8, mlpRatio: 4, maxLen: 32, vocabSize },
        initLogitScale: INIT_LOGIT_SCALE,
      };
    case 'base':
      return {
        preset,
        embedDim: 512,
        image: { size: 224, patch: 16, width: 512, depth: 12, heads: 8, mlpRatio: 4 },
        text: { width: 512, depth: 12, heads: 8, mlpRatio: 4, maxLen: 64, vocabSize },
        initLogitScale: INIT_LOGIT_SCALE,
      };
    default:
      throw new Error(`Unknown model preset '${String(preset)}' (expected one of ${PRESET_NAMES.join(', ')})`);
  }
}

/** Image-tower settings a training run may override on top of its preset (`--stem`, `--image-size`, `--patch`). */
export interface ImageOverrides {
  stem?: 'linear' | 'conv';
  imageSize?: number;
  patch?: number;
}

/** The preset's ModelConfig with the run's image overrides applied and validated (one place, so the data loader
 *  and the model always agree on the input size). */
export function modelConfigFor(preset: PresetName, vocabSize: number, o: ImageOverrides = {}): ModelConfig {
  const c = modelConfigFromPreset(preset, vocabSize);
  c.image = {
    ...c.image,
    ...(o.stem ? { stem: o.stem } : {}),
    ...(o.imageSize ? { size: o.imageSize } : {}),
    ...(o.patch ? { patch: o.patch } : {}),
  };
  validateModelConfig(c);
  return c;
}

/** Throws with a precise message if the config cannot build a model. */
export function validateModelConfig(c: ModelConfig): void {
  const fail = (m: string): never => {
    throw new Error(`Invalid model config (${c.preset}): ${m}`);
  };
  const posInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < 1) fail(`${name} must be a positive integer, got ${v}`);
  };
  posInt(c.embedDim, 'embedDim');
  for (const [tower, t] of [
    ['image', c.image],
    ['text', c.text],
  ] as const) {
    posInt(t.width, `${tower}.width`);
    posInt(t.depth, `${tower}.depth`);
    posInt(t.heads, `${tower}.heads`);
    if (!(t.mlpRatio > 0) || !Number.isInteger(Math.round(t.mlpRatio * t.width * 1e6) / 1e6)) {
      fail(`${tower}.mlpRatio ${t.mlpRatio} x width ${t.width} must be a positive whole number of MLP units`);
    }
    if (t.width % t.heads !== 0) fail(`${tower}.width ${t.width} is not divisible by heads ${t.heads}`);
  }
  posInt(c.image.size, 'image.size');
  posInt(c.image.patch, 'image.patch');
  if (c.image.size % c.image.patch !== 0) fail(`image.size ${c.image.size} is not a multiple of patch ${c.image.patch}`);
  const stem = c.image.stem ?? 'linear';
  if (stem !== 'linear' && stem !== 'conv') fail(`image.stem must be 'linear' or 'conv', got '${String(stem)}'`);
  if (stem === 'conv' && c.image.patch % 4 !== 0) fail(`image.stem 'conv' needs a patch that is a multiple of 4 (two stride-2 convolutions), got ${c.image.patch}`);
  posInt(c.text.maxLen, 'text.maxLen');
  if (!Number.isInteger(c.text.vocabSize) || c.text.vocabSize < 2) fail(`text.vocabSize must be >= 2`);
  if (!Number.isFinite(c.initLogitScale)) fail('initLogitScale must be finite');
  const family = c.family ?? 'manyfold';
  if (family !== 'manyfold' && family !== 'clip') fail(`family must be 'manyfold' or 'clip', got '${String(family)}'`);
  if (family === 'clip') {
    const k = c.clip;
    if (!k) return fail(`family 'clip' needs a 'clip' section (activation, textPooling, eosTokenId, pixelMean, pixelStd, lnEps, resizeShortestEdge)`);
    if (!['gelu', 'quick_gelu', 'gelu_tanh'].includes(k.activation)) fail(`clip.activation must be gelu, quick_gelu or gelu_tanh, got '${String(k.activation)}'`);
    if (k.textPooling !== 'argmax' && k.textPooling !== 'eos') fail(`clip.textPooling must be 'argmax' or 'eos', got '${String(k.textPooling)}'`);
    if (!Number.isInteger(k.eosTokenId) || k.eosTokenId < 0 || k.eosTokenId >= c.text.vocabSize) {
      fail(`clip.eosTokenId ${k.eosTokenId} is not an id of the ${c.text.vocabSize}-token vocabulary`);
    }
    for (const [name, v] of [['pixelMean', k.pixelMean], ['pixelStd', k.pixelStd]] as const) {
      if (!Array.isArray(v) || v.length !== 3 || v.some((x) => !Number.isFinite(x))) fail(`clip.${name} must be three finite numbers`);
    }
    if (k.pixelStd.some((x) => !(x > 0))) fail('clip.pixelStd must be positive');
    if (!(k.lnEps > 0 && k.lnEps < 1)) fail(`clip.lnEps must be in (0, 1), got ${k.lnEps}`);
    if (!Number.isInteger(k.resizeShortestEdge) || k.resizeShortestEdge < c.image.size) {
      fail(`clip.resizeShortestEdge ${k.resizeShortestEdge} must be an integer >= image.size ${c.image.size} (the centre crop)`);
    }
    if ((c.image.stem ?? 'linear') !== 'linear') fail(`family 'clip' has a linear patch embedding; image.stem must be 'linear'`);
  }
}

/** Number of trainable parameters a config builds (matches createDualEncoder's variables). */
export function countParameters(c: ModelConfig): number {
  const block = (w: number, r: number) => {
    const m = Math.round(r * w);
    return 2 * w + (w * 3 * w + 3 * w) + (w * w + w) + 2 * w + (w * m + m) + (m * w + w);
  };
  const i = c.image;
  const n = (i.size / i.patch) ** 2;
  const clip = c.family === 'clip';
  // CLIP: no patch-embedding bias, plus ln_pre (gain and bias)
  const img =
    i.patch * i.patch * 3 * i.width + (clip ? 2 * i.width : i.width) + i.width + (n + 1) * i.width + i.depth * block(i.width, i.mlpRatio) + 2 * i.width + i.width * c.embedDim;
  const t = c.text;
  const txt = t.vocabSize * t.width + t.maxLen * t.width + t.depth * block(t.width, t.mlpRatio) + 2 * t.width + t.width * c.embedDim;
  return img + txt + 1;
}
