import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DIMENSION_KEY, PINECONE_INDEX_NAME } from './index/pinecone-names.js';
import { probeAttackSpecSchema } from './eval/robust/catalog.js';

/**
 * The one configuration schema. Every entry point (CLI, server, nightly job, worker) builds its configuration
 * by layering: defaults <- config file (JSON) <- environment (MANYFOLD_*) <- command-line flags, and validates
 * the result here, so a bad value is reported once, with the path of the offending field.
 */

/** The tfjs backends `--backend` accepts (src/engine/backend.ts): the one list of them. */
export const BACKEND_KINDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export const backendSchema = z.enum(BACKEND_KINDS);
/** the engine serve and embed embed with (model/load-encoder.ts) */
export const inferenceSchema = z.enum(['auto', 'tfjs', 'onnx']);
export const presetSchema = z.enum(['tiny', 'small', 'base']);
export const methodSchema = z.enum(['clean', 'tecoa', 'fare', 'mat']);
/** closed-vocabulary lexicons a text substitute must keep its label in (src/eval/text-labels.ts) */
export const textLabelsSchema = z.enum(['none', 'scenes']);
/** MAT's text inner maximisation: discrete WordNet substitution (faithful) or PGD on token embeddings (cheaper) */
export const textAttackSchema = z.enum(['substitution', 'embedding']);
/** `--augment` entries (see src/augment/README in docs/defenses.md) */
export const augmentNameSchema = z.enum(['eda', 'siblings', 'paraphrase', 'basic', 'flip', 'oracle-caption', 'oracle-image', 'provider-caption', 'provider-image', 'misaligned', 'nn', 'text', 'image', 'cross']);

const positiveInt = z.number().int().positive();

