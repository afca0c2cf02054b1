/**
 * The Manyfold model artifact: one directory that fully describes a trained encoder.
 *
 *   <dir>/manifest.json       format 'manyfold-model/1' (schema below), the only file not listed in `files`
 *   <dir>/tokenizer.json      the tokenizer (see tokenizer.ts), hashed like the weights
 *   <dir>/weights-000.bin ... float32 little-endian, tensors laid end to end in the model's variable order;
 *                             a shard is closed before it would pass `shardBytes` (default 32 MiB); one tensor
 *                             never spans two shards (a tensor larger than a shard gets a shard of its own)
 *
 * Guarantees
 * - Atomic save: everything is written (and fsynced) into a sibling temporary directory which is then renamed
 *   onto the target path, so the target is either absent, the previous artifact, or the complete new one.
 * - Verified load: every listed file's size and sha256 are checked before a byte is used; a missing, truncated,
 *   extended or altered file, a manifest that fails the schema, a weight whose shape differs from the model's
 *   variable, or a name present on one side only, each fails with an ArtifactError naming the file or tensor.
 * - Converted weights (`manyfold import`) are saved from a config and a list of tensors without building a model,
 *   one tensor in memory at a time; the manifest then records `source` (format, source directory name, bytes and
 *   sha256 of every source file read), which is provenance and not part of the content id.
 * - Content id: unless given, id = 'mf-' + the first 12 hex digits of a sha256 over the config, the tokenizer
 *   JSON and every tensor's name, shape and bytes. It does not depend on sharding, timestamps or training notes,
 *   so retraining to identical weights gives the same id.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { tf } from '../engine/tf.js';
import type { DualEncoder, ModelConfig, Tokenizer } from './types.js';
import { createDualEncoder } from './dual-encoder.js';
import { validateModelConfig } from './presets.js';
import { tokenizerFromJSON } from './tokenizer.js';
import { formatZodIssues } from '../util/zod.js';
import { writeDirAtomic, writeJsonAtomic } from '../util/atomic.js';

export const ARTIFACT_FORMAT = 'manyfold-model/1';
export const MANIFEST_FILE = 'manifest.json';
export const TOKENIZER_FILE = 'tokenizer.json';
export const DEFAULT_SHARD_BYTES = 32 * 1024 * 1024;
/** artifacts up to this size keep the verified bytes in memory between verification and assignment */
const KEEP_IN_MEMORY_BYTES = 256 * 1024 * 1024;

/** An artifact problem; `file` names the offending file (relative to the artifact dir) when there is one. */
export class ArtifactError extends Error {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'ArtifactError';
  }
}

// ---------------------------------------------------------------------------------------------- schema

/** a plain file name inside the artifact directory: no separators, no '..', no hidden files */
const fileName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a plain file name inside the artifact directory')
  .refine((s) => s !== MANIFEST_FILE, 'manifest.json cannot list itself');

const posInt = z.number().int().positive();

export const modelConfigSchema = z.object({
  preset: z.string().min(1),
  embedDim: posInt,
  image: z
    .object({ size: posInt, patch: posInt, width: posInt, depth: posInt, heads: posInt, mlpRatio: z.number().positive(), stem: z.enum(['linear', 'conv']).optional() })
    .loose(),
  text: z
    .object({
      width: posInt,
      depth: posInt,
      heads: posInt,
      mlpRatio: z.number().positive(),
      maxLen: posInt,
      vocabSize: posInt,
    })
    .loose(),
  initLogitScale: z.number(),
}).loose();

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');

/** provenance of weights converted from another format (see ArtifactSource) */
export const artifactSourceSchema = z
  .object({
    format: z.string().min(1),
    dir: z.string(),
    files: z.array(z.object({ path: z.string().min(1), bytes: z.number().int().nonnegative(), sha256: sha256Hex }).strict()),
  })
  .loose();

