/**
 * The pretrained tiny base bundled in the repository (models/tiny-scenes-base): its recipe, its check before use,
 * and how `npm run demo:base -- --write` lays it out.
 *
 * The bundle is an ordinary model artifact (manifest.json, tokenizer.json, weights-NNN.bin) plus SHA256SUMS
 * (`sha256sum -c` format, every file including manifest.json, which the manifest cannot list itself) and a README
 * that states the recipe, the command, the data seed, the test recall and the hashes. The demo checks SHA256SUMS
 * before it uses the bundle, so a git-lfs pointer or a damaged checkout is named file by file instead of failing
 * later in a tensor-shape or JSON error.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashFile, MANIFEST_FILE, readManifest, verifyArtifact, type ArtifactManifest } from '../src/model/artifact.js';
import { writeDirAtomic } from '../src/util/atomic.js';

export const BUNDLED_BASE_DIR = relative(process.cwd(), fileURLToPath(new URL('../models/tiny-scenes-base', import.meta.url))) || '.';
export const SUMS_FILE = 'SHA256SUMS';
export const BUNDLE_README = 'README.md';

/** How the bundled base was trained: the demo's former clean recipe (`scenes`, 3,000 train images, 12 epochs, seed 0). */
export const BASE_RECIPE = {
  name: 'tiny-scenes-base',
  command: 'npm run demo:base',
  data: { generator: 'scenes', train: 3000, val: 100, test: 200, seed: 0 },
  preset: 'tiny',
  method: 'clean',
  epochs: 12,
  seed: 0,
  settings: 'the project defaults of src/config.ts (lr 5e-4 warmup + cosine, batch 64, 2 captions per image), no augmentation',
} as const;

export class BundleError extends Error {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
    this.name = 'BundleError';
  }
}

export interface FileHash {
  path: string;
  bytes: number;
  sha256: string;
}

/** every file of an artifact directory that belongs to the model: the manifest and what it lists */
export async function artifactFileHashes(dir: string): Promise<FileHash[]> {
  const manifest = await readManifest(dir);
  const paths = [MANIFEST_FILE, ...manifest.files.map((f) => f.path)];
  return Promise.all(paths.map(async (p) => ({ path: p, ...(await hashFile(join(dir, p))) })));
}

/** SHA256SUMS as `sha256sum` writes it: `<hex>  <name>` per line */
export function formatSums(hashes: readonly FileHash[]): string {
  return hashes.map((h) => `${h.sha256}  ${h.path}\n`).join('');
}

export async function readSums(dir: string): Promise<Map<string, string>> {
  const file = join(dir, SUMS_FILE);
  if (!existsSync(file)) throw new BundleError(`${file} is missing: the bundled base cannot be checked (restore it from git, or rebuild it with ${BASE_RECIPE.command} -- --write)`, SUMS_FILE);
  const sums = new Map<string, string>();
  (await readFile(file, 'utf8')).split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const m = /^([0-9a-f]{64}) [ *]([A-Za-z0-9][A-Za-z0-9._-]*)$/.exec(line);
    if (!m) throw new BundleError(`${file} line ${i + 1} is not "<sha256>  <file>"`, SUMS_FILE);
    sums.set(m[2], m[1]);
  });
  if (!sums.has(MANIFEST_FILE)) throw new BundleError(`${file} does not list ${MANIFEST_FILE}`, SUMS_FILE);
  return sums;
}

const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

