/**
 * `manyfold import`: a pretrained CLIP checkpoint directory (Hugging Face CLIPModel or open_clip, safetensors only)
 * -> a Manyfold model artifact, without building a model.
 *
 * Steps: detect the format, refuse pickles, parse the config (shapes, activation, pooling rule, LayerNorm eps),
 * open the weights (single file or index + shards; `module.` prefix stripped; int64 buffers ignored), check the
 * tensor table against the config (missing / unexpected / mis-shaped / non-float keys, listed and capped), build the
 * tokenizer from the checkpoint's files, read the preprocessing statistics, hash every source file read, then
 * stream each canonical weight (read -> upcast -> transpose / fuse -> check finite -> write) into saveArtifact.
 * Peak memory is about two tensors (the sources of one weight and its canonical form), never the checkpoint.
 *
 * Every problem with the input is a CheckpointError naming the file (and tensor, where there is one).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import { hashFile, saveArtifact, type ArtifactManifest, type ArtifactSource, type WeightTensor } from '../artifact.js';
import { validateModelConfig } from '../presets.js';
import type { Activation, ModelConfig } from '../types.js';
import { CLIP_TOKENIZER_FILES, ClipTokenizerError, OPEN_CLIP_VOCAB_FILES, type ClipBpeTokenizer, clipTokenizerFromDir } from '../clip-tokenizer.js';
import { type CheckpointReader, openCheckpoint } from './checkpoint.js';
import {
  HF_CONFIG_FILE,
  HF_INDEX_FILE,
  HF_PREPROCESSOR_FILE,
  HF_WEIGHTS_FILE,
  type Preprocessing,
  hfRules,
  isHfIgnoredKey,
  parseHfConfig,
  parseHfPreprocessor,
} from './hf.js';
import { type ClipShapes, type MappingRule, numel } from './layout.js';
import { OPEN_CLIP_CONFIG_FILE, OPEN_CLIP_WEIGHTS_FILE, openClipRules, parseOpenClipConfig } from './open-clip.js';
import { CheckpointError } from './safetensors.js';

export type CheckpointFormatName = 'hf' | 'open_clip';

export const importOptionsSchema = z
  .object({
    from: z.string().min(1),
    out: z.string().min(1),
    format: z.enum(['auto', 'hf', 'open_clip']).default('auto'),
    activation: z.enum(['quick_gelu', 'gelu']).optional(),
    overwrite: z.boolean().default(false),
    /** largest weight shard of the artifact (saveArtifact's shardBytes; default 32 MiB) */
    shardBytes: z.number().int().min(4).optional(),
    /** progress and notes (default: stderr) */
    log: z.custom<(line: string) => void>((v) => typeof v === 'function').optional(),
    /** print progress lines when the checkpoint is at least this many bytes (default 64 MiB) */
    progressBytes: z.number().int().nonnegative().optional(),
    /** manifest creation time (default now) */
    created: z.date().optional(),
  })
  .strict();

export type ImportOptions = z.input<typeof importOptionsSchema>;

export interface ImportResult {
  manifest: ArtifactManifest;
  format: CheckpointFormatName;
  out: string;
  parameters: number;
  seconds: number;
  /** one line: format, shapes, parameters, time, artifact id */
  summary: string;
  notes: string[];
}

const PICKLE_RE = /\.(bin|pt|pth|ckpt|pkl)$/i;
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
const DEFAULT_PROGRESS_BYTES = 64 * 1024 * 1024;
const LIST_CAP = 8;

function capList(xs: readonly string[]): string {
  return xs.length > LIST_CAP ? `${xs.slice(0, LIST_CAP).join(', ')}, ... (${xs.length} in all)` : xs.join(', ');
}

