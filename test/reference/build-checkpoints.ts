/**
 * Tiny random CLIP checkpoints, laid out byte for byte like the real ones (Hugging Face `CLIPModel` directories
 * and open_clip hub directories), for the import / export tests and the independent Python reference
 * (test/reference/*.py keys on the variant names below, so they are fixed).
 *
 *   npx tsx test/reference/build-checkpoints.ts --out DIR [--variant NAME]...
 *     writes DIR/<variant>/ for every variant (or the named ones) and prints each file's sha256
 *
 * Deterministic: every value comes from a seeded Rng (src/util/rng.ts) derived from the variant name, tensors are
 * written in a fixed order, JSON with fixed key order, so the same code writes the same bytes on every machine.
 * The weights are generated once per variant in PyTorch's own layouts (Linear [out, in], conv [out, in, kh, kw])
 * and written under the format's names: the two formats differ only in names, fusion and projection layout.
 *
 * Scales are realistic (linear weights ~ N(0, 0.5/sqrt(in)), LayerNorm gains ~ 1 + N(0, 0.05), embeddings
 * N(0, 0.02..0.1)) so activations are neither vanishing nor saturated and a wrong transpose or activation changes
 * the embeddings visibly.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../../src/util/rng.js';
import { encodeSafetensors, type TensorToWrite } from '../../src/model/clip/safetensors.js';
import { writeTinyBpeFiles } from './tiny-bpe.js';
import { concat, transpose2d } from '../../src/model/clip/layout.js';

export type CheckpointFormat = 'hf' | 'open_clip';

export interface VariantSpec {
  name: string;
  format: CheckpointFormat;
  dtype: 'F32' | 'F16' | 'BF16';
  activation: 'quick_gelu' | 'gelu';
  /** HF only: 'argmax' writes the legacy eos_token_id 2, 'eos' the real EOT id */
  pooling: 'argmax' | 'eos';
  /** open_clip only: every key prefixed with `module.` (checkpoints saved from DistributedDataParallel) */
  modulePrefix: boolean;
  /** pixel statistics written to the preprocessing config */
  mean: [number, number, number];
  std: [number, number, number];
  /** log logit scale stored in the checkpoint */
  logitScale: number;
  /**
   * HF only: tokens added after training (`tokenizer.add_tokens`, then `resize_token_embeddings`, as textual inversion
   * does), so their ids follow EOT and EOT is no longer the largest id. They go into tokenizer.json's `added_tokens`
   * only, as the tokenizers library saves them (model.vocab, vocab.json and merges.txt keep the trained vocabulary);
   * the config's vocab_size and the token embedding count them. With one, HF's legacy 'argmax' rule and the 'eos' rule
   * pool at different positions on an input holding the added id before EOT.
   */
  addedTokens?: readonly string[];
}

export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Tiny shapes (real CLIP's context length so pooling / truncation are exercised as in the real models). */
export const TINY = {
  imageSize: 32,
  patch: 8,
  visionWidth: 64,
  visionLayers: 2,
  visionHeads: 4,
  textWidth: 48,
  textLayers: 2,
  textHeads: 4,
  contextLength: 77,
  projection: 32,
  mlpRatio: 4,
  lnEps: 1e-5,
} as const;

export const VARIANTS: readonly VariantSpec[] = [
  { name: 'hf-f32-quickgelu-argmax', format: 'hf', dtype: 'F32', activation: 'quick_gelu', pooling: 'argmax', modulePrefix: false, mean: CLIP_MEAN, std: CLIP_STD, logitScale: Math.log(1 / 0.07) },
  // one added token above EOT (id EOT + 1): the parity inputs put it before EOT, where argmax pooling would land on it
  { name: 'hf-f16-gelu-eos', format: 'hf', dtype: 'F16', activation: 'gelu', pooling: 'eos', modulePrefix: false, mean: CLIP_MEAN, std: CLIP_STD, logitScale: Math.log(100), addedTokens: ['<cat-toy>'] },
  { name: 'hf-bf16-quickgelu-argmax', format: 'hf', dtype: 'BF16', activation: 'quick_gelu', pooling: 'argmax', modulePrefix: false, mean: CLIP_MEAN, std: CLIP_STD, logitScale: Math.log(100) },
  { name: 'openclip-f32-gelu', format: 'open_clip', dtype: 'F32', activation: 'gelu', pooling: 'argmax', modulePrefix: false, mean: CLIP_MEAN, std: CLIP_STD, logitScale: Math.log(1 / 0.07) },
  // open_clip models trained with inception statistics exist (mean = std = 0.5): the importer must read them
  { name: 'openclip-f16-quickgelu-module-prefix', format: 'open_clip', dtype: 'F16', activation: 'quick_gelu', pooling: 'argmax', modulePrefix: true, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], logitScale: Math.log(100) },
];

