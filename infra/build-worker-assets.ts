/**
 * Builds the Worker's static-asset directory (infra/wrangler.jsonc "assets"):
 *   <out>/model/   the artifact files (manifest.json, tokenizer.json, weights-*.bin), verified first: the default
 *                  model (served when the store's state names none)
 *   <out>/models/<id>/  further artifacts (e.g. a nightly candidate to re-index into a new namespace)
 *   <out>/models.json   the list of artifact folders, default first
 *   <out>/index/snapshot.mfvi   optional memory-index snapshot (MemoryIndex.toBinary) for small corpora
 * Usage: node --import tsx infra/build-worker-assets.ts --model DIR [--model DIR2 ...] [--snapshot FILE] [--out dist/worker-assets]
 *        [--asset-limit BYTES]
 *
 * Sharding: an artifact whose weight shards exceed the 25 MiB asset limit (saveArtifact's default shard is 32 MiB,
 * so Manyfold's small preset has one such shard) is re-sharded on copy (src/model/reshard.ts): the same weights,
 * id and tokenizer in shards of at most the limit, the manifest rewritten and the copy verified (every file's
 * sha256, the weight table, the tokenizer bytes). Artifacts that already fit are copied as they are.
 *
 * Refusals, all decided before anything is written, each with the measured size and the limit:
 * - memory: a Worker isolate has 128 MiB. Loading an artifact holds its verified file bytes and the float32
 *   tensors built from them at once (src/edge/artifact.ts), so a model needs about twice its weight bytes, and
 *   every model loaded stays resident; on top of that an allowance for the runtime (WORKER_RUNTIME_ALLOWANCE).
 *   Tiny and small presets fit; every pretrained CLIP does not (ViT-B/32 alone is ~600 MB of float32).
 * - assets: 25 MiB per static-asset file. Shards are re-sharded (above), but one tensor never spans two shards: a
 *   tensor above the limit cannot be an asset (ViT-B/32's 49408 x 512 token embedding is 101 MB; it is refused for
 *   memory anyway). A memory-index snapshot is one file and must fit too.
 * - CLIP-family models: the Worker decodes images with src/edge/sharp-shim.ts, which implements Manyfold's
 *   square resize only, not CLIPImageProcessor's shortest-edge resize and centre crop; serving a CLIP model there
 *   would embed its images differently from the weights' training (and from the Node server).
 */
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { verifyArtifact, type ArtifactManifest } from '../src/model/artifact.js';
import { largestTensor, reshardArtifact } from '../src/model/reshard.js';

export const ASSET_FILE_LIMIT = 25 * 1024 * 1024;
export const WORKER_MEMORY_LIMIT = 128 * 1024 * 1024;
/**
 * Memory a Worker needs besides the weights: the bundle (worker.js 5.0 MB + tfjs wasm 0.4 MB, docs/deployment.md),
 * the wasm heap's initial size and workerd's own per-isolate overhead. An allowance, not a measurement inside
 * workerd (which reports no per-isolate figure locally); it only matters for models near the limit.
 */
export const WORKER_RUNTIME_ALLOWANCE = 24 * 1024 * 1024;

export class WorkerAssetLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerAssetLimitError';
  }
}

export interface MeasuredModel {
  dir: string;
  manifest: ArtifactManifest;
  /** bytes of every file the folder will hold, as on disk */
  files: { path: string; bytes: number }[];
  /** bytes of the weight shards, as on disk */
  weightBytes: number;
}

const MiB = (n: number) => `${(n / (1024 * 1024)).toFixed(1)} MiB`;

/** Peak memory of a Worker that loads these models one after another and keeps them (see the module comment). */
export function workerMemoryEstimate(weightBytes: readonly number[]): number {
  const resident = weightBytes.reduce((a, b) => a + b, 0);
  return resident + Math.max(0, ...weightBytes) + WORKER_RUNTIME_ALLOWANCE;
}

async function measure(modelDir: string): Promise<MeasuredModel> {
  const manifest = await verifyArtifact(modelDir);
  const files: { path: string; bytes: number }[] = [];
  for (const f of ['manifest.json', ...manifest.files.map((x) => x.path)]) files.push({ path: f, bytes: (await stat(join(modelDir, f))).size });
  const shards = new Set(manifest.weights.map((w) => w.file));
  const weightBytes = files.filter((f) => shards.has(f.path)).reduce((a, f) => a + f.bytes, 0);
  return { dir: modelDir, manifest, files, weightBytes };
}

/** Every reason these models cannot be Worker assets (empty = they can). `assetLimit`: bytes per asset file. */
export function workerRefusals(models: readonly MeasuredModel[], assetLimit = ASSET_FILE_LIMIT): string[] {
  const reasons: string[] = [];
  const peak = workerMemoryEstimate(models.map((m) => m.weightBytes));
  if (peak > WORKER_MEMORY_LIMIT) {
    const each = models.map((m) => `${m.manifest.id} (${m.manifest.config.preset}): ${m.weightBytes} bytes of weights (${MiB(m.weightBytes)})`).join('; ');
    reasons.push(
      `a Worker isolate has ${MiB(WORKER_MEMORY_LIMIT)} of memory; these models need about ${MiB(peak)} ` +
        `(the weights stay resident, loading one holds its file bytes and its tensors at once, plus ${MiB(WORKER_RUNTIME_ALLOWANCE)} for the runtime): ${each}. ` +
        'Serve them from the Node server or AWS Lambda instead',
    );
  }
  for (const m of models) {
    // weight shards above the limit are re-sharded on copy; a tensor above it cannot be split, nor can the other files
    const shards = new Set(m.manifest.weights.map((w) => w.file));
    for (const f of m.files) {
      if (!shards.has(f.path) && f.bytes > assetLimit) {
        reasons.push(`${join(m.dir, f.path)} is ${f.bytes} bytes (${MiB(f.bytes)}); Workers static assets allow ${MiB(assetLimit)} per file`);
      }
    }
    const big = largestTensor(m.manifest);
    if (big && big.bytes > assetLimit) {
      reasons.push(
        `${m.manifest.id}: weight ${big.name} is ${big.bytes} bytes (${MiB(big.bytes)}); Workers static assets allow ${MiB(assetLimit)} per file ` +
          'and one tensor never spans two shards, so no re-sharding can make it an asset',
      );
    }
    if (m.manifest.config.family === 'clip') {
      reasons.push(
        `${m.manifest.id} is a CLIP-family model: the Worker's image decoder (src/edge/sharp-shim.ts) has no CLIPImageProcessor resize ` +
          '(shortest edge, bicubic, centre crop), so its image embeddings would not be the model\'s',
      );
    }
  }
  return reasons;
}