async function readJson(dir: string, file: string): Promise<unknown> {
  const p = path.join(dir, file);
  const st = await fs.stat(p).catch(() => null);
  if (!st) throw new CheckpointError(`${file} not found in ${dir}`, file);
  if (st.size > MAX_CONFIG_BYTES) throw new CheckpointError(`${file}: ${st.size} bytes is too large for a config file`, file);
  try {
    return JSON.parse(await fs.readFile(p, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`, file);
  }
}

/** The refusal for pickle-only directories: why, and the two lines that convert them. */
export function pickleRefusal(dir: string, pickles: string[], format: CheckpointFormatName | 'auto'): CheckpointError {
  const f = pickles[0];
  const convert =
    format === 'open_clip'
      ? `  import torch, safetensors.torch as st\n  st.save_file({k: v.contiguous() for k, v in torch.load('${f}', map_location='cpu', weights_only=True).items()}, '${OPEN_CLIP_WEIGHTS_FILE}')`
      : `  from transformers import CLIPModel\n  CLIPModel.from_pretrained('${dir}').save_pretrained('${dir}', safe_serialization=True)`;
  return new CheckpointError(
    `${f}: refusing a pickle checkpoint (${pickles.join(', ')}) with no safetensors beside it. Unpickling runs arbitrary ` +
      `code from the file, so Manyfold reads only safetensors. Convert it once, in a Python environment you trust:\n${convert}\n` +
      `(a state dict saved with torch.save converts with: safetensors.torch.save_file(state_dict, 'model.safetensors'))`,
    f,
  );
}

interface Detected {
  format: CheckpointFormatName;
  configFile: string;
  weightsFile: string;
}

/** Which format `dir` holds, and its config + weights files; refuses pickle-only directories. */
export async function detectCheckpoint(dir: string, want: CheckpointFormatName | 'auto' = 'auto'): Promise<Detected> {
  let names: string[];
  try {
    const st = await fs.stat(dir);
    if (!st.isDirectory()) throw new CheckpointError(`${dir} is not a directory (point --from at the checkpoint's directory)`);
    names = await fs.readdir(dir);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`cannot read checkpoint directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const has = new Set(names);
  const pickles = names.filter((n) => PICKLE_RE.test(n)).sort();
  const hfWeights = has.has(HF_INDEX_FILE) ? HF_INDEX_FILE : has.has(HF_WEIGHTS_FILE) ? HF_WEIGHTS_FILE : undefined;
  const hfOk = has.has(HF_CONFIG_FILE) && hfWeights !== undefined;
  const ocOk = has.has(OPEN_CLIP_CONFIG_FILE) && has.has(OPEN_CLIP_WEIGHTS_FILE);

  const pickIn = (fmt: CheckpointFormatName): Detected => {
    if (fmt === 'hf') {
      if (!has.has(HF_CONFIG_FILE)) throw new CheckpointError(`${HF_CONFIG_FILE} not found in ${dir} (a Hugging Face CLIPModel directory has config.json and model.safetensors)`, HF_CONFIG_FILE);
      if (!hfWeights) {
        const hfPickles = pickles.filter((p) => p.startsWith('pytorch_model') || !p.startsWith('open_clip'));
        if (hfPickles.length) throw pickleRefusal(dir, hfPickles, 'hf');
        throw new CheckpointError(`${HF_WEIGHTS_FILE} (or ${HF_INDEX_FILE}) not found in ${dir}`, HF_WEIGHTS_FILE);
      }
      return { format: 'hf', configFile: HF_CONFIG_FILE, weightsFile: hfWeights };
    }
    if (!has.has(OPEN_CLIP_CONFIG_FILE)) throw new CheckpointError(`${OPEN_CLIP_CONFIG_FILE} not found in ${dir} (an open_clip directory has open_clip_config.json and open_clip_model.safetensors)`, OPEN_CLIP_CONFIG_FILE);
    if (!has.has(OPEN_CLIP_WEIGHTS_FILE)) {
      const ocPickles = pickles.filter((p) => !p.startsWith('pytorch_model'));
      if (ocPickles.length) throw pickleRefusal(dir, ocPickles, 'open_clip');
      throw new CheckpointError(`${OPEN_CLIP_WEIGHTS_FILE} not found in ${dir}`, OPEN_CLIP_WEIGHTS_FILE);
    }
    return { format: 'open_clip', configFile: OPEN_CLIP_CONFIG_FILE, weightsFile: OPEN_CLIP_WEIGHTS_FILE };
  };

  if (want !== 'auto') return pickIn(want);
  // hub repositories of LAION models carry both layouts of the same weights; either is right, HF is preferred
  if (hfOk) return pickIn('hf');
  if (ocOk) return pickIn('open_clip');
  if (has.has(HF_CONFIG_FILE)) return pickIn('hf');
  if (has.has(OPEN_CLIP_CONFIG_FILE)) return pickIn('open_clip');
  if (pickles.length) throw pickleRefusal(dir, pickles, pickles.some((p) => p.startsWith('open_clip')) ? 'open_clip' : 'hf');
  throw new CheckpointError(
    `${dir} holds neither a Hugging Face CLIPModel checkpoint (${HF_CONFIG_FILE} + ${HF_WEIGHTS_FILE}) nor an open_clip one (${OPEN_CLIP_CONFIG_FILE} + ${OPEN_CLIP_WEIGHTS_FILE})`,
  );
}

/** Compare the checkpoint's tensors with the rules: every problem listed (capped), file and first tensor named. */
export function checkTensorTable(reader: CheckpointReader, rules: readonly MappingRule[], ignored: (key: string) => boolean, weightsFile: string): void {
  const expected = new Map<string, { shape: number[]; why: string }>();
  for (const r of rules) for (const s of r.sources) expected.set(s.key, { shape: s.shape, why: s.why });
  const prefix = reader.strippedPrefix ? 'module.' : '';
  const missing = [...expected.keys()].filter((k) => !reader.tensors.has(k));
  const unexpected: string[] = [];
  const misShaped: string[] = [];
  const badDtype: string[] = [];
  let firstFile: string | undefined;
  let firstTensor: string | undefined;
  const note = (file: string, tensor: string): void => {
    firstFile ??= file;
    firstTensor ??= tensor;
  };
  if (missing.length) note(weightsFile, prefix + missing[0]);
  // in rule order (canonical order), so the first tensor named is the first a reader of the config would check
  for (const [key, want] of expected) {
    const t = reader.tensors.get(key);
    if (!t) continue;
    if (!['F64', 'F32', 'F16', 'BF16'].includes(t.info.dtype)) {
      badDtype.push(`${t.stored} is ${t.info.dtype}`);
      note(t.file, t.stored);
    }
    const ok = t.info.shape.length === want.shape.length && t.info.shape.every((d, i) => d === want.shape[i]);
    // a scalar stored as [1] is the same value (some converters write logit_scale that way)
    const scalarOk = want.shape.length === 0 && numel(t.info.shape) === 1;
    if (!ok && !scalarOk) {
      misShaped.push(`${t.stored} is [${t.info.shape.join(', ')}], expected [${want.shape.join(', ')}] (${want.why})`);
      note(t.file, t.stored);
    }
  }
  for (const [key, t] of reader.tensors) {
    if (expected.has(key)) continue;
    const isInt = !['F64', 'F32', 'F16', 'BF16'].includes(t.info.dtype);
    if (ignored(key) && isInt) continue;
    unexpected.push(`${t.stored} (${t.info.dtype} [${t.info.shape.join(', ')}])`);
    note(t.file, t.stored);
  }
  if (!missing.length && !unexpected.length && !misShaped.length && !badDtype.length) return;
  const parts: string[] = [];
  if (missing.length) parts.push(`missing ${missing.length} tensor(s): ${capList(missing.map((k) => prefix + k))}`);
  if (unexpected.length) parts.push(`unexpected ${unexpected.length} tensor(s): ${capList(unexpected)}`);
  if (misShaped.length) parts.push(`${misShaped.length} mis-shaped tensor(s): ${capList(misShaped)}`);
  if (badDtype.length) parts.push(`${badDtype.length} tensor(s) with a non-float dtype: ${capList(badDtype)}`);
  throw new CheckpointError(`${firstFile ?? weightsFile}: the tensors do not match the config: ${parts.join('; ')}`, firstFile ?? weightsFile, firstTensor);
}

/** read one rule's sources (upcast to float32), map them, and check the values are finite */
async function readRule(reader: CheckpointReader, rule: MappingRule): Promise<Float32Array> {
  const src: Float32Array[] = [];
  for (const s of rule.sources) src.push(await reader.readFloat32(s.key));
  const out = rule.forward(src);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) {
      // find which source holds the value (forward only moves values)
      const bad = rule.sources.find((_, j) => src[j].some((x) => !Number.isFinite(x))) ?? rule.sources[0];
      const t = reader.tensors.get(bad.key)!;
      throw new CheckpointError(`${t.file}: tensor ${t.stored} holds a non-finite value (${out[i]}); the checkpoint is damaged or overflowed its dtype`, t.file, t.stored);
    }
  }
  return out;
}

async function loadTokenizer(dir: string, shapes: ClipShapes, vocabField: string, ctxField: string, configFile: string): Promise<ClipBpeTokenizer> {
  const present = new Set<string>();
  for (const f of CLIP_TOKENIZER_FILES) if (await isFile(path.join(dir, f))) present.add(f);
  const usable = present.has('tokenizer.json') || (present.has('vocab.json') && present.has('merges.txt')) || OPEN_CLIP_VOCAB_FILES.some((f) => present.has(f));
  if (!usable) {
    const missing = present.has('vocab.json') ? 'merges.txt' : present.has('merges.txt') ? 'vocab.json' : 'tokenizer.json';
    throw new CheckpointError(
      `${missing}: ${dir} has no usable tokenizer: need tokenizer.json, or vocab.json + merges.txt, or open_clip's ${OPEN_CLIP_VOCAB_FILES[0]}; copy them from where the checkpoint came from`,
      missing,
    );
  }
  let tok: ClipBpeTokenizer;
  try {
    // the model's context length decides, not tokenizer_config.json's model_max_length
    tok = await clipTokenizerFromDir(dir, { maxLen: shapes.contextLength });
  } catch (e) {
    const file = e instanceof ClipTokenizerError && e.file ? e.file : present.has('tokenizer.json') ? 'tokenizer.json' : 'vocab.json';
    throw new CheckpointError(`cannot build CLIP's tokenizer: ${(e as Error).message}`, file, e instanceof ClipTokenizerError ? e.key : undefined);
  }
  if (tok.vocabSize !== shapes.vocabSize) {
    const file = present.has('tokenizer.json') ? 'tokenizer.json' : 'vocab.json';
    throw new CheckpointError(`${file}: the tokenizer has ${tok.vocabSize} tokens but ${configFile} ${vocabField} is ${shapes.vocabSize}`, file);
  }
  if (tok.maxLen !== shapes.contextLength) {
    throw new CheckpointError(`the tokenizer's context length is ${tok.maxLen} but ${configFile} ${ctxField} is ${shapes.contextLength}`, configFile);
  }
  return tok;
}

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isFile(), () => false);
}