export const manifestSchema = z
  .object({
    format: z.literal(ARTIFACT_FORMAT),
    id: z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'id must be URL/path safe'),
    created: z.iso.datetime(),
    config: modelConfigSchema,
    tokenizer: z.object({ file: fileName, vocabSize: posInt, maxLen: posInt }).strict(),
    dims: z.object({ embed: posInt, imageSize: posInt }).loose(),
    training: z
      .object({
        data: z.unknown().optional(),
        method: z.string().optional(),
        seed: z.number().int().optional(),
        epochs: z.number().optional(),
      })
      .loose(),
    metrics: z.record(z.string(), z.unknown()),
    source: artifactSourceSchema.optional(),
    files: z.array(z.object({ path: fileName, bytes: z.number().int().nonnegative(), sha256: sha256Hex }).strict()),
    weights: z.array(
      z
        .object({
          name: z.string().min(1),
          shape: z.array(z.number().int().nonnegative()),
          dtype: z.literal('float32'),
          file: fileName,
          offset: z.number().int().nonnegative(),
        })
        .strict(),
    ),
  })
  .loose()
  .superRefine((m, ctx) => {
    const files = new Set<string>();
    m.files.forEach((f, i) => {
      if (files.has(f.path)) ctx.addIssue({ code: 'custom', path: ['files', i, 'path'], message: `duplicate file ${f.path}` });
      files.add(f.path);
    });
    if (!files.has(m.tokenizer.file)) {
      ctx.addIssue({ code: 'custom', path: ['tokenizer', 'file'], message: `${m.tokenizer.file} is not listed in files` });
    }
    const names = new Set<string>();
    m.weights.forEach((w, i) => {
      if (names.has(w.name)) ctx.addIssue({ code: 'custom', path: ['weights', i, 'name'], message: `duplicate weight ${w.name}` });
      names.add(w.name);
      if (!files.has(w.file)) ctx.addIssue({ code: 'custom', path: ['weights', i, 'file'], message: `${w.file} is not listed in files` });
      if (w.offset % 4 !== 0) ctx.addIssue({ code: 'custom', path: ['weights', i, 'offset'], message: 'offset must be a multiple of 4' });
    });
    if (m.dims.embed !== m.config.embedDim) {
      ctx.addIssue({ code: 'custom', path: ['dims', 'embed'], message: `dims.embed ${m.dims.embed} != config.embedDim ${m.config.embedDim}` });
    }
    if (m.dims.imageSize !== m.config.image.size) {
      ctx.addIssue({ code: 'custom', path: ['dims', 'imageSize'], message: `dims.imageSize ${m.dims.imageSize} != config.image.size ${m.config.image.size}` });
    }
  });

export type ArtifactManifest = z.infer<typeof manifestSchema> & { config: ModelConfig };
export type WeightEntry = ArtifactManifest['weights'][number];
export type FileEntry = ArtifactManifest['files'][number];

/** Free-form training description; data/method/seed/epochs are the conventional keys. */
export interface TrainingInfo {
  data?: unknown;
  method?: string;
  seed?: number;
  epochs?: number;
  [key: string]: unknown;
}

export type Metrics = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------- helpers

function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}


const LITTLE_ENDIAN = os.endianness() === 'LE';

/** float32 values -> little-endian bytes (a view when the host is LE) */
function floatsToBytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i], true);
  return out;
}

/** bytesToFloats without the copy where the bytes can be viewed as float32 in place (the backend copies them) */
function floatsView(buf: Uint8Array, offset: number, count: number): Float32Array {
  if (LITTLE_ENDIAN && (buf.byteOffset + offset) % 4 === 0) return new Float32Array(buf.buffer, buf.byteOffset + offset, count);
  return bytesToFloats(buf, offset, count);
}

