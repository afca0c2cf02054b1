/**
 * Hugging Face `CLIPModel` checkpoints: config.json, preprocessor_config.json and the weight names.
 *
 * Semantics kept from transformers' CLIP (modeling_clip.py / configuration_clip.py):
 * - every Linear is [out, in] (applied as x @ W^T): q / k / v / out projections, fc1 / fc2, and the two projection
 *   heads `visual_projection` / `text_projection` ([projection_dim, hidden_size], no bias);
 * - `patch_embedding` is a bias-free Conv2d [W, 3, p, p]; the LayerNorm after the embeddings is spelled
 *   `pre_layrnorm`; `*.embeddings.position_ids` are int64 buffers (arange) that old versions saved;
 * - text pooling: `eos_token_id == 2` in text_config means the legacy rule (the position of the largest id, which
 *   is EOT in CLIP's vocabulary); any other id means the first position holding that id;
 * - `hidden_act` names the MLP activation ('quick_gelu' for OpenAI's weights, 'gelu' = exact erf GELU).
 */
import { z } from 'zod';
import type { Activation, ModelConfig } from '../types.js';
import { CheckpointError } from './safetensors.js';
import {
  type ClipShapes,
  type MappingRule,
  type SourceTensor,
  checkShapes,
  concatRule,
  copyRule,
  patchRule,
  qkvSeparateRule,
  transposeRule,
} from './layout.js';
import { formatZodIssues } from '../../util/zod.js';

export const HF_CONFIG_FILE = 'config.json';
export const HF_PREPROCESSOR_FILE = 'preprocessor_config.json';
export const HF_WEIGHTS_FILE = 'model.safetensors';
export const HF_INDEX_FILE = 'model.safetensors.index.json';
/** the eos_token_id that old configs carry and that transformers reads as "pool at the argmax of the ids" */
export const HF_LEGACY_EOS_TOKEN_ID = 2;

const int = z.number().int();

const towerCommon = {
  hidden_size: int.positive(),
  intermediate_size: int.positive(),
  num_hidden_layers: int.positive(),
  num_attention_heads: int.positive(),
  hidden_act: z.string().optional(),
  layer_norm_eps: z.number().positive().optional(),
};

const textConfigSchema = z
  .object({ ...towerCommon, vocab_size: int.positive(), max_position_embeddings: int.positive(), eos_token_id: int.nonnegative().optional() })
  .loose();
const visionConfigSchema = z
  .object({ ...towerCommon, image_size: int.positive(), patch_size: int.positive(), num_channels: int.positive().optional() })
  .loose();

export const hfConfigSchema = z
  .object({
    model_type: z.string().optional(),
    architectures: z.array(z.string()).optional(),
    projection_dim: int.positive().optional(),
    logit_scale_init_value: z.number().optional(),
    text_config: z.record(z.string(), z.unknown()).nullish(),
    vision_config: z.record(z.string(), z.unknown()).nullish(),
    // transformers < 4.2x wrote the tower configs (also) under these names, and they took precedence
    text_config_dict: z.record(z.string(), z.unknown()).nullish(),
    vision_config_dict: z.record(z.string(), z.unknown()).nullish(),
  })
  .loose();

export const hfPreprocessorSchema = z
  .object({
    image_processor_type: z.string().optional(),
    feature_extractor_type: z.string().optional(),
    size: z.union([int.positive(), z.object({ shortest_edge: int.positive() }).loose(), z.object({ height: int.positive(), width: int.positive() }).loose()]).optional(),
    crop_size: z.union([int.positive(), z.object({ height: int.positive(), width: int.positive() }).loose()]).optional(),
    do_center_crop: z.boolean().optional(),
    image_mean: z.tuple([z.number(), z.number(), z.number()]).optional(),
    image_std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
    resample: int.optional(),
  })
  .loose();

/** What a config.json says, in Manyfold's terms. `activation` is undefined when the config does not say. */
export interface ParsedClipConfig {
  shapes: ClipShapes;
  activation: Activation | undefined;
  /** where the activation came from, for the import log */
  activationSource: string;
  textPooling: 'argmax' | 'eos';
  /** the configured EOT id (eos rule only; the argmax rule takes it from the tokenizer) */
  eosTokenId: number | undefined;
  lnEps: number;
  notes: string[];
}