export const trainSchema = z
  .object({
    method: methodSchema.default('clean'),
    preset: presetSchema.default('tiny'),
    epochs: positiveInt.default(30),
    batch: positiveInt.default(64),
    /** image patch embedding, overriding the preset's ('linear' ViT patches | 'conv' stem; see src/model/types.ts) */
    stem: z.enum(['linear', 'conv']).optional(),
    /** image input edge in pixels, overriding the preset's (must be a multiple of the patch) */
    imageSize: z.number().int().min(8).max(1024).optional(),
    /** image patch edge in pixels, overriding the preset's (a multiple of 4 with the conv stem) */
    patch: z.number().int().min(1).max(256).optional(),
    /** captions sampled per image per step; all of them are positives of that image */
    captionsPerImage: positiveInt.default(2),
    /**
     * peak learning rate from scratch (fine-tuning with --init uses 2e-4). 5e-4 measured best for the tiny preset on
     * scenes (test R@1 TR/IR at 6 epochs: 3e-4 29.0/33.0, 5e-4 36.0/37.2, 1e-3 27.5/28.8, 2e-3 13.0/13.7; docs/results.md)
     */
    lr: z.number().positive().default(5e-4),
    weightDecay: z.number().min(0).default(0.05),
    warmupFraction: z.number().min(0).max(0.5).default(0.1),
    /** cosine decays to lr * minLrRatio */
    minLrRatio: z.number().min(0).max(1).default(0.05),
    gradClip: z.number().positive().default(1.0),
    /**
     * random translation of every training image by up to this many pixels per axis (edges replicated), drawn anew
     * each step; 0 = off. Keeps the tiny ViT from memorising shape (docs/results.md, session 5)
     */
    shift: z.number().int().min(0).max(16).default(0),
    /**
     * hard negative captions per image per step (0 = off): captions of the image's scene graph with one object's
     * shape or colour changed, added to the image->text denominators (src/data/scenes/negatives.ts). Needs scene
     * graphs (the `scenes` data set); method clean without --augment.
     */
    hardNegatives: z.number().int().min(0).max(8).default(0),
    /**
     * hard negative images per training image (0 = off): the same kind of scene edit, rendered once before training
     * (src/data/scenes/negatives.ts renderHardNegativeImages) and added to every caption's text->image denominator.
     * Needs scene graphs; method clean without --augment. Each costs one more image-tower pass per batch image.
     */
    hardNegativeImages: z.number().int().min(0).max(4).default(0),
    /** captions of a step are run through the text tower in this many length buckets (less padding; same embeddings) */
    textBuckets: positiveInt.default(4),
    /**
     * batch composition: 'random' (a seeded shuffle) or 'hard' (groups of images that are nearest neighbours in
     * the model's own image-embedding space, mined at the start of every epoch from hardFromEpoch on)
     */
    batchSampling: z.enum(['random', 'hard']).default('random'),
    /** 'hard' sampling: images per mined group (a seed image and its nearest unassigned neighbours) */
    hardGroup: z.number().int().min(2).default(4),
    /** 'hard' sampling: first epoch (0-based) mined; earlier epochs are random (the untrained model's neighbours mean little) */
    hardFromEpoch: z.number().int().min(0).default(1),
    /**
     * freeze the embeddings (image: conv stem, patch, class token, position, ln_pre; text: token, position) and the
     * first N transformer blocks of BOTH towers (0 = nothing frozen). Frozen variables get no gradient (the backward
     * pass stops at the first trainable block) and no AdamW moments; they are still saved in checkpoints.
     */
    freezeBlocks: z.number().int().min(0).max(1024).default(0),
    /**
     * gradient accumulation: micro-batches of `batch` images per optimizer step (effective batch = batch x N). The
     * contrastive loss is computed within each micro-batch (its negatives are that micro-batch's), and the step
     * applies the mean of the N micro-batch gradients; open_clip's `accum_freq` instead re-embeds every micro-batch
     * against cached features of all N, which needs a second forward pass per micro-batch.
     */
    gradAccum: z.number().int().min(1).max(4096).default(1),
    /** stop after this many optimizer steps (the schedule is laid out over them); unset = epochs x steps per epoch */
    maxSteps: positiveInt.optional(),
    /** checkpoint every N steps (and at every epoch end) */
    checkpointEvery: positiveInt.default(50),
    /** evaluate on the val split every N epochs (0 = never) */
    evalEvery: z.number().int().min(0).default(0),
    maxVocab: positiveInt.default(8192),
    minWordFreq: positiveInt.default(1),
    /** fine-tune from this model artifact (directory); the default for defenses (STACK.md: from scratch collapses) */
    init: z.string().min(1).optional(),
    /** FARE: the frozen reference encoder (default: the --init model) */
    reference: z.string().min(1).optional(),
    /** training-time image budget, L-inf, /255 units (TeCoA, FARE, MAT) */
    trainEps: z.number().min(0).max(255).default(4),
    /** PGD steps of the training-time inner maximisation (evaluation uses 10) */
    trainSteps: z.number().int().min(0).default(3),
    /** PGD step size in /255 units (default 2.5 * trainEps / trainSteps) */
    trainStepSize: z.number().positive().optional(),
    /** MAT: words substituted per caption */
    trainWords: z.number().int().min(0).default(1),
    /** MAT text inner max: 'substitution' (greedy WordNet swap) or 'embedding' (PGD on token embeddings) */
    textAttack: textAttackSchema.default('substitution'),
    /** MAT substitution: WordNet candidates scored per word (fewer = faster) */
    textCandidates: positiveInt.default(8),
    /** MAT substitution: substitutes may not change a label of this closed vocabulary (src/eval/text-labels.ts) */
    textLabels: textLabelsSchema.default('none'),
    /** MAT substitution: word order, 'random' (cheap, default for training) or 'delete' (PWWS importance, +~50% text cost) */
    textWir: z.enum(['random', 'delete']).default('random'),
    /** MAT embedding attack: L2 radius per token, relative to the mean token-embedding norm of the batch */
    textEmbedEps: z.number().min(0).default(0.5),
    /** N:N augmentation list (empty = none) */
    augment: z.array(augmentNameSchema).default([]),
    /** provider cache written by `manyfold augment prepare` (read-only during training) */
    augmentCache: z.string().min(1).optional(),
    /** extra (augmented) caption slots per image per step, on top of captionsPerImage */
    augmentTexts: z.number().int().min(0).default(1),
    /** probability that an image is replaced by one of its augmented views in a step */
    augmentImageP: z.number().min(0).max(1).default(0.5),
    /** augmented captions / views generated per image for the pool */
    augmentPerSource: positiveInt.default(3),
    /** alignment filter: drop augmented pairs whose reference-model cosine is below this quantile of the ground-truth pairs' cosines (0 = off) */
    alignQuantile: z.number().min(0).max(1).default(0.05),
    /** model scoring the alignment filter (default: --reference, else --init) */
    alignModel: z.string().min(1).optional(),
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

/** `manyfold serve`: where the HTTP server listens and how it stops. */
export const serverSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    /** graceful shutdown: how long in-flight requests may take after SIGTERM/SIGINT before the process exits */
    shutdownTimeoutMs: positiveInt.default(10_000),
    /** the user namespace used when a request names none */
    defaultNamespace: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.]{0,31}$/).default('default'),
    /** GET /metrics without a key (Prometheus scrapers); false = admin scope required */
    metricsPublic: z.boolean().default(true),
    /** pino log level */
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

