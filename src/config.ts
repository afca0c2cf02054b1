import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The one configuration schema. Every entry point (CLI, server, nightly job, worker) builds its configuration
 * by layering: defaults <- config file (JSON) <- environment (MANYFOLD_*) <- command-line flags, and validates
 * the result here, so a bad value is reported once, with the path of the offending field.
 */

export const backendSchema = z.enum(['auto', 'tensorflow', 'wasm', 'cpu']);
export const presetSchema = z.enum(['tiny', 'small', 'base']);
export const methodSchema = z.enum(['clean']);

const positiveInt = z.number().int().positive();

export const trainSchema = z
  .object({
    method: methodSchema.default('clean'),
    preset: presetSchema.default('tiny'),
    epochs: positiveInt.default(30),
    batch: positiveInt.default(64),
    /** captions sampled per image per step; all of them are positives of that image */
    captionsPerImage: positiveInt.default(2),
    lr: z.number().positive().default(1e-3),
    weightDecay: z.number().min(0).default(0.05),
    warmupFraction: z.number().min(0).max(0.5).default(0.1),
    /** cosine decays to lr * minLrRatio */
    minLrRatio: z.number().min(0).max(1).default(0.05),
    gradClip: z.number().positive().default(1.0),
    /** checkpoint every N steps (and at every epoch end) */
    checkpointEvery: positiveInt.default(50),
    /** evaluate on the val split every N epochs (0 = never) */
    evalEvery: z.number().int().min(0).default(0),
    maxVocab: positiveInt.default(8192),
    minWordFreq: positiveInt.default(1),
  })
  .strict();

export const dataSchema = z
  .object({
    /** Karpathy JSON or JSONL manifest */
    file: z.string().min(1).optional(),
    imagesDir: z.string().optional(),
    cacheDir: z.string().optional(),
    onBadRow: z.enum(['fail', 'skip']).default('fail'),
  })
  .strict();

export const configSchema = z
  .object({
    backend: backendSchema.default('auto'),
    seed: z.number().int().min(0).default(0),
    data: dataSchema.default({ onBadRow: 'fail' }),
    train: trainSchema.default(trainSchema.parse({})),
  })
  .strict();

export type ManyfoldConfig = z.infer<typeof configSchema>;
export type TrainConfig = z.infer<typeof trainSchema>;

/** Human-readable list of zod issues: `train.epochs: Too small: expected number to be >0`. */
export function formatZodError(error: z.ZodError, source?: string): string {
  const lines = error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  return `Invalid configuration${source ? ` in ${source}` : ''}:\n${lines.join('\n')}`;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Json = Record<string, unknown>;

function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge where later layers win and `undefined` means "not set here". */
export function mergeLayers(...layers: (Json | undefined)[]): Json {
  const out: Json = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeLayers(out[k] as Json, v) : v;
    }
  }
  return out;
}

export function readConfigFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`Cannot read config file ${path}: ${(e as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isPlainObject(parsed)) throw new Error('top level must be an object');
    return parsed;
  } catch (e) {
    throw new ConfigError(`Config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** MANYFOLD_BACKEND, MANYFOLD_SEED: the environment layer (flat, a few well-known keys). */
export function envLayer(env: NodeJS.ProcessEnv = process.env): Json {
  const out: Json = {};
  if (env.MANYFOLD_BACKEND) out.backend = env.MANYFOLD_BACKEND;
  if (env.MANYFOLD_SEED) {
    const n = Number(env.MANYFOLD_SEED);
    out.seed = Number.isFinite(n) ? n : env.MANYFOLD_SEED;
  }
  return out;
}

export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Json } = {}): ManyfoldConfig {
  const merged = mergeLayers(opts.file ? readConfigFile(opts.file) : undefined, envLayer(opts.env), opts.overrides);
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) throw new ConfigError(formatZodError(parsed.error, opts.file));
  return parsed.data;
}