/** HF activation names -> Manyfold's; the tanh-approximation spellings are one function */
const HF_ACTIVATIONS: Record<string, Activation> = {
  quick_gelu: 'quick_gelu',
  gelu: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
};

export function parseHfConfig(json: unknown, file = HF_CONFIG_FILE): ParsedClipConfig {
  const fail = (m: string): never => {
    throw new CheckpointError(`${file}: ${m}`, file);
  };
  const top = hfConfigSchema.safeParse(json);
  if (!top.success) fail(formatZodIssues(top.error));
  const c = top.data!;
  if (c.model_type !== undefined && c.model_type !== 'clip') {
    fail(`model_type is '${c.model_type}', not 'clip' (only CLIPModel checkpoints are supported)`);
  }
  const textRaw = { ...(c.text_config ?? {}), ...(c.text_config_dict ?? {}) };
  const visionRaw = { ...(c.vision_config ?? {}), ...(c.vision_config_dict ?? {}) };
  if (!Object.keys(textRaw).length) fail('text_config is missing');
  if (!Object.keys(visionRaw).length) fail('vision_config is missing');
  const tr = textConfigSchema.safeParse(textRaw);
  if (!tr.success) fail(`text_config: ${formatZodIssues(tr.error)}`);
  const vr = visionConfigSchema.safeParse(visionRaw);
  if (!vr.success) fail(`vision_config: ${formatZodIssues(vr.error)}`);
  const t = tr.data!;
  const v = vr.data!;
  const notes: string[] = [];

  if (v.num_channels !== undefined && v.num_channels !== 3) fail(`vision_config.num_channels is ${v.num_channels}; CLIP images have 3 channels`);
  const projectionDim = c.projection_dim ?? (typeof textRaw.projection_dim === 'number' ? textRaw.projection_dim : undefined);
  if (projectionDim === undefined) fail('projection_dim is missing');

  const shapes: ClipShapes = {
    imageSize: v.image_size,
    patch: v.patch_size,
    visionWidth: v.hidden_size,
    visionLayers: v.num_hidden_layers,
    visionHeads: v.num_attention_heads,
    visionMlp: v.intermediate_size,
    textWidth: t.hidden_size,
    textLayers: t.num_hidden_layers,
    textHeads: t.num_attention_heads,
    textMlp: t.intermediate_size,
    contextLength: t.max_position_embeddings,
    vocabSize: t.vocab_size,
    embedDim: projectionDim!,
  };
  const problems = checkShapes(shapes, HF_FIELDS);
  if (problems.length) fail(problems.join('; '));

  // one activation and one epsilon for both towers (every released CLIP has that; the engine assumes it)
  let activation: Activation | undefined;
  let activationSource = `${file} does not name it`;
  if (t.hidden_act !== undefined || v.hidden_act !== undefined) {
    // a tower without the field follows the other one
    t.hidden_act ??= v.hidden_act;
    v.hidden_act ??= t.hidden_act;
    if (t.hidden_act !== v.hidden_act) {
      fail(`text_config.hidden_act '${String(t.hidden_act)}' and vision_config.hidden_act '${String(v.hidden_act)}' differ; Manyfold needs one activation for both towers`);
    }
    activation = HF_ACTIVATIONS[t.hidden_act!];
    if (!activation) fail(`hidden_act '${t.hidden_act}' is not supported (supported: ${Object.keys(HF_ACTIVATIONS).join(', ')})`);
    activationSource = `${file} hidden_act '${t.hidden_act}'`;
  }
  const tEps = t.layer_norm_eps ?? 1e-5;
  const vEps = v.layer_norm_eps ?? 1e-5;
  if (t.layer_norm_eps === undefined || v.layer_norm_eps === undefined) notes.push(`${file}: layer_norm_eps missing; using CLIP's 1e-5`);
  if (tEps !== vEps) fail(`text_config.layer_norm_eps ${tEps} and vision_config.layer_norm_eps ${vEps} differ; Manyfold uses one epsilon for both towers`);

  let textPooling: 'argmax' | 'eos';
  let eosTokenId: number | undefined;
  if (t.eos_token_id === undefined) {
    textPooling = 'argmax';
    notes.push(`${file}: text_config.eos_token_id missing; pooling at the largest id (transformers' legacy rule)`);
  } else if (t.eos_token_id === HF_LEGACY_EOS_TOKEN_ID) {
    textPooling = 'argmax';
  } else {
    if (t.eos_token_id >= t.vocab_size) fail(`text_config.eos_token_id ${t.eos_token_id} is not an id of the ${t.vocab_size}-token vocabulary`);
    textPooling = 'eos';
    eosTokenId = t.eos_token_id;
  }
  return { shapes, activation, activationSource, textPooling, eosTokenId, lnEps: tEps, notes };
}