export interface BuildWorkerAssetsOptions {
  modelDirs: string[];
  outDir: string;
  snapshot?: string;
  /** bytes per asset file (default ASSET_FILE_LIMIT, Cloudflare's 25 MiB); tests use a small one */
  assetLimit?: number;
}

export interface BuildWorkerAssetsResult {
  files: number;
  bytes: number;
  models: string[];
  /** the models re-sharded on copy: weight shards before and after, and the largest shard written */
  resharded: { id: string; shardsBefore: number; shardsAfter: number; largestShard: number }[];
}

export async function buildWorkerAssets(opts: BuildWorkerAssetsOptions): Promise<BuildWorkerAssetsResult> {
  if (opts.modelDirs.length === 0) throw new Error('at least one model artifact is needed');
  const limit = opts.assetLimit ?? ASSET_FILE_LIMIT;
  const measured: MeasuredModel[] = [];
  for (const dir of opts.modelDirs) measured.push(await measure(dir));
  const refusals = workerRefusals(measured, limit);
  const snapshotBytes = opts.snapshot ? (await stat(opts.snapshot)).size : 0;
  if (snapshotBytes > limit) {
    refusals.push(`${opts.snapshot} is ${snapshotBytes} bytes (${MiB(snapshotBytes)}); Workers static assets allow ${MiB(limit)} per file: serve a corpus this large from Pinecone`);
  }
  if (refusals.length) throw new WorkerAssetLimitError(`cannot build Worker assets:\n- ${refusals.join('\n- ')}`);
  const out = resolve(opts.outDir);
  await rm(out, { recursive: true, force: true });
  let bytes = 0;
  let count = 0;
  const folders: string[] = [];
  const models: string[] = [];
  const resharded: BuildWorkerAssetsResult['resharded'] = [];
  for (const [i, m] of measured.entries()) {
    const folder = i === 0 ? 'model' : `models/${m.manifest.id}`;
    if (m.files.some((f) => f.bytes > limit)) {
      // re-shard on copy: written and verified by reshardArtifact, then measured like any folder
      const r = await reshardArtifact(m.dir, join(out, folder), limit);
      resharded.push({ id: m.manifest.id, shardsBefore: r.shardsBefore, shardsAfter: r.shardsAfter, largestShard: r.largestShard });
      for (const f of ['manifest.json', ...r.manifest.files.map((x) => x.path)]) {
        const size = (await stat(join(out, folder, f))).size;
        if (size > limit) throw new WorkerAssetLimitError(`re-sharded ${join(out, folder, f)} is still ${size} bytes, above ${limit}`);
        bytes += size;
        count++;
      }
    } else {
      await mkdir(join(out, folder), { recursive: true });
      for (const f of m.files) {
        bytes += f.bytes;
        count++;
        await copyFile(join(m.dir, f.path), join(out, folder, f.path));
      }
    }
    folders.push(folder);
    models.push(m.manifest.id);
  }
  await writeFile(join(out, 'models.json'), `${JSON.stringify(folders)}\n`);
  if (opts.snapshot) {
    await mkdir(join(out, 'index'), { recursive: true });
    await copyFile(opts.snapshot, join(out, 'index', 'snapshot.mfvi'));
    bytes += snapshotBytes;
  }
  return { files: count + 1 + (opts.snapshot ? 1 : 0), bytes, models, resharded };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { model: { type: 'string', multiple: true }, snapshot: { type: 'string' }, out: { type: 'string' }, 'asset-limit': { type: 'string' } } });
  if (!values.model?.length) {
    process.stderr.write('usage: infra/build-worker-assets.ts --model DIR [--snapshot FILE] [--out dist/worker-assets] [--asset-limit BYTES]\n');
    process.exit(2);
  }
  const limit = values['asset-limit'] === undefined ? undefined : Number(values['asset-limit']);
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1024)) {
    process.stderr.write(`--asset-limit: expected an integer number of bytes >= 1024, got "${values['asset-limit']}"\n`);
    process.exit(2);
  }
  try {
    const t0 = performance.now();
    const r = await buildWorkerAssets({ modelDirs: values.model, outDir: values.out ?? 'dist/worker-assets', ...(values.snapshot ? { snapshot: values.snapshot } : {}), ...(limit ? { assetLimit: limit } : {}) });
    for (const x of r.resharded) process.stdout.write(`re-sharded ${x.id}: ${x.shardsBefore} -> ${x.shardsAfter} weight shards, largest ${x.largestShard} bytes\n`);
    process.stdout.write(`worker assets: models ${r.models.join(', ')}, ${r.files} files, ${(r.bytes / 1024).toFixed(1)} KiB -> ${values.out ?? 'dist/worker-assets'} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  } catch (e) {
    if (!(e instanceof WorkerAssetLimitError)) throw e;
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
}