/**
 * Import a checkpoint directory into a Manyfold artifact at `out`. Returns the manifest and a one-line summary.
 */
export async function importClipCheckpoint(options: ImportOptions): Promise<ImportResult> {
  const parsed = importOptionsSchema.safeParse(options);
  if (!parsed.success) throw new CheckpointError(`import options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const o = parsed.data;
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const t0 = performance.now();
  const dir = path.resolve(o.from);
  const notes: string[] = [];
  const det = await detectCheckpoint(dir, o.format);
  const configJson = await readJson(dir, det.configFile);

  // config
  let shapes: ClipShapes;
  let activation: Activation | undefined;
  let activationSource: string;
  let textPooling: 'argmax' | 'eos';
  let eosFromConfig: number | undefined;
  let lnEps: number;
  let preprocess: Preprocessing;
  let rules: MappingRule[];
  let ignored: (key: string) => boolean;
  const sourceFiles = [det.configFile];
  if (det.format === 'hf') {
    const c = parseHfConfig(configJson, det.configFile);
    ({ shapes, activation, activationSource, textPooling, lnEps } = c);
    eosFromConfig = c.eosTokenId;
    notes.push(...c.notes);
    const hasPre = await fs.stat(path.join(dir, HF_PREPROCESSOR_FILE)).then(() => true, () => false);
    preprocess = parseHfPreprocessor(hasPre ? await readJson(dir, HF_PREPROCESSOR_FILE) : undefined, shapes.imageSize);
    if (hasPre) sourceFiles.push(HF_PREPROCESSOR_FILE);
    rules = hfRules(shapes);
    ignored = isHfIgnoredKey;
  } else {
    const c = parseOpenClipConfig(configJson, det.configFile);
    ({ shapes, activation, activationSource, lnEps, preprocess } = c);
    textPooling = 'argmax';
    notes.push(...c.notes);
    rules = openClipRules(shapes);
    ignored = () => false;
  }
  notes.push(...preprocess.notes);

  if (o.activation && activation && o.activation !== activation) {
    notes.push(`--activation ${o.activation} overrides ${activationSource} (${activation})`);
    activation = o.activation;
    activationSource = '--activation';
  } else if (o.activation && !activation) {
    activation = o.activation;
    activationSource = '--activation';
  }
  if (!activation) {
    throw new CheckpointError(
      `${det.configFile}: the MLP activation is not stated (${activationSource}), and it cannot be read from the weights: ` +
        `QuickGELU and GELU checkpoints have identical tensors. Pass --activation quick_gelu (OpenAI's CLIP weights and ` +
        `models fine-tuned from them) or --activation gelu (most models trained from scratch with open_clip).`,
      det.configFile,
    );
  }

  const reader = await openCheckpoint(path.join(dir, det.weightsFile));
  try {
    sourceFiles.push(...reader.files);
    if (reader.strippedPrefix) notes.push(`${det.weightsFile}: stripped the 'module.' prefix from the tensor names`);
    checkTensorTable(reader, rules, ignored, det.weightsFile);

    const vocabField = det.format === 'hf' ? 'text_config.vocab_size' : 'model_cfg.text_cfg.vocab_size';
    const ctxField = det.format === 'hf' ? 'text_config.max_position_embeddings' : 'model_cfg.text_cfg.context_length';
    const tokenizer = await loadTokenizer(dir, shapes, vocabField, ctxField, det.configFile);
    for (const f of CLIP_TOKENIZER_FILES) if (await isFile(path.join(dir, f))) sourceFiles.push(f);
    const eotId = tokenizer.eotId;
    const eosTokenId = textPooling === 'eos' ? eosFromConfig! : eotId;
    if (textPooling === 'eos' && eosTokenId !== eotId) {
      notes.push(`${det.configFile}: text pooling at eos_token_id ${eosTokenId}, which is not the tokenizer's <|endoftext|> (${eotId})`);
    }
    if (textPooling === 'argmax' && eotId !== shapes.vocabSize - 1) {
      notes.push(`the tokenizer's <|endoftext|> (${eotId}) is not its largest id: argmax pooling will not land on it`);
    }

    const logitRule = rules.find((r) => r.target === 'logitScale')!;
    const logitScale = (await readRule(reader, logitRule))[0];

    const config: ModelConfig = {
      preset: 'clip',
      family: 'clip',
      embedDim: shapes.embedDim,
      image: {
        size: shapes.imageSize,
        patch: shapes.patch,
        width: shapes.visionWidth,
        depth: shapes.visionLayers,
        heads: shapes.visionHeads,
        mlpRatio: shapes.visionMlp / shapes.visionWidth,
      },
      text: {
        width: shapes.textWidth,
        depth: shapes.textLayers,
        heads: shapes.textHeads,
        mlpRatio: shapes.textMlp / shapes.textWidth,
        maxLen: shapes.contextLength,
        vocabSize: shapes.vocabSize,
      },
      initLogitScale: logitScale,
      clip: {
        activation,
        textPooling,
        eosTokenId,
        pixelMean: preprocess.pixelMean,
        pixelStd: preprocess.pixelStd,
        lnEps,
        resizeShortestEdge: preprocess.resizeShortestEdge,
      },
    };
    try {
      validateModelConfig(config);
    } catch (e) {
      throw new CheckpointError(`${det.configFile}: ${(e as Error).message}`, det.configFile);
    }

    const files: ArtifactSource['files'] = [];
    for (const f of [...new Set(sourceFiles)]) files.push({ path: f, ...(await hashFile(path.join(dir, f))) });
    const source: ArtifactSource = { format: det.format, dir: path.basename(dir), files };

    const weights: WeightTensor[] = rules.map((r) => ({ name: r.target, shape: r.targetShape, data: () => readRule(reader, r) }));
    const parameters = weights.reduce((s, w) => s + numel(w.shape), 0);
    for (const n of notes) log(`import: ${n}`);
    const showProgress = reader.totalBytes >= (o.progressBytes ?? DEFAULT_PROGRESS_BYTES);
    let lastDecile = -1;
    const manifest = await saveArtifact(o.out, {
      config,
      weights,
      tokenizer,
      training: { method: 'pretrained', imported: { format: det.format } },
      source,
      overwrite: o.overwrite,
      ...(o.shardBytes !== undefined ? { shardBytes: o.shardBytes } : {}),
      ...(o.created ? { created: o.created } : {}),
      onTensor: showProgress
        ? (p) => {
            const pct = Math.floor((100 * p.bytes) / Math.max(1, p.totalBytes));
            if (Math.floor(pct / 10) > lastDecile) {
              lastDecile = Math.floor(pct / 10);
              log(`import: ${p.tensors}/${p.totalTensors} tensors, ${(p.bytes / 2 ** 20).toFixed(0)}/${(p.totalBytes / 2 ** 20).toFixed(0)} MiB (${pct}%)`);
            }
          }
        : undefined,
    });
    const seconds = (performance.now() - t0) / 1000;
    const s = shapes;
    const summary =
      `imported ${det.format} ${path.basename(dir)} -> ${o.out}: ` +
      `ViT ${s.imageSize}px/${s.patch} width ${s.visionWidth} x ${s.visionLayers} layers (${s.visionHeads} heads), ` +
      `text width ${s.textWidth} x ${s.textLayers} layers, ctx ${s.contextLength}, vocab ${s.vocabSize}, embed ${s.embedDim}, ` +
      `${activation}, ${textPooling} pooling; ${(parameters / 1e6).toFixed(2)}M parameters in ${seconds.toFixed(1)} s; id ${manifest.id}`;
    return { manifest, format: det.format, out: path.resolve(o.out), parameters, seconds, summary, notes };
  } finally {
    await reader.close();
  }
}