/**
 * Pinecone: the key, the index host, and how long a blue/green activation waits for describe_index_stats to
 * report the re-embedded counts (serverless stats lag the writes by seconds; src/index/pinecone.ts).
 * A Pinecone index has one dimension, so models of several sizes need `indexes`: embedding dimension -> index name
 * (resolved and checked with describe_index before any write; src/index/pinecone-routed.ts); `host` is then the
 * default index for dimensions without an entry, and optional.
 */
export const pineconeConfigSchema = z
  .object({
    apiKey: z.string().min(1),
    host: z.string().min(1).optional(),
    indexes: z
      .record(z.string(), z.string().regex(PINECONE_INDEX_NAME, 'a Pinecone index name: lower-case letters, digits and "-", 1-45 characters'))
      // checked here rather than as the record's key schema: zod reports a bad key only as "Invalid key in record"
      .superRefine((m, ctx) => {
        for (const k of Object.keys(m)) {
          if (!DIMENSION_KEY.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'keys are embedding dimensions (positive integers)' });
        }
      })
      .optional(),
    /** the control plane describe_index is asked (default https://api.pinecone.io) */
    controllerHost: z.string().url().optional(),
    /** activation's count verification gives up after this long (0 = read the counts once, no waiting) */
    consistencyTimeoutMs: z.number().int().min(0).max(3_600_000).default(60_000),
    /** first backoff delay between count polls; each next delay doubles up to consistencyMaxDelayMs */
    consistencyInitialDelayMs: positiveInt.max(60_000).default(500),
    consistencyMaxDelayMs: positiveInt.max(300_000).default(8_000),
  })
  .strict()
  .refine((p) => p.consistencyMaxDelayMs >= p.consistencyInitialDelayMs, {
    path: ['consistencyMaxDelayMs'],
    message: 'must be >= consistencyInitialDelayMs',
  })
  .refine((p) => p.host !== undefined || Object.keys(p.indexes ?? {}).length > 0, {
    path: ['host'],
    message: 'required unless indexes maps at least one dimension to an index name',
  });

/** The vector index the API serves from (see src/index/README.md). */
export const indexConfigSchema = z
  .object({
    kind: z.enum(['lancedb', 'memory', 'pinecone']).default('lancedb'),
    /** LanceDB directory; default <data dir>/index */
    dir: z.string().min(1).optional(),
    annThreshold: positiveInt.optional(),
    pinecone: pineconeConfigSchema.optional(),
  })
  .strict();

/** API keys: `key=scope+scope,key2=scope` (MANYFOLD_API_KEYS). Scopes: search, write, probe, admin. */
export const authSchema = z
  .object({
    keys: z.string().optional(),
  })
  .strict();

/** Request, image, rate and job limits of the API. */
export const limitsSchema = z
  .object({
    maxBodyBytes: positiveInt.default(8 * 1024 * 1024),
    /** one image's encoded bytes */
    maxImageBytes: positiveInt.default(4 * 1024 * 1024),
    /** width x height declared in the image header; checked before any decoding (decompression bombs) */
    maxImagePixels: positiveInt.default(25_000_000),
    maxItemsPerRequest: positiveInt.default(256),
    maxCaptionsPerItem: positiveInt.default(32),
    /** characters of one query text or caption */
    maxTextChars: positiveInt.default(2_000),
    maxTopK: positiveInt.default(100),
    /** per API key token bucket: sustained requests per second and burst size */
    ratePerSecond: z.number().positive().default(50),
    rateBurst: positiveInt.default(100),
    /** probes running at once; more wait queued */
    probeConcurrency: positiveInt.default(1),
    /** probes queued or running at once; more get 429 */
    maxProbesPending: positiveInt.default(8),
    /** supplied query pairs one probe may attack (they travel in the request body) */
    maxProbeQueries: positiveInt.default(64),
    /** items one probe may sample from a namespace (the production gallery; `sample` or `halfWidth`) */
    maxProbeSample: positiveInt.default(2000),
    /** concurrent search queries coalesced into one encoder forward pass */
    microBatch: positiveInt.default(32),
  })
  .strict();