export type VariantName = (typeof VARIANTS)[number]['name'];

export interface BuildOptions {
  /** split the weights into this many `model-0000i-of-0000n.safetensors` shards with an index (HF only; default 1) */
  shards?: number;
}

export interface BuiltCheckpoint {
  dir: string;
  spec: VariantSpec;
  /** the model's vocabulary: the tiny BPE's tokens plus the variant's added tokens */
  vocabSize: number;
  eotId: number;
  sotId: number;
  /** file name -> sha256, every file in the directory */
  files: Record<string, string>;
}

/** PyTorch-layout weights of one tiny CLIP (shared by both formats). */
interface Block {
  ln1g: Float32Array; ln1b: Float32Array;
  q: Float32Array; k: Float32Array; v: Float32Array; // [W, W] (out, in)
  qb: Float32Array; kb: Float32Array; vb: Float32Array;
  o: Float32Array; ob: Float32Array;
  ln2g: Float32Array; ln2b: Float32Array;
  fc1: Float32Array; fc1b: Float32Array; // [M, W]
  fc2: Float32Array; fc2b: Float32Array; // [W, M]
}
interface TinyWeights {
  conv: Float32Array; // [Wv, 3, p, p]
  cls: Float32Array;
  vpos: Float32Array; // [N+1, Wv]
  lnPreG: Float32Array; lnPreB: Float32Array;
  vblocks: Block[];
  lnPostG: Float32Array; lnPostB: Float32Array;
  vproj: Float32Array; // [E, Wv] (HF Linear layout)
  tok: Float32Array; // [V, Wt]
  tpos: Float32Array; // [C, Wt]
  tblocks: Block[];
  lnFinalG: Float32Array; lnFinalB: Float32Array;
  tproj: Float32Array; // [E, Wt]
}