const HF_FIELDS: Record<keyof ClipShapes, string> = {
  imageSize: 'vision_config.image_size',
  patch: 'vision_config.patch_size',
  visionWidth: 'vision_config.hidden_size',
  visionLayers: 'vision_config.num_hidden_layers',
  visionHeads: 'vision_config.num_attention_heads',
  visionMlp: 'vision_config.intermediate_size',
  textWidth: 'text_config.hidden_size',
  textLayers: 'text_config.num_hidden_layers',
  textHeads: 'text_config.num_attention_heads',
  textMlp: 'text_config.intermediate_size',
  contextLength: 'text_config.max_position_embeddings',
  vocabSize: 'text_config.vocab_size',
  embedDim: 'projection_dim',
};

export interface Preprocessing {
  pixelMean: [number, number, number];
  pixelStd: [number, number, number];
  resizeShortestEdge: number;
  notes: string[];
}

export const CLIP_PIXEL_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_PIXEL_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** preprocessor_config.json (CLIPImageProcessor) -> mean / std / shortest edge; `json` undefined = file absent */
export function parseHfPreprocessor(json: unknown, imageSize: number, file = HF_PREPROCESSOR_FILE): Preprocessing {
  const notes: string[] = [];
  if (json === undefined) {
    notes.push(`${file} not found: using CLIP's pixel mean / std and shortest edge = image size ${imageSize}`);
    return { pixelMean: [...CLIP_PIXEL_MEAN], pixelStd: [...CLIP_PIXEL_STD], resizeShortestEdge: imageSize, notes };
  }
  const r = hfPreprocessorSchema.safeParse(json);
  if (!r.success) throw new CheckpointError(`${file}: ${formatZodIssues(r.error)}`, file);
  const p = r.data;
  const type = p.image_processor_type ?? p.feature_extractor_type;
  if (type !== undefined && !/^CLIP(ImageProcessor|FeatureExtractor)(Fast)?$/.test(type)) {
    notes.push(`${file}: image_processor_type '${type}' is not CLIPImageProcessor; reading its size / mean / std as CLIP's`);
  }
  let edge: number;
  if (p.size === undefined) {
    edge = imageSize;
    notes.push(`${file}: no size; using shortest edge = image size ${imageSize}`);
  } else if (typeof p.size === 'number') edge = p.size;
  else if ('shortest_edge' in p.size) edge = p.size.shortest_edge as number;
  else {
    const s = p.size as { height: number; width: number };
    if (s.height !== s.width) throw new CheckpointError(`${file}: size ${s.height}x${s.width} resizes to a fixed non-square shape; CLIP's processor resizes the shortest edge`, file);
    edge = s.height;
  }
  if (p.crop_size !== undefined) {
    const [h, w] = typeof p.crop_size === 'number' ? [p.crop_size, p.crop_size] : [p.crop_size.height, p.crop_size.width];
    if (h !== imageSize || w !== imageSize) {
      throw new CheckpointError(`${file}: crop_size ${h}x${w} does not match the model's image_size ${imageSize}`, file);
    }
  }
  if (edge < imageSize) throw new CheckpointError(`${file}: shortest edge ${edge} is smaller than the ${imageSize}-pixel centre crop`, file);
  if (p.resample !== undefined && p.resample !== 3) notes.push(`${file}: resample ${p.resample} is not bicubic (3); Manyfold resizes bicubic`);
  if (p.do_center_crop === false) notes.push(`${file}: do_center_crop is false; Manyfold always centre-crops to the model's square input`);
  const mean = p.image_mean ?? CLIP_PIXEL_MEAN;
  const std = p.image_std ?? CLIP_PIXEL_STD;
  if (!p.image_mean || !p.image_std) notes.push(`${file}: image_mean / image_std missing; using CLIP's`);
  return { pixelMean: [...mean], pixelStd: [...std], resizeShortestEdge: edge, notes };
}