function isLfsPointer(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(LFS_POINTER.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.toString('latin1') === LFS_POINTER;
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks the bundle before use: every file of SHA256SUMS is present, is not a git-lfs pointer and has its
 * sha256; the manifest lists nothing SHA256SUMS does not cover; then the artifact's own check (sizes and sha256
 * of manifest.files). Throws a BundleError naming the first offending file.
 */
export async function verifyBundledBase(dir: string): Promise<ArtifactManifest> {
  if (!existsSync(dir)) throw new BundleError(`the bundled base ${dir} does not exist (a partial checkout? it is part of the repository)`, dir);
  const sums = await readSums(dir);
  for (const [name, want] of sums) {
    const file = join(dir, name);
    if (!existsSync(file)) throw new BundleError(`bundled base file ${file} is missing (listed in ${SUMS_FILE})`, name);
    if (isLfsPointer(file)) {
      throw new BundleError(`bundled base file ${file} is a git-lfs pointer, not the file: fetch it (git lfs pull) or clone without LFS filters`, name);
    }
    const got = (await hashFile(file)).sha256;
    if (got !== want) throw new BundleError(`bundled base file ${file} failed its sha256 check: ${SUMS_FILE} says ${want}, the file has ${got} (a damaged checkout? restore it with git)`, name);
  }
  const manifest = await readManifest(dir);
  const unchecked = manifest.files.find((f) => !sums.has(f.path));
  if (unchecked) throw new BundleError(`bundled base file ${unchecked.path} is listed in ${MANIFEST_FILE} but not in ${SUMS_FILE}`, unchecked.path);
  return verifyArtifact(dir);
}

export interface BundleInfo {
  /** the test-split evaluation of the trained model (manifest.metrics.test) */
  test: { tr: { r1: number; r5: number; r10: number; r1ci: [number, number] }; ir: { r1: number; r5: number; r10: number; r1ci: [number, number] }; nImages: number; nTexts: number };
  dataFile: string;
}

/**
 * Lays a trained artifact out as the bundle at `target` (atomically): the artifact's files, its manifest with the
 * recipe recorded under `bundle` and the data path made relative, SHA256SUMS and README.md.
 */
export async function writeBundle(modelDir: string, target: string, info: BundleInfo): Promise<FileHash[]> {
  return writeDirAtomic(
    target,
    async (tmp) => {
      const manifest = await readManifest(modelDir);
      for (const f of manifest.files) await copyFile(join(modelDir, f.path), join(tmp, f.path));
      const raw = JSON.parse(await readFile(join(modelDir, MANIFEST_FILE), 'utf8')) as Record<string, unknown> & { training: Record<string, unknown> };
      raw.training = { ...raw.training, data: info.dataFile };
      raw.bundle = { recipe: BASE_RECIPE, reproduce: `${BASE_RECIPE.command} (compares the sha256 of every file with ${SUMS_FILE})` };
      await writeFile(join(tmp, MANIFEST_FILE), `${JSON.stringify(raw, null, 2)}\n`);
      await readManifest(tmp); // the edited manifest still passes the schema
      const hashes = await artifactFileHashes(tmp);
      await writeFile(join(tmp, SUMS_FILE), formatSums(hashes));
      await writeFile(join(tmp, BUNDLE_README), bundleReadme(manifest, hashes, info));
      return hashes;
    },
    { overwrite: true },
  );
}

function bundleReadme(manifest: ArtifactManifest, hashes: readonly FileHash[], info: BundleInfo): string {
  const r = BASE_RECIPE;
  const t = info.test;
  const ci = (d: { r1: number; r1ci: [number, number] }) => `${d.r1.toFixed(1)} [${d.r1ci[0].toFixed(1)}, ${d.r1ci[1].toFixed(1)}]`;
  const mb = hashes.reduce((s, h) => s + h.bytes, 0) / 1e6;
  return `# ${r.name}: the demo's pretrained tiny base (${manifest.id})

The one model artifact committed to this repository (${mb.toFixed(1)} MB): \`npm run demo\` robustifies it with
MAT + N:N instead of training a clean model first. Everything else (runs, data, models) stays out of git.

- **Recipe**: preset \`${r.preset}\`, method \`${r.method}\`, ${r.epochs} epochs, training seed ${r.seed}; ${r.settings}.
- **Data**: the procedural \`${r.data.generator}\` generator, seed ${r.data.seed}, ${r.data.train.toLocaleString('en-US')} train / ${r.data.val} val / ${r.data.test} test images, 5 captions each (${info.dataFile}).
- **Reproduce**: \`${r.command}\` generates the data, trains into runs/demo-base (resumable) and prints the sha256 of
  every file next to the bundled one; it exits 2 when the weights or tokenizer differ. Training is bit-deterministic
  per seed on the wasm backend (1 or 2 threads alike), so the tokenizer and weights and hence the content id
  \`${manifest.id}\` come out identical; manifest.json differs in its timestamp and timings only.
  \`${r.command} -- --write\` replaces this directory with the new run.
- **Test split** (${t.nImages} images, ${t.nTexts} captions, Karpathy protocol, 95% bootstrap CI): R@1 image->text ${ci(t.tr)},
  text->image ${ci(t.ir)}; R@5 ${t.tr.r5.toFixed(1)} / ${t.ir.r5.toFixed(1)}; R@10 ${t.tr.r10.toFixed(1)} / ${t.ir.r10.toFixed(1)}.
- **Checked before use**: the demo verifies ${SUMS_FILE} (\`sha256sum -c ${SUMS_FILE}\` does the same) and the
  manifest's own sizes and hashes, naming any file that differs (a git-lfs pointer, a damaged checkout).

| file | bytes | sha256 |
|---|---|---|
${hashes.map((h) => `| ${h.path} | ${h.bytes} | \`${h.sha256}\` |`).join('\n')}
`;
}