/** `manyfold nightly`: the retrain -> eval gate -> deploy job (src/nightly, docs/operations.md). */
export const nightlySchema = z
  .object({
    /** where run state files live: <stateDir>/<runId>/state.json (+ summary.json, train/, eval-*.json) */
    stateDir: z.string().min(1).default('runs/nightly'),
    /** the running API (blue/green activation, smoke) and an admin key for it */
    serverUrl: z.string().url().optional(),
    adminKey: z.string().min(8).optional(),
    /** directory the server scans for artifacts (its <data>/models): published artifacts are copied here */
    publishDir: z.string().min(1).optional(),
    /**
     * train step: fine-tune from the production model ('active': the nightly recipe's MAT + N:N fine-tune keeps
     * improving what is deployed) unless train.init names a model; 'none' trains from train.init or scratch
     */
    initFrom: z.enum(['active', 'none']).default('active'),
    /** held-out split of the data file used by the gate, and how many of its images (fixed: first N) */
    evalSplit: z.string().min(1).default('test'),
    evalLimit: positiveInt.default(200),
    /** the fixed attack suite of the gate (the probe catalogue: src/eval/robust/catalog.ts), budgets in /255 */
    attacks: z.array(probeAttackSpecSchema).min(1).default([
      { name: 'pgd', eps: 2, steps: 5 },
      { name: 'text', maxWordsChanged: 1 },
    ]),
    evalSeed: z.number().int().min(0).default(0),
    /** bootstrap resamples of the gate's paired intervals */
    resamples: z.number().int().min(100).max(100_000).default(1000),
    /**
     * gate: promote only when the paired 95% interval of (candidate - production) robust R@1 (worst case over the
     * suite, mean of TR and IR, points) lies above -tolerance and is at most +-tolerance wide
     */
    robustR1Tolerance: z.number().positive().default(3),
    /** gate: the paired interval of the clean R@1 change (mean of TR and IR, points) must lie above -this */
    cleanR1MaxDrop: z.number().min(0).default(3),
    /** activation job polling */
    pollMs: positiveInt.default(250),
    jobTimeoutMs: positiveInt.default(30 * 60_000),
    /** smoke: an attack probe through the API (POST /v1/probes) against the newly active model */
    smokeSample: positiveInt.default(16),
    smokeAttacks: z.array(probeAttackSpecSchema).min(1).default([
      { name: 'pgd', eps: 2, steps: 3 },
      { name: 'text', maxWordsChanged: 1 },
    ]),
  })
  .strict();

export const configSchema = z
  .object({
    backend: backendSchema.default('auto'),
    /**
     * wasm only: XNNPACK threads. 1 is the stock single-threaded build; > 1 uses the experimental Node workaround
     * (engine/wasm-threads.ts). It pays off only on otherwise idle cores (measured on an idle 2-core machine: the
     * dual-encoder training step 545 -> 362 ms with 2 threads; no gain and 1.6x the CPU time when the other core is busy).
     */
    threads: z.number().int().min(1).max(64).default(1),
    /**
     * the engine that serves embeddings (serve, embed): 'onnx' = onnxruntime-node's native CPU kernels (a ViT-B/32
     * embeds 4x faster than on tfjs-wasm at 2 threads, 5-6x at 1: docs/results.md), the tfjs model built only when
     * gradients are needed;
     * 'tfjs' = the tfjs backend above; 'auto' = onnx where onnxruntime-node loads. Training, eval and attacks
     * always run on tfjs (they need gradients); the edge always uses tfjs.
     */
    inference: inferenceSchema.default('auto'),
    /** onnxruntime intra-op threads for `inference: onnx` (default: os.availableParallelism(), every CPU the process may use) */
    inferenceThreads: z.number().int().min(1).max(256).optional(),
    seed: z.number().int().min(0).default(0),
    data: dataSchema.default({ onBadRow: 'fail' }),
    train: trainSchema.default(trainSchema.parse({})),
    server: serverSchema.default(serverSchema.parse({})),
    index: indexConfigSchema.default(indexConfigSchema.parse({})),
    auth: authSchema.default({}),
    limits: limitsSchema.default(limitsSchema.parse({})),
    nightly: nightlySchema.default(nightlySchema.parse({})),
  })
  .strict();

export type ManyfoldConfig = z.infer<typeof configSchema>;
export type TrainConfig = z.infer<typeof trainSchema>;
export type ServerConfig = z.infer<typeof serverSchema>;
export type IndexSectionConfig = z.infer<typeof indexConfigSchema>;
export type LimitsConfig = z.infer<typeof limitsSchema>;
export type NightlyConfig = z.infer<typeof nightlySchema>;

/**
 * Human-readable list of zod issues: `train.epochs: Too small: expected number to be >0`; `origin` may name where a
 * field's value came from (`server.port (MANYFOLD_PORT): ...`).
 */
