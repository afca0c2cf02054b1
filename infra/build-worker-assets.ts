/**
 * Builds the Worker's static-asset directory (infra/wrangler.jsonc "assets"):
 *   <out>/model/   the artifact files (manifest.json, tokenizer.json, weights-*.bin), verified first: the default
 *                  model (served when the store's state names none)
 *   <out>/models/<id>/  further artifacts (e.g. a nightly candidate to re-index into a new namespace)
 *   <out>/models.json   the list of artifact folders, default first
 *   <out>/index/snapshot.mfvi   optional memory-index snapshot (MemoryIndex.toBinary) for small corpora
 * Usage: node --import tsx infra/build-worker-assets.ts --model DIR [--model DIR2 ...] [--snapshot FILE] [--out dist/worker-assets]
 * Workers static assets are limited to 25 MiB per file: artifact shards must be smaller (saveArtifact
 * shardBytes; the default 32 MiB shard is split by the caller's choice of preset: tiny and small fit).
 */
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { verifyArtifact } from '../src/model/artifact.js';

export const ASSET_FILE_LIMIT = 25 * 1024 * 1024;

export async function buildWorkerAssets(opts: { modelDirs: string[]; outDir: string; snapshot?: string }): Promise<{ files: number; bytes: number; models: string[] }> {
  if (opts.modelDirs.length === 0) throw new Error('at least one model artifact is needed');
  const out = resolve(opts.outDir);
  await rm(out, { recursive: true, force: true });
  let bytes = 0;
  let count = 0;
  const folders: string[] = [];
  const models: string[] = [];
  for (const [i, modelDir] of opts.modelDirs.entries()) {
    const manifest = await verifyArtifact(modelDir);
    const folder = i === 0 ? 'model' : `models/${manifest.id}`;
    await mkdir(join(out, folder), { recursive: true });
    const files = ['manifest.json', ...manifest.files.map((f) => f.path)];
    for (const f of files) {
      const s = await stat(join(modelDir, f));
      if (s.size > ASSET_FILE_LIMIT) throw new Error(`${f} is ${s.size} bytes; Workers static assets allow 25 MiB per file (re-save with a smaller shardBytes)`);
      bytes += s.size;
      count++;
      await copyFile(join(modelDir, f), join(out, folder, f));
    }
    folders.push(folder);
    models.push(manifest.id);
  }
  await writeFile(join(out, 'models.json'), `${JSON.stringify(folders)}\n`);
  if (opts.snapshot) {
    await mkdir(join(out, 'index'), { recursive: true });
    await copyFile(opts.snapshot, join(out, 'index', 'snapshot.mfvi'));
    bytes += (await stat(opts.snapshot)).size;
  }
  return { files: count + 1 + (opts.snapshot ? 1 : 0), bytes, models };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { model: { type: 'string', multiple: true }, snapshot: { type: 'string' }, out: { type: 'string' } } });
  if (!values.model?.length) {
    process.stderr.write('usage: infra/build-worker-assets.ts --model DIR [--snapshot FILE] [--out dist/worker-assets]\n');
    process.exit(2);
  }
  const r = await buildWorkerAssets({ modelDirs: values.model, outDir: values.out ?? 'dist/worker-assets', ...(values.snapshot ? { snapshot: values.snapshot } : {}) });
  process.stdout.write(`worker assets: models ${r.models.join(', ')}, ${r.files} files, ${(r.bytes / 1024).toFixed(1)} KiB -> ${values.out ?? 'dist/worker-assets'}\n`);
}
