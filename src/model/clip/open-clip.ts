/**
 * open_clip checkpoints (the layout of OpenAI's original CLIP, which open_clip keeps): open_clip_config.json and
 * the weight names of open_clip_model.safetensors.
 *
 * Semantics kept from open_clip's model.py / transformer.py:
 * - attention is torch.nn.MultiheadAttention: q / k / v fused in `in_proj_weight` [3W, W] (rows q, k, v) and
 *   `in_proj_bias`; `out_proj` is a Linear [W, W];
 * - the MLP is `c_fc` / `c_proj` (Linear [out, in]); `conv1` is a bias-free Conv2d [W, 3, p, p];
 * - `visual.proj` [W, E] and `text_projection` [W, E] are applied as `x @ P` (not transposed like a Linear);
 * - the activation is QuickGELU iff model_cfg.quick_gelu is true, else exact GELU; but configs for OpenAI's weights
 *   often omit the key (open_clip then forces QuickGELU by the `pretrained` tag, outside the file), so an absent key
 *   is treated as unknown, never as GELU;
 * - text pooling at the argmax of the ids (EOT is the largest id); heads of the vision tower = width / head_width.
 * Checkpoints saved from DistributedDataParallel prefix every key with `module.` (stripped by the importer).
 */
import { z } from 'zod';
import type { Activation, ModelConfig } from '../types.js';
import { CheckpointError } from './safetensors.js';
import { CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, type Preprocessing } from './hf.js';
import { type ClipShapes, type MappingRule, type SourceTensor, checkShapes, copyRule, patchRule, transposeRule } from './layout.js';
import { formatZodIssues } from '../../util/zod.js';

export const OPEN_CLIP_CONFIG_FILE = 'open_clip_config.json';
export const OPEN_CLIP_WEIGHTS_FILE = 'open_clip_model.safetensors';

const int = z.number().int();
const squareSize = z.union([int.positive(), z.tuple([int.positive(), int.positive()])]);

const visionCfgSchema = z
  .object({
    image_size: squareSize,
    layers: int.positive(),
    width: int.positive(),
    patch_size: squareSize,
    head_width: int.positive().optional(),
    heads: int.positive().optional(),
    mlp_ratio: z.number().positive().optional(),
    ls_init_value: z.number().nullish(),
    timm_model_name: z.string().nullish(),
    attentional_pool: z.boolean().optional(),
    pool_type: z.string().optional(),
    no_ln_pre: z.boolean().optional(),
    final_ln_after_pool: z.boolean().optional(),
    output_tokens: z.boolean().optional(),
    norm_kwargs: z.object({ eps: z.number().positive().optional() }).loose().optional(),
  })
  .loose();

const textCfgSchema = z
  .object({
    context_length: int.positive(),
    vocab_size: int.positive(),
    width: int.positive(),
    heads: int.positive().optional(),
    layers: int.positive(),
    mlp_ratio: z.number().positive().optional(),
    ls_init_value: z.number().nullish(),
    hf_model_name: z.string().nullish(),
    pool_type: z.string().optional(),
    embed_cls: z.boolean().optional(),
    no_causal_mask: z.boolean().optional(),
    proj_bias: z.boolean().optional(),
    norm_kwargs: z.object({ eps: z.number().positive().optional() }).loose().optional(),
  })
  .loose();