/** little-endian bytes -> a fresh, aligned Float32Array */
function bytesToFloats(buf: Uint8Array, offset: number, count: number): Float32Array {
  const out = new Float32Array(count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(buf.subarray(offset, offset + count * 4));
  } else {
    const dv = new DataView(buf.buffer, buf.byteOffset + offset, count * 4);
    for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
  }
  return out;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

async function writeFileSynced(file: string, data: Uint8Array | string): Promise<void> {
  const fh = await fs.open(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Content id: sha256 over config, tokenizer JSON and each tensor's name, shape and bytes (sharding-independent),
 * fed one tensor at a time, so a save never needs every tensor in memory at once.
 */
function contentIdHasher(config: ModelConfig, tokenizerJson: unknown): { add(name: string, shape: readonly number[], bytes: Uint8Array): void; digest(): string } {
  const h = createHash('sha256');
  h.update(`${ARTIFACT_FORMAT}\n`);
  // keys in the order the manifest schema reads them back, so a config loaded from a manifest (a fine-tuned CLIP's)
  // hashes like the one that was saved, whatever order its writer used (Manyfold's presets already use this order)
  const parsed = modelConfigSchema.safeParse(config);
  h.update(JSON.stringify(parsed.success ? parsed.data : config));
  h.update('\n');
  h.update(JSON.stringify(tokenizerJson));
  h.update('\n');
  return {
    add(name, shape, bytes) {
      h.update(`${name}\t${shape.join('x')}\t${bytes.byteLength}\n`);
      h.update(bytes);
    },
    digest: () => `mf-${h.digest('hex').slice(0, 12)}`,
  };
}

// ---------------------------------------------------------------------------------------------- save

/**
 * One weight to save without a live model (e.g. a converted checkpoint). `data` may be a loader: it is called once,
 * when the tensor is written, and the values are dropped right after, so saving holds one tensor at a time.
 */
export interface WeightTensor {
  name: string;
  shape: readonly number[];
  data: Float32Array | (() => Float32Array | Promise<Float32Array>);
}

/** Where an artifact's weights came from, when they were converted from another format (recorded in the manifest). */
export interface ArtifactSource {
  /** source format, e.g. 'hf' or 'open_clip' */
  format: string;
  /** the source directory's basename (not its full path: manifests travel between machines) */
  dir: string;
  /** every source file read, relative to the source directory */
  files: { path: string; bytes: number; sha256: string }[];
  [key: string]: unknown;
}

/**
 * Pass either a live `model` (its variables are saved in insertion order) or `config` plus an ordered list of
 * `weights` (no model is built: converting a 150M-parameter checkpoint must not need one).
 */
export interface SaveArtifactOptions {
  model?: DualEncoder;
  config?: ModelConfig;
  weights?: readonly WeightTensor[];
  tokenizer: Tokenizer;
  training: TrainingInfo;
  metrics?: Metrics;
  /** explicit id; default is the content id (see module comment) */
  id?: string;
  /** replace an existing directory at the target path (default false: fail if it exists) */
  overwrite?: boolean;
  /** maximum shard size in bytes (default 32 MiB) */
  shardBytes?: number;
  /** creation time; default now */
  created?: Date;
  /** provenance of converted weights; stored as manifest.source (not part of the content id) */
  source?: ArtifactSource;
  /** called after each tensor is written (tensors written, bytes written, totals) */
  onTensor?: (done: { tensors: number; bytes: number; totalTensors: number; totalBytes: number; name: string }) => void;
}

/**
 * Write an artifact directory atomically. Returns the manifest written.
 * Tensors are read (a model variable's async data(), or a WeightTensor's loader) one at a time while they are written,
 * hashed for the content id on the way, so peak memory is one tensor beyond what the caller holds. All must be float32.
 */
export async function saveArtifact(dir: string, opts: SaveArtifactOptions): Promise<ArtifactManifest> {
  const { tokenizer, training, metrics = {}, overwrite = false } = opts;
  const shardBytes = opts.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!(shardBytes >= 4)) throw new ArtifactError(`saveArtifact: shardBytes must be >= 4, got ${shardBytes}`);
  const target = path.resolve(dir);

  let config: ModelConfig;
  let tensors: WeightTensor[];
  if (opts.model && (opts.config || opts.weights)) throw new ArtifactError('saveArtifact: pass either model, or config and weights, not both');
  if (opts.model) {
    const model = opts.model;
    config = model.config;
    tensors = [];
    for (const [name, v] of model.variables) {
      if (v.dtype !== 'float32') throw new ArtifactError(`saveArtifact: variable ${name} has dtype ${v.dtype}; only float32 is supported`);
      // an async read: a GPU backend (webgpu on Dawn) has no synchronous download in Node
      tensors.push({ name, shape: [...v.shape], data: () => v.data() as Promise<Float32Array> });
    }
  } else {
    if (!opts.config || !opts.weights) throw new ArtifactError('saveArtifact: pass either model, or config and weights');
    config = opts.config;
    try {
      validateModelConfig(config);
    } catch (e) {
      throw new ArtifactError(`saveArtifact: invalid model config: ${(e as Error).message}`);
    }
    tensors = [...opts.weights];
    const seen = new Set<string>();
    for (const t of tensors) {
      if (!t.name) throw new ArtifactError('saveArtifact: a weight has an empty name');
      if (seen.has(t.name)) throw new ArtifactError(`saveArtifact: duplicate weight ${t.name}`);
      seen.add(t.name);
      if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new ArtifactError(`saveArtifact: weight ${t.name} has an invalid shape [${t.shape.join(', ')}]`);
      }
    }
  }
  if (opts.source) {
    const r = artifactSourceSchema.safeParse(opts.source);
    if (!r.success) throw new ArtifactError(`saveArtifact: invalid source: ${formatZodIssues(r.error)}`);
  }

  if (tokenizer.vocabSize !== config.text.vocabSize) {
    throw new ArtifactError(
      `saveArtifact: tokenizer vocabSize ${tokenizer.vocabSize} != model config.text.vocabSize ${config.text.vocabSize}`,
    );
  }
  if (tokenizer.maxLen !== config.text.maxLen) {
    throw new ArtifactError(`saveArtifact: tokenizer maxLen ${tokenizer.maxLen} != model config.text.maxLen ${config.text.maxLen}`);
  }
  if (!overwrite && (await exists(target))) {
    throw new ArtifactError(`saveArtifact: ${target} already exists (pass overwrite: true to replace it)`);
  }

  // 1. lay the tensors out in shards (from their shapes: no data is read yet)
  const shards: { file: string; tensors: WeightTensor[]; bytes: number }[] = [];
  const weights: WeightEntry[] = [];
  let totalBytes = 0;
  for (const t of tensors) {
    const bytes = numel(t.shape) * 4;
    totalBytes += bytes;
    let cur = shards[shards.length - 1];
    if (!cur || (cur.bytes > 0 && cur.bytes + bytes > shardBytes)) {
      cur = { file: `weights-${String(shards.length).padStart(3, '0')}.bin`, tensors: [], bytes: 0 };
      shards.push(cur);
    }
    weights.push({ name: t.name, shape: [...t.shape], dtype: 'float32', file: cur.file, offset: cur.bytes });
    cur.tensors.push(t);
    cur.bytes += bytes;
  }
  if (shards.length === 0) shards.push({ file: 'weights-000.bin', tensors: [], bytes: 0 });

  const tokJson = tokenizer.toJSON();
  const tokBytes = new TextEncoder().encode(`${JSON.stringify(tokJson)}\n`);
  const idHash = opts.id === undefined ? contentIdHasher(config, tokJson) : null;

  // 2. write into a temporary sibling (hashing on the way), then rename
  return writeDirAtomic(
    target,
    async (tmp) => {
      const files: FileEntry[] = [];
      await writeFileSynced(path.join(tmp, TOKENIZER_FILE), tokBytes);
      files.push({ path: TOKENIZER_FILE, bytes: tokBytes.byteLength, sha256: sha256(tokBytes) });
      let doneTensors = 0;
      let doneBytes = 0;
      for (const s of shards) {
        const h = createHash('sha256');
        const fh = await fs.open(path.join(tmp, s.file), 'w');
        try {
          for (const t of s.tensors) {
            const values = typeof t.data === 'function' ? await t.data() : t.data;
            if (!(values instanceof Float32Array)) throw new ArtifactError(`saveArtifact: weight ${t.name} is not a Float32Array`);
            if (values.length !== numel(t.shape)) {
              throw new ArtifactError(`saveArtifact: weight ${t.name} has ${values.length} values for shape [${t.shape.join(', ')}]`);
            }
            const bytes = floatsToBytes(values);
            idHash?.add(t.name, t.shape, bytes);
            h.update(bytes);
            await fh.write(bytes);
            doneTensors++;
            doneBytes += bytes.byteLength;
            opts.onTensor?.({ tensors: doneTensors, bytes: doneBytes, totalTensors: tensors.length, totalBytes, name: t.name });
          }
          await fh.sync();
        } finally {
          await fh.close();
        }
        files.push({ path: s.file, bytes: s.bytes, sha256: h.digest('hex') });
      }
      const id = opts.id ?? idHash!.digest();

      const manifest = {
        format: ARTIFACT_FORMAT,
        id,
        created: (opts.created ?? new Date()).toISOString(),
        config,
        tokenizer: { file: TOKENIZER_FILE, vocabSize: tokenizer.vocabSize, maxLen: tokenizer.maxLen },
        dims: { embed: config.embedDim, imageSize: config.image.size },
        training: { ...training },
        metrics: { ...metrics },
        ...(opts.source ? { source: opts.source } : {}),
        files,
        weights,
      };
      const checked = parseManifest(manifest, MANIFEST_FILE); // never write a manifest we could not read back
      await writeFileSynced(path.join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
      return checked;
    },
    { overwrite },
  );
}

// ---------------------------------------------------------------------------------------------- read

function parseManifest(json: unknown, where: string): ArtifactManifest {
  const r = manifestSchema.safeParse(json);
  if (!r.success) throw new ArtifactError(`invalid artifact manifest ${where}: ${formatZodIssues(r.error)}`, MANIFEST_FILE);
  return r.data as ArtifactManifest;
}

/** Read and validate manifest.json (no file hashing). */
export async function readManifest(dir: string): Promise<ArtifactManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ArtifactError(
      code === 'ENOENT' ? `not a Manyfold artifact: ${file} does not exist` : `cannot read ${file}: ${(e as Error).message}`,
      MANIFEST_FILE,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ArtifactError(`invalid artifact manifest ${file}: not JSON (${(e as Error).message})`, MANIFEST_FILE);
  }
  return parseManifest(json, file);
}

/** Read one listed file and check its size and sha256. */
async function readVerified(dir: string, entry: FileEntry): Promise<Uint8Array> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(path.join(dir, entry.path));
  } catch (e) {
    throw readError(dir, entry, e);
  }
  return checkVerified(entry, buf);
}