function seedOf(name: string): number {
  // FNV-1a: a stable 32-bit seed from the variant name
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function normal(rng: Rng, n: number, std: number, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * rng.normal();
  return out;
}

function makeBlock(rng: Rng, w: number, m: number): Block {
  const lin = (o: number, i: number): Float32Array => normal(rng, o * i, 0.5 / Math.sqrt(i));
  return {
    ln1g: normal(rng, w, 0.05, 1), ln1b: normal(rng, w, 0.02),
    q: lin(w, w), k: lin(w, w), v: lin(w, w),
    qb: normal(rng, w, 0.02), kb: normal(rng, w, 0.02), vb: normal(rng, w, 0.02),
    o: lin(w, w), ob: normal(rng, w, 0.02),
    ln2g: normal(rng, w, 0.05, 1), ln2b: normal(rng, w, 0.02),
    fc1: lin(m, w), fc1b: normal(rng, m, 0.02),
    fc2: lin(w, m), fc2b: normal(rng, w, 0.02),
  };
}

/**
 * `vocabSize` rows of token embedding for the trained vocabulary, then `addedRows` more drawn last (as
 * `resize_token_embeddings` appends rows), so adding tokens leaves every other weight of the variant unchanged.
 */
function makeWeights(spec: VariantSpec, vocabSize: number, addedRows = 0): TinyWeights {
  const rng = new Rng(seedOf(spec.name));
  const { visionWidth: wv, textWidth: wt, patch: p, imageSize, contextLength: c, projection: e, mlpRatio } = TINY;
  const n = (imageSize / p) ** 2;
  const w: TinyWeights = {
    conv: normal(rng, wv * 3 * p * p, 0.5 / Math.sqrt(3 * p * p)),
    cls: normal(rng, wv, 0.1),
    vpos: normal(rng, (n + 1) * wv, 0.05),
    lnPreG: normal(rng, wv, 0.05, 1), lnPreB: normal(rng, wv, 0.02),
    vblocks: Array.from({ length: TINY.visionLayers }, () => makeBlock(rng, wv, wv * mlpRatio)),
    lnPostG: normal(rng, wv, 0.05, 1), lnPostB: normal(rng, wv, 0.02),
    vproj: normal(rng, e * wv, 1 / Math.sqrt(wv)),
    tok: normal(rng, vocabSize * wt, 0.1),
    tpos: normal(rng, c * wt, 0.05),
    tblocks: Array.from({ length: TINY.textLayers }, () => makeBlock(rng, wt, wt * mlpRatio)),
    lnFinalG: normal(rng, wt, 0.05, 1), lnFinalB: normal(rng, wt, 0.02),
    tproj: normal(rng, e * wt, 1 / Math.sqrt(wt)),
  };
  if (addedRows > 0) w.tok = concat([w.tok, normal(rng, addedRows * wt, 0.1)]);
  return w;
}

type Named = { name: string; shape: number[]; data: Float32Array | BigInt64Array; int?: boolean };

function hfTensors(wts: TinyWeights, vocabSize: number): Named[] {
  const { visionWidth: wv, textWidth: wt, patch: p, imageSize, contextLength: c, projection: e, mlpRatio } = TINY;
  const n = (imageSize / p) ** 2;
  const out: Named[] = [];
  const add = (name: string, shape: number[], data: Float32Array): void => void out.push({ name, shape, data });
  const blocks = (prefix: string, bs: Block[], w: number): void => {
    const m = w * mlpRatio;
    bs.forEach((b, i) => {
      const q = `${prefix}.encoder.layers.${i}`;
      add(`${q}.layer_norm1.weight`, [w], b.ln1g);
      add(`${q}.layer_norm1.bias`, [w], b.ln1b);
      add(`${q}.self_attn.q_proj.weight`, [w, w], b.q);
      add(`${q}.self_attn.q_proj.bias`, [w], b.qb);
      add(`${q}.self_attn.k_proj.weight`, [w, w], b.k);
      add(`${q}.self_attn.k_proj.bias`, [w], b.kb);
      add(`${q}.self_attn.v_proj.weight`, [w, w], b.v);
      add(`${q}.self_attn.v_proj.bias`, [w], b.vb);
      add(`${q}.self_attn.out_proj.weight`, [w, w], b.o);
      add(`${q}.self_attn.out_proj.bias`, [w], b.ob);
      add(`${q}.layer_norm2.weight`, [w], b.ln2g);
      add(`${q}.layer_norm2.bias`, [w], b.ln2b);
      add(`${q}.mlp.fc1.weight`, [m, w], b.fc1);
      add(`${q}.mlp.fc1.bias`, [m], b.fc1b);
      add(`${q}.mlp.fc2.weight`, [w, m], b.fc2);
      add(`${q}.mlp.fc2.bias`, [w], b.fc2b);
    });
  };
  add('text_model.embeddings.token_embedding.weight', [vocabSize, wt], wts.tok);
  add('text_model.embeddings.position_embedding.weight', [c, wt], wts.tpos);
  out.push({ name: 'text_model.embeddings.position_ids', shape: [1, c], data: BigInt64Array.from({ length: c }, (_, i) => BigInt(i)), int: true });
  blocks('text_model', wts.tblocks, wt);
  add('text_model.final_layer_norm.weight', [wt], wts.lnFinalG);
  add('text_model.final_layer_norm.bias', [wt], wts.lnFinalB);
  add('vision_model.embeddings.class_embedding', [wv], wts.cls);
  add('vision_model.embeddings.patch_embedding.weight', [wv, 3, p, p], wts.conv);
  add('vision_model.embeddings.position_embedding.weight', [n + 1, wv], wts.vpos);
  out.push({ name: 'vision_model.embeddings.position_ids', shape: [1, n + 1], data: BigInt64Array.from({ length: n + 1 }, (_, i) => BigInt(i)), int: true });
  add('vision_model.pre_layrnorm.weight', [wv], wts.lnPreG);
  add('vision_model.pre_layrnorm.bias', [wv], wts.lnPreB);
  blocks('vision_model', wts.vblocks, wv);
  add('vision_model.post_layernorm.weight', [wv], wts.lnPostG);
  add('vision_model.post_layernorm.bias', [wv], wts.lnPostB);
  add('visual_projection.weight', [e, wv], wts.vproj);
  add('text_projection.weight', [e, wt], wts.tproj);
  return out;
}

function openClipTensors(wts: TinyWeights, vocabSize: number): Named[] {
  const { visionWidth: wv, textWidth: wt, patch: p, imageSize, contextLength: c, projection: e, mlpRatio } = TINY;
  const n = (imageSize / p) ** 2;
  const out: Named[] = [];
  const add = (name: string, shape: number[], data: Float32Array): void => void out.push({ name, shape, data });
  const blocks = (prefix: string, bs: Block[], w: number): void => {
    const m = w * mlpRatio;
    bs.forEach((b, i) => {
      const q = `${prefix}.resblocks.${i}`;
      add(`${q}.ln_1.weight`, [w], b.ln1g);
      add(`${q}.ln_1.bias`, [w], b.ln1b);
      add(`${q}.attn.in_proj_weight`, [3 * w, w], concat([b.q, b.k, b.v]));
      add(`${q}.attn.in_proj_bias`, [3 * w], concat([b.qb, b.kb, b.vb]));
      add(`${q}.attn.out_proj.weight`, [w, w], b.o);
      add(`${q}.attn.out_proj.bias`, [w], b.ob);
      add(`${q}.ln_2.weight`, [w], b.ln2g);
      add(`${q}.ln_2.bias`, [w], b.ln2b);
      add(`${q}.mlp.c_fc.weight`, [m, w], b.fc1);
      add(`${q}.mlp.c_fc.bias`, [m], b.fc1b);
      add(`${q}.mlp.c_proj.weight`, [w, m], b.fc2);
      add(`${q}.mlp.c_proj.bias`, [w], b.fc2b);
    });
  };
  add('visual.class_embedding', [wv], wts.cls);
  add('visual.positional_embedding', [n + 1, wv], wts.vpos);
  add('visual.proj', [wv, e], transpose2d(wts.vproj, e, wv));
  add('visual.conv1.weight', [wv, 3, p, p], wts.conv);
  add('visual.ln_pre.weight', [wv], wts.lnPreG);
  add('visual.ln_pre.bias', [wv], wts.lnPreB);
  blocks('visual.transformer', wts.vblocks, wv);
  add('visual.ln_post.weight', [wv], wts.lnPostG);
  add('visual.ln_post.bias', [wv], wts.lnPostB);
  add('positional_embedding', [c, wt], wts.tpos);
  add('text_projection', [wt, e], transpose2d(wts.tproj, e, wt));
  add('token_embedding.weight', [vocabSize, wt], wts.tok);
  blocks('transformer', wts.tblocks, wt);
  add('ln_final.weight', [wt], wts.lnFinalG);
  add('ln_final.bias', [wt], wts.lnFinalB);
  return out;
}

/** safetensors' own writer orders tensors by dtype alignment (largest first), then by name: mimic it */
function safetensorsOrder(ts: TensorToWrite[]): TensorToWrite[] {
  const size = (d: TensorToWrite['dtype']): number => (d === 'I64' ? 8 : d === 'F32' ? 4 : 2);
  return [...ts].sort((a, b) => size(b.dtype) - size(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function toWrite(named: Named[], dtype: VariantSpec['dtype'], prefix = ''): TensorToWrite[] {
  return named.map((t) => ({ name: prefix + t.name, shape: t.shape, dtype: t.int ? 'I64' : dtype, data: t.data }));
}

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

function hfConfig(spec: VariantSpec, vocabSize: number, eotId: number, sotId: number): unknown {
  const t = TINY;
  const eos = spec.pooling === 'argmax' ? 2 : eotId;
  return {
    architectures: ['CLIPModel'],
    initializer_factor: 1.0,
    logit_scale_init_value: 2.6592,
    model_type: 'clip',
    projection_dim: t.projection,
    text_config: {
      attention_dropout: 0.0,
      bos_token_id: spec.pooling === 'argmax' ? 0 : sotId,
      dropout: 0.0,
      eos_token_id: eos,
      hidden_act: spec.activation,
      hidden_size: t.textWidth,
      initializer_factor: 1.0,
      initializer_range: 0.02,
      intermediate_size: t.textWidth * t.mlpRatio,
      layer_norm_eps: t.lnEps,
      max_position_embeddings: t.contextLength,
      model_type: 'clip_text_model',
      num_attention_heads: t.textHeads,
      num_hidden_layers: t.textLayers,
      pad_token_id: 1,
      projection_dim: t.projection,
      vocab_size: vocabSize,
    },
    torch_dtype: TORCH_DTYPE[spec.dtype],
    transformers_version: '4.44.0',
    vision_config: {
      attention_dropout: 0.0,
      dropout: 0.0,
      hidden_act: spec.activation,
      hidden_size: t.visionWidth,
      image_size: t.imageSize,
      initializer_factor: 1.0,
      initializer_range: 0.02,
      intermediate_size: t.visionWidth * t.mlpRatio,
      layer_norm_eps: t.lnEps,
      model_type: 'clip_vision_model',
      num_attention_heads: t.visionHeads,
      num_channels: 3,
      num_hidden_layers: t.visionLayers,
      patch_size: t.patch,
      projection_dim: t.projection,
    },
  };
}

function hfPreprocessorConfig(spec: VariantSpec): unknown {
  return {
    crop_size: { height: TINY.imageSize, width: TINY.imageSize },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: spec.mean,
    image_processor_type: 'CLIPImageProcessor',
    image_std: spec.std,
    resample: 3,
    rescale_factor: 0.00392156862745098,
    size: { shortest_edge: TINY.imageSize },
  };
}

function openClipConfig(spec: VariantSpec, vocabSize: number): unknown {
  const t = TINY;
  return {
    model_cfg: {
      embed_dim: t.projection,
      quick_gelu: spec.activation === 'quick_gelu',
      vision_cfg: { image_size: t.imageSize, layers: t.visionLayers, width: t.visionWidth, head_width: t.visionWidth / t.visionHeads, patch_size: t.patch },
      text_cfg: { context_length: t.contextLength, vocab_size: vocabSize, width: t.textWidth, heads: t.textHeads, layers: t.textLayers },
    },
    preprocess_cfg: { mean: spec.mean, std: spec.std, interpolation: 'bicubic', resize_mode: 'shortest' },
  };
}

const json = (x: unknown): string => `${JSON.stringify(x, null, 2)}\n`;

/**
 * tokenizer.json with `tokens` appended to `added_tokens` at ids `firstId`, `firstId + 1`, ..., in the layout of
 * the entries tiny-bpe.ts writes, with the flags `tokenizer.add_tokens` gives (not special, normalized).
 */
function withAddedTokens(tokenizerJson: string, tokens: readonly string[], firstId: number): string {
  const end = '\n  ],\n  "normalizer": ';
  const at = tokenizerJson.indexOf(end);
  if (at < 0 || tokenizerJson.indexOf(end, at + 1) >= 0) throw new Error('tokenizer.json: cannot find the end of added_tokens');
  const entries = tokens.map(
    (content, i) =>
      `,\n    {\n      "id": ${firstId + i},\n      "content": ${JSON.stringify(content)},\n      "single_word": false,\n` +
      `      "lstrip": false,\n      "rstrip": false,\n      "normalized": true,\n      "special": false\n    }`,
  );
  return tokenizerJson.slice(0, at) + entries.join('') + tokenizerJson.slice(at);
}

function splitShards(ts: TensorToWrite[], shards: number): TensorToWrite[][] {
  const total = ts.reduce((s, t) => s + t.data.length, 0);
  const out: TensorToWrite[][] = Array.from({ length: shards }, () => []);
  let acc = 0;
  for (const t of ts) {
    out[Math.min(shards - 1, Math.floor((acc * shards) / total))].push(t);
    acc += t.data.length;
  }
  return out.filter((s) => s.length > 0);
}

async function sha256File(file: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(file)).digest('hex');
}

/**
 * Write one variant into `dir` (created if absent; existing files of the same names are replaced).
 */
export async function buildTinyCheckpoint(dir: string, variant: VariantName | VariantSpec, opts: BuildOptions = {}): Promise<BuiltCheckpoint> {
  const spec = typeof variant === 'string' ? VARIANTS.find((v) => v.name === variant) : variant;
  if (!spec) throw new Error(`buildTinyCheckpoint: unknown variant ${String(variant)} (known: ${VARIANTS.map((v) => v.name).join(', ')})`);
  await fs.mkdir(dir, { recursive: true });
  // open_clip hub directories ship the HF tokenizer files; open_clip's own merges file is added for the reference
  const bpe = await writeTinyBpeFiles(dir, { openClip: spec.format === 'open_clip' });
  const { eotId, sotId } = bpe;
  const added = spec.addedTokens ?? [];
  if (added.length > 0) {
    if (spec.format !== 'hf') throw new Error(`buildTinyCheckpoint: ${spec.name}: addedTokens are for HF checkpoints only`);
    if (eotId !== bpe.vocabSize - 1) throw new Error('buildTinyCheckpoint: added tokens must follow EOT, the last trained id');
    const file = path.join(dir, 'tokenizer.json');
    await fs.writeFile(file, withAddedTokens(await fs.readFile(file, 'utf8'), added, bpe.vocabSize));
  }
  const vocabSize = bpe.vocabSize + added.length;
  const wts = makeWeights(spec, bpe.vocabSize, added.length);
  const logit = { name: 'logit_scale', shape: [] as number[], data: Float32Array.of(spec.logitScale) };

  if (spec.format === 'hf') {
    const tensors = safetensorsOrder(toWrite([...hfTensors(wts, vocabSize), logit], spec.dtype));
    const shards = opts.shards ?? 1;
    if (shards <= 1) {
      await fs.writeFile(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    } else {
      const parts = splitShards(tensors, shards);
      const weightMap: Record<string, string> = {};
      let totalSize = 0;
      for (let i = 0; i < parts.length; i++) {
        const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(parts.length).padStart(5, '0')}.safetensors`;
        const bytes = encodeSafetensors(parts[i], { format: 'pt' });
        await fs.writeFile(path.join(dir, file), bytes);
        for (const t of parts[i]) weightMap[t.name] = file;
        totalSize += bytes.byteLength;
      }
      await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), json({ metadata: { total_size: totalSize }, weight_map: weightMap }));
    }
    await fs.writeFile(path.join(dir, 'config.json'), json(hfConfig(spec, vocabSize, eotId, sotId)));
    await fs.writeFile(path.join(dir, 'preprocessor_config.json'), json(hfPreprocessorConfig(spec)));
  } else {
    const prefix = spec.modulePrefix ? 'module.' : '';
    const tensors = safetensorsOrder(toWrite([...openClipTensors(wts, vocabSize), logit], spec.dtype, prefix));
    await fs.writeFile(path.join(dir, 'open_clip_model.safetensors'), encodeSafetensors(tensors));
    await fs.writeFile(path.join(dir, 'open_clip_config.json'), json(openClipConfig(spec, vocabSize)));
  }

  const files: Record<string, string> = {};
  for (const f of (await fs.readdir(dir)).sort()) {
    const st = await fs.stat(path.join(dir, f));
    if (st.isFile()) files[f] = await sha256File(path.join(dir, f));
  }
  return { dir, spec, vocabSize, eotId, sotId, files };
}

/** Every variant into `out/<variant>/`. */
export async function buildAllTinyCheckpoints(out: string, names?: readonly string[]): Promise<BuiltCheckpoint[]> {
  const chosen = names?.length ? names : VARIANTS.map((v) => v.name);
  const built: BuiltCheckpoint[] = [];
  for (const n of chosen) built.push(await buildTinyCheckpoint(path.join(out, n), n as VariantName));
  return built;
}

async function main(argv: string[]): Promise<void> {
  let out: string | undefined;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') out = argv[++i];
    else if (a === '--variant') names.push(argv[++i]);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: npx tsx test/reference/build-checkpoints.ts --out DIR [--variant NAME]...\nvariants: ${VARIANTS.map((v) => v.name).join(', ')}\n`);
      return;
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!out) throw new Error('--out DIR is required');
  for (const n of names) if (!VARIANTS.some((v) => v.name === n)) throw new Error(`unknown variant ${n} (known: ${VARIANTS.map((v) => v.name).join(', ')})`);
  for (const b of await buildAllTinyCheckpoints(out, names)) {
    for (const [f, h] of Object.entries(b.files)) process.stdout.write(`${h}  ${path.join(path.basename(b.dir), f)}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`build-checkpoints: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