export const openClipConfigSchema = z
  .object({
    model_cfg: z
      .object({
        embed_dim: int.positive(),
        quick_gelu: z.boolean().optional(),
        vision_cfg: visionCfgSchema,
        text_cfg: textCfgSchema,
      })
      .loose(),
    preprocess_cfg: z
      .object({
        mean: z.tuple([z.number(), z.number(), z.number()]).optional(),
        std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
        interpolation: z.string().optional(),
        resize_mode: z.string().optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

export type OpenClipConfigJson = z.infer<typeof openClipConfigSchema>;

/** open_clip's defaults for fields its configs may omit (CLIPVisionCfg / CLIPTextCfg) */
const DEFAULT_HEAD_WIDTH = 64;
const DEFAULT_TEXT_HEADS = 8;
const DEFAULT_MLP_RATIO = 4;

const FIELDS: Record<keyof ClipShapes, string> = {
  imageSize: 'model_cfg.vision_cfg.image_size',
  patch: 'model_cfg.vision_cfg.patch_size',
  visionWidth: 'model_cfg.vision_cfg.width',
  visionLayers: 'model_cfg.vision_cfg.layers',
  visionHeads: 'model_cfg.vision_cfg.heads (width / head_width)',
  visionMlp: 'model_cfg.vision_cfg.mlp_ratio x width',
  textWidth: 'model_cfg.text_cfg.width',
  textLayers: 'model_cfg.text_cfg.layers',
  textHeads: 'model_cfg.text_cfg.heads',
  textMlp: 'model_cfg.text_cfg.mlp_ratio x width',
  contextLength: 'model_cfg.text_cfg.context_length',
  vocabSize: 'model_cfg.text_cfg.vocab_size',
  embedDim: 'model_cfg.embed_dim',
};


export interface ParsedOpenClipConfig {
  shapes: ClipShapes;
  activation: Activation | undefined;
  activationSource: string;
  lnEps: number;
  preprocess: Preprocessing;
  notes: string[];
}

export function parseOpenClipConfig(json: unknown, file = OPEN_CLIP_CONFIG_FILE): ParsedOpenClipConfig {
  const fail = (m: string): never => {
    throw new CheckpointError(`${file}: ${m}`, file);
  };
  const r = openClipConfigSchema.safeParse(json);
  if (!r.success) fail(formatZodIssues(r.error));
  const cfg = r.data!;
  const m = cfg.model_cfg;
  const v = m.vision_cfg;
  const t = m.text_cfg;
  const notes: string[] = [];

  // switches that change the architecture away from CLIP's: refuse rather than import something that runs differently
  if (v.timm_model_name) fail(`model_cfg.vision_cfg.timm_model_name '${v.timm_model_name}': timm image towers are not CLIP ViTs and are not supported`);
  if (t.hf_model_name) fail(`model_cfg.text_cfg.hf_model_name '${t.hf_model_name}': Hugging Face text towers are not supported`);
  if (v.ls_init_value != null || t.ls_init_value != null) fail('ls_init_value is set: layer scale is not part of the CLIP architecture Manyfold runs');
  if (v.attentional_pool) fail('model_cfg.vision_cfg.attentional_pool is true (CoCa-style pooling) and not supported');
  if (v.pool_type !== undefined && v.pool_type !== 'tok') fail(`model_cfg.vision_cfg.pool_type '${v.pool_type}' is not supported (CLIP pools the class token: 'tok')`);
  if (v.no_ln_pre) fail('model_cfg.vision_cfg.no_ln_pre is true; CLIP has ln_pre');
  if (v.final_ln_after_pool) fail('model_cfg.vision_cfg.final_ln_after_pool is true; not supported');
  if (t.pool_type !== undefined && t.pool_type !== 'argmax') fail(`model_cfg.text_cfg.pool_type '${t.pool_type}' is not supported (CLIP pools at the argmax of the ids)`);
  if (t.embed_cls) fail('model_cfg.text_cfg.embed_cls is true; not supported');
  if (t.no_causal_mask) fail('model_cfg.text_cfg.no_causal_mask is true; CLIP text attention is causal');
  if (t.proj_bias) fail('model_cfg.text_cfg.proj_bias is true; CLIP projections have no bias');

  const square = (x: number | [number, number], field: string): number => {
    if (typeof x === 'number') return x;
    if (x[0] !== x[1]) fail(`${field} [${x.join(', ')}] is not square`);
    return x[0];
  };
  const imageSize = square(v.image_size, 'model_cfg.vision_cfg.image_size');
  const patch = square(v.patch_size, 'model_cfg.vision_cfg.patch_size');
  let visionHeads: number;
  if (v.heads !== undefined) visionHeads = v.heads;
  else {
    const hw = v.head_width ?? DEFAULT_HEAD_WIDTH;
    if (v.head_width === undefined) notes.push(`${file}: vision_cfg.head_width missing; using open_clip's default ${DEFAULT_HEAD_WIDTH}`);
    if (v.width % hw !== 0) fail(`model_cfg.vision_cfg.width ${v.width} is not divisible by head_width ${hw}`);
    visionHeads = v.width / hw;
  }
  if (t.heads === undefined) notes.push(`${file}: text_cfg.heads missing; using open_clip's default ${DEFAULT_TEXT_HEADS}`);
  const mlp = (ratio: number | undefined, width: number, field: string): number => {
    const units = (ratio ?? DEFAULT_MLP_RATIO) * width;
    // open_clip computes int(mlp_ratio * width); a ratio written from M / W may miss the integer by an ulp
    if (Math.abs(units - Math.round(units)) > 1e-6) fail(`${field} ${ratio} x width ${width} is not a whole number of MLP units`);
    return Math.round(units);
  };
  const shapes: ClipShapes = {
    imageSize,
    patch,
    visionWidth: v.width,
    visionLayers: v.layers,
    visionHeads,
    visionMlp: mlp(v.mlp_ratio, v.width, 'model_cfg.vision_cfg.mlp_ratio'),
    textWidth: t.width,
    textLayers: t.layers,
    textHeads: t.heads ?? DEFAULT_TEXT_HEADS,
    textMlp: mlp(t.mlp_ratio, t.width, 'model_cfg.text_cfg.mlp_ratio'),
    contextLength: t.context_length,
    vocabSize: t.vocab_size,
    embedDim: m.embed_dim,
  };
  const problems = checkShapes(shapes, FIELDS);
  if (problems.length) fail(problems.join('; '));

  const vEps = v.norm_kwargs?.eps ?? 1e-5;
  const tEps = t.norm_kwargs?.eps ?? 1e-5;
  if (vEps !== tEps) fail(`vision_cfg.norm_kwargs.eps ${vEps} and text_cfg.norm_kwargs.eps ${tEps} differ; Manyfold uses one epsilon for both towers`);

  let activation: Activation | undefined;
  let activationSource = `${file} has no model_cfg.quick_gelu`;
  if (m.quick_gelu !== undefined) {
    activation = m.quick_gelu ? 'quick_gelu' : 'gelu';
    activationSource = `${file} model_cfg.quick_gelu ${m.quick_gelu}`;
  }

  const p = cfg.preprocess_cfg;
  if (!p) notes.push(`${file}: no preprocess_cfg; using CLIP's pixel mean / std`);
  else if (!p.mean || !p.std) notes.push(`${file}: preprocess_cfg lacks mean / std; using CLIP's`);
  if (p?.interpolation !== undefined && p.interpolation !== 'bicubic') notes.push(`${file}: preprocess_cfg.interpolation '${p.interpolation}'; Manyfold resizes bicubic`);
  if (p?.resize_mode !== undefined && p.resize_mode !== 'shortest') notes.push(`${file}: preprocess_cfg.resize_mode '${p.resize_mode}'; Manyfold resizes the shortest edge, then centre-crops`);
  const preprocess: Preprocessing = {
    pixelMean: [...(p?.mean ?? CLIP_PIXEL_MEAN)],
    pixelStd: [...(p?.std ?? CLIP_PIXEL_STD)],
    // open_clip's eval transform resizes the shortest edge to image_size, then centre-crops image_size
    resizeShortestEdge: imageSize,
    notes: [],
  };
  return { shapes, activation, activationSource, lnEps: vEps, preprocess, notes };
}

/** The open_clip tensor table (names without a `module.` prefix), one rule per canonical weight, canonical order. */
export function openClipRules(s: ClipShapes): MappingRule[] {
  const rules: MappingRule[] = [];
  const n = (s.imageSize / s.patch) ** 2;
  const src = (key: string, shape: number[], why: string): SourceTensor => ({ key, shape, why });
  const blocks = (prefix: string, target: 'image' | 'text', layers: number, w: number, m: number, cfg: string): void => {
    const wWhy = `${cfg}.width`;
    for (let i = 0; i < layers; i++) {
      const k = `${prefix}.resblocks.${i}`;
      const t = `${target}.blocks.${i}`;
      rules.push(
        copyRule(`${t}.ln1.g`, [w], src(`${k}.ln_1.weight`, [w], wWhy)),
        copyRule(`${t}.ln1.b`, [w], src(`${k}.ln_1.bias`, [w], wWhy)),
        transposeRule(`${t}.attn.qkv.w`, src(`${k}.attn.in_proj_weight`, [3 * w, w], `3 x ${wWhy}, ${wWhy}`)),
        copyRule(`${t}.attn.qkv.b`, [3 * w], src(`${k}.attn.in_proj_bias`, [3 * w], `3 x ${wWhy}`)),
        transposeRule(`${t}.attn.proj.w`, src(`${k}.attn.out_proj.weight`, [w, w], wWhy)),
        copyRule(`${t}.attn.proj.b`, [w], src(`${k}.attn.out_proj.bias`, [w], wWhy)),
        copyRule(`${t}.ln2.g`, [w], src(`${k}.ln_2.weight`, [w], wWhy)),
        copyRule(`${t}.ln2.b`, [w], src(`${k}.ln_2.bias`, [w], wWhy)),
        transposeRule(`${t}.mlp.fc1.w`, src(`${k}.mlp.c_fc.weight`, [m, w], `${cfg}.mlp_ratio x width, width`)),
        copyRule(`${t}.mlp.fc1.b`, [m], src(`${k}.mlp.c_fc.bias`, [m], `${cfg}.mlp_ratio x width`)),
        transposeRule(`${t}.mlp.fc2.w`, src(`${k}.mlp.c_proj.weight`, [w, m], `width, ${cfg}.mlp_ratio x width`)),
        copyRule(`${t}.mlp.fc2.b`, [w], src(`${k}.mlp.c_proj.bias`, [w], wWhy)),
      );
    }
  };
  const wv = s.visionWidth;
  const vWhy = 'model_cfg.vision_cfg.width';
  rules.push(
    patchRule('image.patch.w', src('visual.conv1.weight', [wv, 3, s.patch, s.patch], 'vision width, 3, patch_size, patch_size'), wv, s.patch),
    copyRule('image.cls', [wv], src('visual.class_embedding', [wv], vWhy)),
    copyRule('image.pos', [n + 1, wv], src('visual.positional_embedding', [n + 1, wv], `(image_size ${s.imageSize} / patch_size ${s.patch})^2 + 1 = ${n + 1} positions x width`)),
    copyRule('image.lnpre.g', [wv], src('visual.ln_pre.weight', [wv], vWhy)),
    copyRule('image.lnpre.b', [wv], src('visual.ln_pre.bias', [wv], vWhy)),
  );
  blocks('visual.transformer', 'image', s.visionLayers, wv, s.visionMlp, 'model_cfg.vision_cfg');
  rules.push(
    copyRule('image.ln.g', [wv], src('visual.ln_post.weight', [wv], vWhy)),
    copyRule('image.ln.b', [wv], src('visual.ln_post.bias', [wv], vWhy)),
    copyRule('image.proj.w', [wv, s.embedDim], src('visual.proj', [wv, s.embedDim], `vision width ${wv} x model_cfg.embed_dim ${s.embedDim}`)),
  );
  const wt = s.textWidth;
  const tWhy = 'model_cfg.text_cfg.width';
  rules.push(
    copyRule('text.tok', [s.vocabSize, wt], src('token_embedding.weight', [s.vocabSize, wt], `model_cfg.text_cfg.vocab_size x width`)),
    copyRule('text.pos', [s.contextLength, wt], src('positional_embedding', [s.contextLength, wt], `model_cfg.text_cfg.context_length x width`)),
  );
  blocks('transformer', 'text', s.textLayers, wt, s.textMlp, 'model_cfg.text_cfg');
  rules.push(
    copyRule('text.ln.g', [wt], src('ln_final.weight', [wt], tWhy)),
    copyRule('text.ln.b', [wt], src('ln_final.bias', [wt], tWhy)),
    copyRule('text.proj.w', [wt, s.embedDim], src('text_projection', [wt, s.embedDim], `text width ${wt} x model_cfg.embed_dim ${s.embedDim}`)),
    copyRule('logitScale', [], src('logit_scale', [], 'a scalar')),
  );
  return rules;
}

/** open_clip_config.json for a CLIP-family ModelConfig */
export function openClipConfigJson(c: ModelConfig): Record<string, unknown> {
  const k = c.clip!;
  if (k.activation === 'gelu_tanh') {
    throw new CheckpointError("cannot export to open_clip: the model's activation is the tanh GELU approximation, which open_clip configs cannot express (quick_gelu true / false)");
  }
  // pooling at the first EOT is the argmax rule when EOT is the largest id (every encoded text holds it)
  if (k.textPooling !== 'argmax' && k.eosTokenId !== c.text.vocabSize - 1) {
    throw new CheckpointError(`cannot export to open_clip: the model pools text at the first eos_token_id ${k.eosTokenId}, but open_clip pools at the argmax of the ids; export with --format hf`);
  }
  if (k.resizeShortestEdge !== c.image.size) {
    throw new CheckpointError(`cannot export to open_clip: its preprocessing resizes the shortest edge to image_size ${c.image.size}, but the model resizes to ${k.resizeShortestEdge}; export with --format hf`);
  }
  const headWidth = c.image.width / c.image.heads;
  const eps = k.lnEps === 1e-5 ? {} : { norm_kwargs: { eps: k.lnEps } };
  return {
    model_cfg: {
      embed_dim: c.embedDim,
      quick_gelu: k.activation === 'quick_gelu',
      vision_cfg: {
        image_size: c.image.size,
        layers: c.image.depth,
        width: c.image.width,
        head_width: headWidth,
        mlp_ratio: c.image.mlpRatio,
        patch_size: c.image.patch,
        ...eps,
      },
      text_cfg: {
        context_length: c.text.maxLen,
        vocab_size: c.text.vocabSize,
        width: c.text.width,
        heads: c.text.heads,
        layers: c.text.depth,
        mlp_ratio: c.text.mlpRatio,
        ...eps,
      },
    },
    preprocess_cfg: { mean: k.pixelMean, std: k.pixelStd, interpolation: 'bicubic', resize_mode: 'shortest' },
  };
}