export function formatZodError(error: z.ZodError, source?: string, origin?: (path: string) => string | undefined): string {
  const lines = error.issues.map((i) => {
    const path = i.path.length ? i.path.join('.') : '(root)';
    const from = origin?.(path);
    return `  ${path}${from ? ` (${from})` : ''}: ${i.message}`;
  });
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

/**
 * Where a runtime's configuration comes from: process.env on Node and Lambda, the Worker's bindings on Cloudflare
 * (only string values are read; bindings such as buckets and queues are ignored here).
 */
export type Environment = Readonly<Record<string, unknown>>;

/** Every variable the configuration reads, on every runtime, and the field it sets. */
export const CONFIG_VARIABLES: readonly { name: string; path: readonly string[]; number?: true; onlyWithPinecone?: true }[] = [
  { name: 'MANYFOLD_BACKEND', path: ['backend'] },
  { name: 'MANYFOLD_THREADS', path: ['threads'], number: true },
  { name: 'MANYFOLD_INFERENCE', path: ['inference'] },
  { name: 'MANYFOLD_SEED', path: ['seed'], number: true },
  { name: 'MANYFOLD_PORT', path: ['server', 'port'], number: true },
  { name: 'MANYFOLD_HOST', path: ['server', 'host'] },
  { name: 'MANYFOLD_LOG_LEVEL', path: ['server', 'logLevel'] },
  { name: 'MANYFOLD_API_KEYS', path: ['auth', 'keys'] },
  { name: 'MANYFOLD_INDEX', path: ['index', 'kind'] },
  // read only when the index is Pinecone: a shell that exports them for other work must not break a LanceDB server
  { name: 'PINECONE_API_KEY', path: ['index', 'pinecone', 'apiKey'], onlyWithPinecone: true },
  { name: 'PINECONE_HOST', path: ['index', 'pinecone', 'host'], onlyWithPinecone: true },
];

const envString = (env: Environment, name: string): string | undefined => {
  const v = env[name];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
};

/**
 * The variables of CONFIG_VARIABLES that are set, as a config layer (a number that does not parse stays a string,
 * for zod to name); the Pinecone ones only when `withPinecone`.
 */
export function envLayer(env: Environment = process.env, withPinecone = true): Json {
  const out: Json = {};
  for (const v of CONFIG_VARIABLES) {
    const raw = envString(env, v.name);
    if (raw === undefined || (v.onlyWithPinecone && !withPinecone)) continue;
    const value = v.number && Number.isFinite(Number(raw)) ? Number(raw) : raw;
    let at = out;
    for (const key of v.path.slice(0, -1)) at = (at[key] ??= {}) as Json;
    at[v.path[v.path.length - 1]] = value;
  }
  return out;
}

/** MANYFOLD_CONFIG: a whole config file as JSON in one variable (the edge has no config file; containers may prefer it too). */
export function envConfigLayer(env: Environment = process.env): Json | undefined {
  const text = envString(env, 'MANYFOLD_CONFIG');
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isPlainObject(parsed)) throw new Error('top level must be an object');
    return parsed;
  } catch (e) {
    throw new ConfigError(`MANYFOLD_CONFIG is not valid JSON: ${(e as Error).message}`);
  }
}

export interface LoadConfigOptions {
  /** a config file (JSON) on disk: Node's --config */
  file?: string;
  /** the runtime's environment (default: process.env) */
  env?: Environment;
  /** the last layer: command-line flags, test overrides */
  overrides?: Json;
}

/**
 * The configuration of every runtime, from the same layers in the same order: defaults <- config file <-
 * MANYFOLD_CONFIG <- variables (CONFIG_VARIABLES; PINECONE_* only when the layers choose index kind pinecone) <-
 * flags. Validation errors name the field and, when a variable set it, the variable.
 */
export function loadConfig(opts: LoadConfigOptions = {}): ManyfoldConfig {
  const env = opts.env ?? process.env;
  const file = opts.file ? readConfigFile(opts.file) : undefined;
  const envConfig = envConfigLayer(env);
  const layers = (withPinecone: boolean) => mergeLayers(file, envConfig, envLayer(env, withPinecone), opts.overrides);
  const withoutPinecone = layers(false);
  const merged = (withoutPinecone.index as Json | undefined)?.kind === 'pinecone' ? layers(true) : withoutPinecone;
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const fromEnv = new Map(CONFIG_VARIABLES.filter((v) => envString(env, v.name) !== undefined && (!v.onlyWithPinecone || merged !== withoutPinecone)).map((v) => [v.path.join('.'), v.name]));
    const sources = [opts.file, envString(env, 'MANYFOLD_CONFIG') ? 'MANYFOLD_CONFIG' : undefined].filter(Boolean).join(' + ');
    throw new ConfigError(formatZodError(parsed.error, sources || undefined, (path) => fromEnv.get(path)));
  }
  return parsed.data;
}