/** readVerified for the synchronous weight loader of loadArtifact (a model's variables are built synchronously) */
function readVerifiedSync(dir: string, entry: FileEntry): Uint8Array {
  let buf: Buffer;
  try {
    buf = readFileSync(path.join(dir, entry.path));
  } catch (e) {
    throw readError(dir, entry, e);
  }
  return checkVerified(entry, buf);
}

function readError(dir: string, entry: FileEntry, e: unknown): ArtifactError {
  const code = (e as NodeJS.ErrnoException).code;
  return new ArtifactError(
    code === 'ENOENT'
      ? `artifact file ${entry.path} is missing (listed in ${MANIFEST_FILE} of ${dir})`
      : `cannot read artifact file ${entry.path}: ${(e as Error).message}`,
    entry.path,
  );
}

function checkVerified(entry: FileEntry, buf: Uint8Array): Uint8Array {
  checkSizeAndDigest(entry, buf.byteLength, () => sha256(buf));
  return buf;
}

/** a listed file's size, then its sha256 (computed only when the size matches) */
function checkSizeAndDigest(entry: FileEntry, bytes: number, digest: () => string): void {
  if (bytes !== entry.bytes) {
    throw new ArtifactError(`artifact file ${entry.path} has ${bytes} bytes, manifest says ${entry.bytes} (${bytes < entry.bytes ? 'truncated' : 'extended'})`, entry.path);
  }
  const got = digest();
  if (got !== entry.sha256) {
    throw new ArtifactError(`artifact file ${entry.path} failed its sha256 check: expected ${entry.sha256}, got ${got}`, entry.path);
  }
}

