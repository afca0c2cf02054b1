/**
 * `manyfold export`: a CLIP-family Manyfold artifact -> a standard checkpoint directory that PyTorch users load
 * unchanged (Hugging Face `CLIPModel.from_pretrained(dir)`, or open_clip with its config + safetensors).
 *
 * The tensors are the exact inverse of the import mapping (hf.ts / open-clip.ts rules run backwards): F32 export
 * is bit-identical, so import -> export -> import reproduces the weights and the artifact id. The artifact is
 * verified (every file's sha256) and read one weight at a time; the safetensors file is streamed, so peak memory
 * is a few tensors, not the model. The directory is written beside the target and renamed into place.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import { writeDirAtomic } from '../../util/atomic.js';
import { ArtifactError, openArtifactWeights } from '../artifact.js';
import { clipTokenizerFromJSON, exportClipTokenizerFiles } from '../clip-tokenizer.js';
import type { ModelConfig } from '../types.js';
import { HF_CONFIG_FILE, HF_PREPROCESSOR_FILE, HF_WEIGHTS_FILE, hfConfigJson, hfPreprocessorJson, hfRules } from './hf.js';
import { type MappingRule, canonicalWeights, shapesFromConfig } from './layout.js';
import { OPEN_CLIP_CONFIG_FILE, OPEN_CLIP_WEIGHTS_FILE, openClipConfigJson, openClipRules } from './open-clip.js';
import { CheckpointError, type TensorDecl, createSafetensorsWriter } from './safetensors.js';

export const exportOptionsSchema = z
  .object({
    model: z.string().min(1),
    out: z.string().min(1),
    format: z.enum(['hf', 'open_clip']),
    dtype: z.enum(['f32', 'f16']).default('f32'),
    overwrite: z.boolean().default(false),
    log: z.custom<(line: string) => void>((v) => typeof v === 'function').optional(),
  })
  .strict();

export type ExportOptions = z.input<typeof exportOptionsSchema>;

export interface ExportResult {
  out: string;
  format: 'hf' | 'open_clip';
  files: string[];
  parameters: number;
  seconds: number;
  summary: string;
}

const json = (x: unknown): string => `${JSON.stringify(x, null, 2)}\n`;

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/** HF's embeddings keep `position_ids` (arange) buffers; transformers versions that persist them expect them */
function positionIds(prefix: string, n: number): { decl: TensorDecl; data: BigInt64Array } {
  return {
    decl: { name: `${prefix}.embeddings.position_ids`, shape: [1, n], dtype: 'I64' },
    data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
  };
}

/**
 * Export the artifact at `model` to `out` in the given format. Refuses Manyfold-family artifacts (their
 * architecture has no counterpart in these formats).
 */
export async function exportClipCheckpoint(options: ExportOptions): Promise<ExportResult> {
  const parsed = exportOptionsSchema.safeParse(options);
  if (!parsed.success) throw new CheckpointError(`export options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const o = parsed.data;
  const t0 = performance.now();
  const target = path.resolve(o.out);
  if (!o.overwrite && (await exists(target))) throw new CheckpointError(`${target} already exists (pass --overwrite to replace it)`);

  const art = await openArtifactWeights(o.model);
  try {
    const config = art.manifest.config as ModelConfig;
    if (config.family !== 'clip' || !config.clip) {
      throw new ArtifactError(
        `${o.model} is a Manyfold-family model (preset '${config.preset}': Manyfold's own architecture, with a patch bias, no ln_pre, ` +
          `tanh GELU and a word tokenizer), which has no Hugging Face or open_clip counterpart. Only CLIP-family models ` +
          `(made by 'manyfold import', or trained with --init from one) can be exported.`,
        'manifest.json',
      );
    }
    const shapes = shapesFromConfig(config);
    // the artifact must hold exactly the canonical weights the config describes
    const want = canonicalWeights(shapes);
    const have = new Map(art.manifest.weights.map((w) => [w.name, w.shape]));
    const missing = want.filter((w) => !have.has(w.name)).map((w) => w.name);
    const extra = [...have.keys()].filter((n) => !want.some((w) => w.name === n));
    const bad = want.filter((w) => have.has(w.name) && have.get(w.name)!.join('x') !== w.shape.join('x')).map((w) => `${w.name} [${have.get(w.name)!.join(', ')}] (expected [${w.shape.join(', ')}])`);
    if (missing.length || extra.length || bad.length) {
      throw new ArtifactError(
        `${o.model}: weights do not match a CLIP of its config:` +
          (missing.length ? ` missing ${missing.slice(0, 8).join(', ')};` : '') +
          (extra.length ? ` unexpected ${extra.slice(0, 8).join(', ')};` : '') +
          (bad.length ? ` mis-shaped ${bad.slice(0, 8).join(', ')};` : ''),
        'manifest.json',
      );
    }

    let tok;
    try {
      tok = clipTokenizerFromJSON(art.tokenizerJson);
    } catch (e) {
      throw new ArtifactError(`${o.model}: the artifact's tokenizer is not CLIP's BPE tokenizer (${(e as Error).message}); cannot write tokenizer files`, art.manifest.tokenizer.file);
    }

    const dtype = o.dtype === 'f16' ? 'F16' : 'F32';
    let rules: MappingRule[];
    const files: Record<string, string> = {};
    let weightsFile: string;
    const extras: { decl: TensorDecl; data: BigInt64Array }[] = [];
    if (o.format === 'hf') {
      rules = hfRules(shapes);
      files[HF_CONFIG_FILE] = json(hfConfigJson(config, { sotId: tok.sotId, eotId: tok.eotId }, o.dtype === 'f16' ? 'float16' : 'float32'));
      weightsFile = HF_WEIGHTS_FILE;
      extras.push(positionIds('text_model', shapes.contextLength), positionIds('vision_model', (shapes.imageSize / shapes.patch) ** 2 + 1));
    } else {
      rules = openClipRules(shapes);
      files[OPEN_CLIP_CONFIG_FILE] = json(openClipConfigJson(config));
      weightsFile = OPEN_CLIP_WEIGHTS_FILE;
    }
    files[HF_PREPROCESSOR_FILE] = json(hfPreprocessorJson(config));
    Object.assign(files, exportClipTokenizerFiles(tok));

    await writeDirAtomic(
      target,
      async (tmp) => {
        for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(tmp, name), text);
        // every tensor in rule order (a rule's sources are adjacent: q, k, v are produced together)
        const decls: TensorDecl[] = [...extras.map((e) => e.decl)];
        for (const r of rules) for (const s of r.sources) decls.push({ name: s.key, shape: s.shape, dtype });
        const writer = await createSafetensorsWriter(path.join(tmp, weightsFile), decls, o.format === 'hf' ? { format: 'pt' } : undefined);
        try {
          for (const e of extras) await writer.write(e.decl.name, e.data);
          for (const r of rules) {
            const parts = r.backward(await art.read(r.target));
            for (let i = 0; i < parts.length; i++) await writer.write(r.sources[i].key, parts[i]);
          }
          await writer.close();
        } catch (e) {
          await writer.abort();
          throw e;
        }
      },
      { overwrite: o.overwrite },
    );
    const seconds = (performance.now() - t0) / 1000;
    const parameters = want.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);
    const written = [weightsFile, ...Object.keys(files)].sort();
    const summary = `exported ${art.manifest.id} -> ${target} (${o.format}, ${o.dtype}): ${(parameters / 1e6).toFixed(2)}M parameters, ${written.length} files in ${seconds.toFixed(1)} s`;
    return { out: target, format: o.format, files: written, parameters, seconds, summary };
  } finally {
    await art.close();
  }
}