/** checkpoint names that are buffers, not weights (int64 arange position ids) */
export function isHfIgnoredKey(key: string): boolean {
  return key === 'text_model.embeddings.position_ids' || key === 'vision_model.embeddings.position_ids';
}

/** The HF tensor table: one rule per canonical weight, in canonical order. */
export function hfRules(s: ClipShapes): MappingRule[] {
  const rules: MappingRule[] = [];
  const n = (s.imageSize / s.patch) ** 2;
  const src = (key: string, shape: number[], why: string): SourceTensor => ({ key, shape, why });
  const blocks = (tower: 'vision_model' | 'text_model', target: 'image' | 'text', layers: number, w: number, m: number, cfg: string): void => {
    const wWhy = `${cfg}.hidden_size`;
    const mWhy = `${cfg}.intermediate_size x ${cfg}.hidden_size`;
    for (let i = 0; i < layers; i++) {
      const k = `${tower}.encoder.layers.${i}`;
      const t = `${target}.blocks.${i}`;
      const attn = (x: 'q' | 'k' | 'v' | 'out', part: 'weight' | 'bias'): SourceTensor =>
        src(`${k}.self_attn.${x}_proj.${part}`, part === 'weight' ? [w, w] : [w], wWhy);
      rules.push(
        copyRule(`${t}.ln1.g`, [w], src(`${k}.layer_norm1.weight`, [w], wWhy)),
        copyRule(`${t}.ln1.b`, [w], src(`${k}.layer_norm1.bias`, [w], wWhy)),
        qkvSeparateRule(`${t}.attn.qkv.w`, [attn('q', 'weight'), attn('k', 'weight'), attn('v', 'weight')], w),
        concatRule(`${t}.attn.qkv.b`, [attn('q', 'bias'), attn('k', 'bias'), attn('v', 'bias')]),
        transposeRule(`${t}.attn.proj.w`, attn('out', 'weight')),
        copyRule(`${t}.attn.proj.b`, [w], attn('out', 'bias')),
        copyRule(`${t}.ln2.g`, [w], src(`${k}.layer_norm2.weight`, [w], wWhy)),
        copyRule(`${t}.ln2.b`, [w], src(`${k}.layer_norm2.bias`, [w], wWhy)),
        transposeRule(`${t}.mlp.fc1.w`, src(`${k}.mlp.fc1.weight`, [m, w], mWhy)),
        copyRule(`${t}.mlp.fc1.b`, [m], src(`${k}.mlp.fc1.bias`, [m], `${cfg}.intermediate_size`)),
        transposeRule(`${t}.mlp.fc2.w`, src(`${k}.mlp.fc2.weight`, [w, m], `${cfg}.hidden_size x ${cfg}.intermediate_size`)),
        copyRule(`${t}.mlp.fc2.b`, [w], src(`${k}.mlp.fc2.bias`, [w], wWhy)),
      );
    }
  };
  const wv = s.visionWidth;
  const vWhy = 'vision_config.hidden_size';
  rules.push(
    patchRule('image.patch.w', src('vision_model.embeddings.patch_embedding.weight', [wv, 3, s.patch, s.patch], 'vision_config.hidden_size, 3, patch_size, patch_size'), wv, s.patch),
    copyRule('image.cls', [wv], src('vision_model.embeddings.class_embedding', [wv], vWhy)),
    copyRule('image.pos', [n + 1, wv], src('vision_model.embeddings.position_embedding.weight', [n + 1, wv], `(image_size ${s.imageSize} / patch_size ${s.patch})^2 + 1 = ${n + 1} positions x ${vWhy}`)),
    copyRule('image.lnpre.g', [wv], src('vision_model.pre_layrnorm.weight', [wv], vWhy)),
    copyRule('image.lnpre.b', [wv], src('vision_model.pre_layrnorm.bias', [wv], vWhy)),
  );
  blocks('vision_model', 'image', s.visionLayers, wv, s.visionMlp, 'vision_config');
  rules.push(
    copyRule('image.ln.g', [wv], src('vision_model.post_layernorm.weight', [wv], vWhy)),
    copyRule('image.ln.b', [wv], src('vision_model.post_layernorm.bias', [wv], vWhy)),
    transposeRule('image.proj.w', src('visual_projection.weight', [s.embedDim, wv], `projection_dim ${s.embedDim} x ${vWhy} ${wv}`)),
  );
  const wt = s.textWidth;
  const tWhy = 'text_config.hidden_size';
  rules.push(
    copyRule('text.tok', [s.vocabSize, wt], src('text_model.embeddings.token_embedding.weight', [s.vocabSize, wt], `text_config.vocab_size x ${tWhy}`)),
    copyRule('text.pos', [s.contextLength, wt], src('text_model.embeddings.position_embedding.weight', [s.contextLength, wt], `text_config.max_position_embeddings x ${tWhy}`)),
  );
  blocks('text_model', 'text', s.textLayers, wt, s.textMlp, 'text_config');
  rules.push(
    copyRule('text.ln.g', [wt], src('text_model.final_layer_norm.weight', [wt], tWhy)),
    copyRule('text.ln.b', [wt], src('text_model.final_layer_norm.bias', [wt], tWhy)),
    transposeRule('text.proj.w', src('text_projection.weight', [s.embedDim, wt], `projection_dim ${s.embedDim} x ${tWhy} ${wt}`)),
    copyRule('logitScale', [], src('logit_scale', [], 'a scalar')),
  );
  return rules;
}

