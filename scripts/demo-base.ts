/**
 * `npm run demo:base`: rebuilds the bundled tiny base (models/tiny-scenes-base) by its recipe and compares it with
 * the bundled files.
 *   1. generate `scenes` as the recipe says (reused when already there)
 *   2. train the clean tiny model (BASE_RECIPE; resumable: rerunning continues or reuses the finished run)
 *   3. print the sha256 of each file next to the bundled one, the content ids and both test recalls; exit 2 when the
 *      tokenizer or weights differ (manifest.json always differs: it holds a timestamp, timings and the data path)
 *   4. with --write, lay the run out as the bundle (manifest with the recipe, SHA256SUMS, README), replacing it
 * Flags: --data DIR (default data/scenes), --out DIR (default runs/demo-base), --bundle DIR (default
 *        models/tiny-scenes-base), --backend auto|tensorflow|wasm|cpu, --threads N (results do not depend on it),
 *        --write
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import { baseTrainingConfig } from './demo-flags.js';
import { ensureScenes } from './demo-data.js';
import { artifactFileHashes, BASE_RECIPE, BUNDLED_BASE_DIR, readSums, SUMS_FILE, writeBundle, type BundleInfo } from './bundled-base.js';
import { CHECKPOINT_FILE } from '../training/trainer.js';
import { runTraining } from '../training/run.js';
import { MANIFEST_FILE, readManifest } from '../src/model/artifact.js';

const flagsSchema = z
  .object({
    data: z.string().default('data/scenes'),
    out: z.string().default('runs/demo-base'),
    bundle: z.string().default(BUNDLED_BASE_DIR),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    threads: z.coerce.number().int().min(1).max(64).default(Math.min(2, availableParallelism())),
    write: z.boolean().default(false),
  })
  .strict();

/** differing content files (tokenizer, weights) */
const EXIT_DIFFERS = 2;

async function main(): Promise<number> {
  const flags = parseFlags(flagsSchema, { args: process.argv.slice(2), booleans: ['write'] });
  const t0 = Date.now();
  const dataFile = await ensureScenes(flags.data, BASE_RECIPE.data);
  const config = baseTrainingConfig({ backend: flags.backend, threads: flags.threads, seed: BASE_RECIPE.seed }, dataFile);
  const resume = existsSync(join(flags.out, CHECKPOINT_FILE));
  const result = await runTraining({ config, out: flags.out, resume, evaluate: true, quiet: false });
  if (!result.finished || !result.test) throw new Error(`training in ${flags.out} did not finish with a test evaluation`);
  const modelDir = result.modelDir;
  const built = await artifactFileHashes(modelDir);
  const builtManifest = await readManifest(modelDir);
  const test = result.test;

  const bundled = existsSync(join(flags.bundle, SUMS_FILE)) ? await readSums(flags.bundle) : undefined;
  const bundledManifest = bundled ? await readManifest(flags.bundle) : undefined;
  const rows = built.map((h) => {
    const want = bundled?.get(h.path);
    const verdict = !want ? 'not bundled' : want === h.sha256 ? 'equal' : h.path === MANIFEST_FILE ? 'differs (expected: timestamp, timings, data path)' : 'DIFFERS';
    return { file: h.path, bytes: h.bytes, sha256: h.sha256, bundled: want ?? null, verdict };
  });
  process.stdout.write(`\nrebuilt ${builtManifest.id} in ${modelDir} (${((Date.now() - t0) / 1000).toFixed(0)} s); bundled ${bundledManifest?.id ?? '(none)'} in ${flags.bundle}\n`);
  for (const r of rows) process.stdout.write(`  ${r.file.padEnd(16)} ${r.sha256}  ${r.verdict}\n`);
  const content = rows.filter((r) => r.file !== MANIFEST_FILE);
  const identical = Boolean(bundled) && content.every((r) => r.verdict === 'equal') && content.length === bundled!.size - 1;
  const bundledTest = bundledManifest?.metrics.test as BundleInfo['test'] | undefined;
  const fmt = (t: BundleInfo['test']) => `R@1 TR ${t.tr.r1.toFixed(2)} [${t.tr.r1ci.join(', ')}] IR ${t.ir.r1.toFixed(2)} [${t.ir.r1ci.join(', ')}]`;
  process.stdout.write(`test split: rebuilt ${fmt(test)}${bundledTest ? `; bundled ${fmt(bundledTest)}` : ''}\n`);
  process.stdout.write(
    bundled
      ? identical
        ? `reproduced: tokenizer and weights are bit-identical to the bundle (content id ${builtManifest.id})\n`
        : `NOT reproduced: the rebuilt files differ from the bundle (ids ${builtManifest.id} vs ${bundledManifest?.id}; recall difference TR ${bundledTest ? (test.tr.r1 - bundledTest.tr.r1).toFixed(2) : '?'}, IR ${bundledTest ? (test.ir.r1 - bundledTest.ir.r1).toFixed(2) : '?'} points)\n`
      : `no bundle at ${flags.bundle} to compare with\n`,
  );
  await writeFile(
    join(flags.out, 'compare.json'),
    JSON.stringify({ date: new Date().toISOString(), recipe: BASE_RECIPE, rebuilt: builtManifest.id, bundled: bundledManifest?.id ?? null, identical, files: rows, test, bundledTest: bundledTest ?? null, seconds: (Date.now() - t0) / 1000 }, null, 2),
  );

  if (flags.write) {
    const hashes = await writeBundle(modelDir, flags.bundle, { test, dataFile });
    process.stdout.write(`wrote the bundle ${flags.bundle} (${hashes.length} files + ${SUMS_FILE} + README.md); ${MANIFEST_FILE}:\n`);
    process.stdout.write(`${JSON.stringify(JSON.parse(await readFile(join(flags.bundle, MANIFEST_FILE), 'utf8')).bundle)}\n`);
    return 0;
  }
  return bundled && !identical ? EXIT_DIFFERS : 0;
}

main()
  .then((code) => process.exit(code)) // XNNPACK worker threads keep the event loop alive
  .catch((e: unknown) => {
    process.stderr.write(`demo:base failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