/** Verify every file listed in the manifest (size + sha256, hashed as a stream) without loading a model. */
export async function verifyArtifact(dir: string): Promise<ArtifactManifest> {
  const manifest = await readManifest(dir);
  for (const f of manifest.files) {
    let got: { bytes: number; sha256: string };
    try {
      got = await hashFile(path.join(dir, f.path));
    } catch (e) {
      throw readError(dir, f, e);
    }
    checkSizeAndDigest(f, got.bytes, () => got.sha256);
  }
  return manifest;
}

/** Stream a file's size and sha256 (no full read into memory: artifacts of real CLIPs are hundreds of MB). */
export async function hashFile(file: string): Promise<{ bytes: number; sha256: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, bytes);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { bytes, sha256: h.digest('hex') };
}

export interface ArtifactWeights {
  manifest: ArtifactManifest;
  /** the parsed tokenizer.json (verified) */
  tokenizerJson: unknown;
  /** one weight as float32, read from its shard */
  read(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

/**
 * Verify an artifact (every file's size and sha256, hashed as a stream) and read its weights one at a time without
 * building a model: for conversions (export) of artifacts too large to hold twice.
 */
export async function openArtifactWeights(dir: string): Promise<ArtifactWeights> {
  const manifest = await verifyArtifact(dir);
  const tokFile = manifest.tokenizer.file;
  let tokenizerJson: unknown;
  try {
    tokenizerJson = JSON.parse(await fs.readFile(path.join(dir, tokFile), 'utf8'));
  } catch (e) {
    throw new ArtifactError(`artifact file ${tokFile}: ${(e as Error).message}`, tokFile);
  }
  checkWeightTable(manifest);
  const byName = new Map(manifest.weights.map((w) => [w.name, w]));
  const handles = new Map<string, fs.FileHandle>();
  return {
    manifest,
    tokenizerJson,
    async read(name: string): Promise<Float32Array> {
      const w = byName.get(name);
      if (!w) throw new ArtifactError(`artifact ${dir} has no weight ${name}`);
      let fh = handles.get(w.file);
      if (!fh) {
        fh = await fs.open(path.join(dir, w.file), 'r');
        handles.set(w.file, fh);
      }
      return readWeightFrom(fh, w);
    },
    async close() {
      await Promise.all([...handles.values()].map((h) => h.close().catch(() => undefined)));
      handles.clear();
    },
  };
}

/** one weight's float32 values from an open shard (the artifact verified already) */
async function readWeightFrom(fh: fs.FileHandle, w: WeightEntry): Promise<Float32Array> {
  const n = numel(w.shape);
  const buf = new Uint8Array(n * 4);
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, w.offset + done);
    if (bytesRead === 0) throw new ArtifactError(`artifact file ${w.file} ended while reading ${w.name} (changed on disk?)`, w.file);
    done += bytesRead;
  }
  return bytesToFloats(buf, 0, n);
}