const HF_ACTIVATION_NAMES: Record<Activation, string> = { quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_tanh: 'gelu_pytorch_tanh' };

/** config.json for a CLIP-family ModelConfig (what transformers' CLIPConfig.to_dict writes, minus defaults it ignores) */
export function hfConfigJson(c: ModelConfig, ids: { sotId: number; eotId: number }, torchDtype: 'float32' | 'float16'): Record<string, unknown> {
  const k = c.clip!;
  const act = HF_ACTIVATION_NAMES[k.activation];
  // the argmax rule is written as the legacy id 2; an eos rule on id 2 would be read back as argmax
  if (k.textPooling === 'eos' && k.eosTokenId === HF_LEGACY_EOS_TOKEN_ID) {
    throw new CheckpointError(`cannot export to Hugging Face: the model pools at eos_token_id 2, which transformers reads as the legacy argmax rule`);
  }
  const eos = k.textPooling === 'argmax' ? HF_LEGACY_EOS_TOKEN_ID : k.eosTokenId;
  return {
    architectures: ['CLIPModel'],
    initializer_factor: 1.0,
    logit_scale_init_value: 2.6592,
    model_type: 'clip',
    projection_dim: c.embedDim,
    text_config: {
      attention_dropout: 0.0,
      bos_token_id: k.textPooling === 'argmax' ? 0 : ids.sotId,
      dropout: 0.0,
      eos_token_id: eos,
      hidden_act: act,
      hidden_size: c.text.width,
      initializer_factor: 1.0,
      initializer_range: 0.02,
      intermediate_size: Math.round(c.text.mlpRatio * c.text.width),
      layer_norm_eps: k.lnEps,
      max_position_embeddings: c.text.maxLen,
      model_type: 'clip_text_model',
      num_attention_heads: c.text.heads,
      num_hidden_layers: c.text.depth,
      pad_token_id: 1,
      projection_dim: c.embedDim,
      vocab_size: c.text.vocabSize,
    },
    torch_dtype: torchDtype,
    transformers_version: '4.44.0',
    vision_config: {
      attention_dropout: 0.0,
      dropout: 0.0,
      hidden_act: act,
      hidden_size: c.image.width,
      image_size: c.image.size,
      initializer_factor: 1.0,
      initializer_range: 0.02,
      intermediate_size: Math.round(c.image.mlpRatio * c.image.width),
      layer_norm_eps: k.lnEps,
      model_type: 'clip_vision_model',
      num_attention_heads: c.image.heads,
      num_channels: 3,
      num_hidden_layers: c.image.depth,
      patch_size: c.image.patch,
      projection_dim: c.embedDim,
    },
  };
}

export function hfPreprocessorJson(c: ModelConfig): Record<string, unknown> {
  const k = c.clip!;
  return {
    crop_size: { height: c.image.size, width: c.image.size },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: k.pixelMean,
    image_processor_type: 'CLIPImageProcessor',
    image_std: k.pixelStd,
    resample: 3,
    rescale_factor: 0.00392156862745098,
    size: { shortest_edge: k.resizeShortestEdge },
  };
}