/** One weight of an artifact the caller has verified (loadArtifactTokenizer / verifyArtifact), read from its shard. */
export async function readArtifactWeight(dir: string, w: WeightEntry): Promise<Float32Array> {
  const fh = await fs.open(path.join(dir, w.file), 'r');
  try {
    return await readWeightFrom(fh, w);
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------- load

export type CreateModel = (config: ModelConfig, seed: number) => DualEncoder;

export interface LoadArtifactOptions {
  /** model factory; default: createDualEncoder from ./dual-encoder.js */
  createModel?: CreateModel;
  /**
   * artifacts up to this many bytes keep the verified file contents in memory for assignment (default 256 MiB);
   * larger ones re-read and re-verify each shard while assigning (lower peak memory, twice the reads)
   */
  keepInMemoryBytes?: number;
}

export interface LoadedArtifact {
  model: DualEncoder;
  tokenizer: Tokenizer;
  manifest: ArtifactManifest;
}

/** the artifact's tokenizer, rebuilt from its (verified) file and checked against the manifest and config */
function checkedTokenizer(manifest: ArtifactManifest, bytes: Uint8Array): Tokenizer {
  const tokFile = manifest.tokenizer.file;
  let tokenizer: Tokenizer;
  try {
    tokenizer = tokenizerFromJSON(JSON.parse(new TextDecoder().decode(bytes)));
  } catch (e) {
    throw new ArtifactError(`artifact file ${tokFile}: ${(e as Error).message}`, tokFile);
  }
  const cfg = manifest.config;
  if (tokenizer.vocabSize !== manifest.tokenizer.vocabSize || tokenizer.vocabSize !== cfg.text.vocabSize) {
    throw new ArtifactError(
      `artifact file ${tokFile}: tokenizer vocabSize ${tokenizer.vocabSize} does not match manifest (${manifest.tokenizer.vocabSize}) / config.text.vocabSize (${cfg.text.vocabSize})`,
      tokFile,
    );
  }
  if (tokenizer.maxLen !== manifest.tokenizer.maxLen || tokenizer.maxLen !== cfg.text.maxLen) {
    throw new ArtifactError(
      `artifact file ${tokFile}: tokenizer maxLen ${tokenizer.maxLen} does not match manifest (${manifest.tokenizer.maxLen}) / config.text.maxLen (${cfg.text.maxLen})`,
      tokFile,
    );
  }
  return tokenizer;
}

/** every weight lies inside its file (checked before anything reads weights) */
function checkWeightTable(manifest: ArtifactManifest): void {
  const sizes = new Map(manifest.files.map((f) => [f.path, f.bytes]));
  for (const w of manifest.weights) {
    const size = sizes.get(w.file)!;
    const need = numel(w.shape) * 4;
    if (w.offset + need > size) {
      throw new ArtifactError(`weight ${w.name} [${w.shape.join(', ')}] at offset ${w.offset} needs ${need} bytes but ${w.file} has ${size}`, w.file);
    }
  }
}

/**
 * Verify an artifact (every file hashed as a stream) and rebuild its tokenizer, without building the model: for
 * serving on a native engine (model/onnx-towers.ts maps the verified shards itself), where the differentiable
 * model is built only if something later needs gradients.
 */
export async function loadArtifactTokenizer(dir: string): Promise<{ manifest: ArtifactManifest; tokenizer: Tokenizer }> {
  const manifest = await verifyArtifact(dir);
  const tokFile = manifest.tokenizer.file;
  const tokenizer = checkedTokenizer(manifest, await readVerified(dir, manifest.files.find((f) => f.path === tokFile)!));
  checkWeightTable(manifest);
  return { manifest, tokenizer };
}

/**
 * Load an artifact: validate the manifest, verify every file, rebuild the tokenizer, create the model from
 * the stored config and assign every weight by name. The caller owns (and disposes) the returned model.
 */
export async function loadArtifact(dir: string, opts: LoadArtifactOptions = {}): Promise<LoadedArtifact> {
  const manifest = await readManifest(dir);
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));

  // Every file is verified before anything is built (missing/truncated/tampered fail here, naming the file).
  // Small artifacts keep the verified bytes; large ones are re-read (and re-verified) shard by shard during
  // assignment so that peak memory stays around one shard plus the model.
  const tokFile = manifest.tokenizer.file;
  const totalBytes = manifest.files.reduce((a, f) => a + f.bytes, 0);
  const keep = totalBytes <= (opts.keepInMemoryBytes ?? KEEP_IN_MEMORY_BYTES);
  const contents = new Map<string, Uint8Array>();
  for (const f of manifest.files) {
    const buf = await readVerified(dir, f);
    if (keep || f.path === tokFile) contents.set(f.path, buf);
  }

  const tokenizer = checkedTokenizer(manifest, contents.get(tokFile)!);
  checkWeightTable(manifest);

  const seed = typeof manifest.training.seed === 'number' ? manifest.training.seed : 0;
  if (!opts.createModel) {
    // The weights go straight into the variables as the model builds them (one copy in the backend's memory, not
    // zeros first and then the weights: at CLIP sizes that doubled the wasm heap, which never shrinks). Shards
    // are read (and re-verified) as the variables reach them: saved in variable order, so each is read once.
    const entries = new Map(manifest.weights.map((w) => [w.name, w]));
    let shard: { file: string; buf: Uint8Array } | null = null;
    const init = (name: string, shape: readonly number[]): Float32Array => {
      const w = entries.get(name);
      // a name or shape the artifact does not match: zeros here, and checkWeightNames below says what differs
      if (!w || !sameShape(w.shape, shape)) return new Float32Array(numel(shape));
      if (shard?.file !== w.file) shard = { file: w.file, buf: contents.get(w.file) ?? readVerifiedSync(dir, byPath.get(w.file)!) };
      return floatsView(shard.buf, w.offset, numel(w.shape));
    };
    const model = createDualEncoder(manifest.config as ModelConfig, seed, init);
    try {
      checkWeightNames(model, manifest);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, tokenizer, manifest };
  }
  const model = opts.createModel(manifest.config as ModelConfig, seed);
  try {
    checkWeightNames(model, manifest);
    const byFile = new Map<string, WeightEntry[]>();
    for (const w of manifest.weights) {
      const list = byFile.get(w.file);
      if (list) list.push(w);
      else byFile.set(w.file, [w]);
    }
    for (const [file, entries] of byFile) {
      const buf = contents.get(file) ?? (await readVerified(dir, byPath.get(file)!));
      for (const w of entries) {
        const v = model.variables.get(w.name)!;
        const values = bytesToFloats(buf, w.offset, numel(w.shape));
        tf.tidy(() => v.assign(tf.tensor(values, w.shape, 'float32')));
      }
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, tokenizer, manifest };
}

/** Names must match one to one and every shape must equal the model variable's. */
function checkWeightNames(model: DualEncoder, manifest: ArtifactManifest): void {
  const stored = new Set(manifest.weights.map((w) => w.name));
  const missing = [...model.variables.keys()].filter((n) => !stored.has(n));
  const extra = manifest.weights.map((w) => w.name).filter((n) => !model.variables.has(n));
  if (missing.length || extra.length) {
    const fmt = (xs: string[]): string => (xs.length > 8 ? `${xs.slice(0, 8).join(', ')}, ... (${xs.length})` : xs.join(', '));
    throw new ArtifactError(
      `artifact weights do not match the model built from its config:` +
        (missing.length ? ` missing in the artifact: ${fmt(missing)};` : '') +
        (extra.length ? ` not in the model: ${fmt(extra)};` : ''),
    );
  }
  for (const w of manifest.weights) {
    const v = model.variables.get(w.name)!;
    if (!sameShape(v.shape, w.shape)) {
      throw new ArtifactError(
        `weight ${w.name} in ${w.file} has shape [${w.shape.join(', ')}] but the model expects [${v.shape.join(', ')}]`,
        w.file,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------- update

export interface UpdateMetricsOptions {
  /** replace the metrics object instead of merging (default: shallow merge, new keys win) */
  replace?: boolean;
}

/**
 * Update manifest.metrics in place (atomically: temp file + rename). Only the manifest changes; no file is
 * re-hashed and the id is unchanged (metrics are not part of the content id).
 */
export async function updateManifestMetrics(dir: string, metrics: Metrics, opts: UpdateMetricsOptions = {}): Promise<ArtifactManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  await readManifest(dir); // validates first: a broken artifact is reported, not rewritten
  const raw = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>; // keeps unknown keys verbatim
  const prev = (raw.metrics ?? {}) as Metrics;
  raw.metrics = opts.replace ? { ...metrics } : { ...prev, ...metrics };
  const checked = parseManifest(raw, file);
  await writeJsonAtomic(file, raw, { indent: 2 });
  return checked;
}
