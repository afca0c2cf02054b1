import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ManyfoldConfig } from '../src/config.js';
import { initBackend } from '../src/engine/backend.js';
import { loadDataset } from '../src/data/load.js';
import { loadProgressBar } from '../src/data/progress.js';
import type { DatasetSplit } from '../src/data/types.js';
import { evaluateClean, formatCleanSummary, type CleanEvalSummary } from '../src/eval/evaluate.js';
import { loadArtifact, readManifest, saveArtifact, type ArtifactManifest } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { modelConfigFor } from '../src/model/presets.js';
import type { DualEncoder } from '../src/model/types.js';
import { buildAugmentPool, type AugmentPool } from '../src/augment/pool.js';
import { ProviderCache } from '../src/augment/providers.js';
import { trainModel } from './trainer.js';

export interface RunTrainingOptions {
  config: ManyfoldConfig;
  out: string;
  resume: boolean;
  /** evaluate the final model on the test split (when the data set has one) */
  evaluate: boolean;
  quiet?: boolean;
  stopAfterStep?: number;
  /** allow an adversarial method without --init */
  fromScratch?: boolean;
}

export interface RunTrainingResult {
  modelDir: string;
  manifest?: ArtifactManifest;
  finished: boolean;
  secondsPerEpoch: number;
  test?: CleanEvalSummary;
  augment?: AugmentSummary;
}

export interface AugmentSummary {
  names: string[];
  captions: Record<string, number>;
  views: Record<string, number>;
  alignment?: AugmentPool['alignment'];
  ms: number;
}

/** Human-readable augmentation counts (what was generated and what the alignment filter kept). */
export function formatAugmentSummary(a: AugmentSummary): string {
  const lines = [`augment: ${a.names.join(', ')} (pool built in ${(a.ms / 1000).toFixed(1)} s)`];
  const al = a.alignment;
  if (al) {
    lines.push(`  alignment filter: keep cos >= ${al.threshold.toFixed(3)} (the ${al.quantile} quantile of ground-truth pairs; their mean ${al.gtMean.toFixed(3)})`);
    for (const [k, c] of Object.entries(al.captions)) lines.push(`  captions ${k}: kept ${c.kept}/${c.generated}`);
    for (const [k, c] of Object.entries(al.views)) lines.push(`  images ${k}: kept ${c.kept}/${c.generated}`);
  } else {
    for (const [k, n] of Object.entries(a.captions)) lines.push(`  captions ${k}: ${n}`);
    for (const [k, n] of Object.entries(a.views)) lines.push(`  images ${k}: ${n}`);
    lines.push('  alignment filter: off');
  }
  return lines.join('\n');
}

export async function loadSplit(config: ManyfoldConfig, split: string, size: number, quiet = false): Promise<DatasetSplit> {
  const file = config.data.file;
  if (!file) throw new Error('no data file: pass --data FILE (Karpathy JSON or JSONL manifest)');
  const bar = loadProgressBar(`load ${split}`, quiet);
  try {
    const data = await loadDataset(file, {
      size,
      split,
      imagesDir: config.data.imagesDir,
      onBadRow: config.data.onBadRow,
      cacheDir: config.data.cacheDir,
      onProgress: bar.onProgress,
      onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
    });
    if (data.skipped.length) process.stderr.write(`${split}: skipped ${data.skipped.length} bad rows (first: ${data.skipped[0].where}: ${data.skipped[0].reason})\n`);
    return data;
  } finally {
    bar.stop();
  }
}

/** `manyfold train`: load data, train (resumable), save the artifact, evaluate on test. */
export async function runTraining(opts: RunTrainingOptions): Promise<RunTrainingResult> {
  const { config } = opts;
  const backend = await initBackend(config.backend, { threads: config.threads });
  if (!opts.quiet) process.stderr.write(`backend: ${backend.name} (${backend.reason})\n`);
  // a fine-tune keeps its --init model's input size; a run from scratch takes the preset's with --image-size applied
  const imageSize = config.train.init
    ? (await readManifest(config.train.init)).config.image.size
    : modelConfigFor(config.train.preset, 2, config.train).image.size;
  const train = await loadSplit(config, 'train', imageSize, opts.quiet);
  if (train.count === 0) throw new Error(`${config.data.file} has no rows in split "train"`);

  const tc = config.train;
  const t0 = Date.now();
  const owned: DualEncoder[] = [];
  let result: Awaited<ReturnType<typeof trainModel>>;
  let augment: AugmentSummary | undefined;
  try {
    const init = tc.init ? await loadArtifact(tc.init) : undefined;
    if (init) owned.push(init.model);
    if (tc.method !== 'clean' && !init && !opts.fromScratch) {
      throw new Error(`--method ${tc.method} fine-tunes a clean model: pass --init MODEL (adversarial training from scratch collapses on small data, see docs/defenses.md), or --from-scratch to insist`);
    }
    const refDir = tc.reference ?? (tc.method === 'fare' ? tc.init : undefined);
    const reference = tc.method === 'fare' && refDir ? (await loadArtifact(refDir)).model : undefined;
    if (reference) owned.push(reference);
    let pool: AugmentPool | undefined;
    if (tc.augment.length > 0) {
      const alignDir = tc.alignModel ?? tc.reference ?? tc.init;
      let scorer: Encoder | undefined;
      if (tc.alignQuantile > 0 && alignDir) {
        const a = alignDir === tc.init && init ? init : await loadArtifact(alignDir);
        if (a !== init) owned.push(a.model);
        scorer = new Encoder(a.model, a.tokenizer, a.manifest);
      } else if (tc.alignQuantile > 0 && !opts.quiet) {
        process.stderr.write('warning: no model to score the alignment filter (--init, --reference or --align-model): augmented pairs are not filtered\n');
      }
      pool = await buildAugmentPool(train, tc.augment, {
        seed: config.seed,
        perSource: tc.augmentPerSource,
        cache: tc.augmentCache ? ProviderCache.read(tc.augmentCache) : undefined,
        scorer,
        quantile: tc.alignQuantile,
      });
      augment = { names: pool.names, captions: pool.stats.captions, views: pool.stats.views, alignment: pool.alignment, ms: pool.stats.ms };
      if (!opts.quiet) process.stderr.write(`${formatAugmentSummary(augment)}\n`);
      mkdirSync(opts.out, { recursive: true });
      writeFileSync(join(opts.out, 'augment.json'), JSON.stringify(augment, null, 2));
    }
    result = await trainModel({
      out: opts.out,
      train,
      config: tc,
      seed: config.seed,
      resume: opts.resume,
      quiet: opts.quiet,
      stopAfterStep: opts.stopAfterStep,
      init: init ? { model: init.model, tokenizer: init.tokenizer, id: init.manifest.id } : undefined,
      reference,
      pool,
    });
  } finally {
    for (const m of owned) m.dispose();
  }
  const modelDir = join(opts.out, 'model');
  if (!result.finished) {
    result.model.dispose();
    return { modelDir, finished: false, secondsPerEpoch: result.secondsPerEpoch };
  }

  let test: CleanEvalSummary | undefined;
  const testSplit = opts.evaluate ? await loadSplit(config, 'test', imageSize, opts.quiet).catch(() => undefined) : undefined;
  const encoder = new Encoder(result.model, result.tokenizer);
  if (testSplit && testSplit.count > 0) {
    test = evaluateClean(encoder, testSplit).summary;
    if (!opts.quiet) process.stderr.write(`${formatCleanSummary(test)}\n`);
  }
  const manifest = await saveArtifact(modelDir, {
    model: result.model,
    tokenizer: result.tokenizer,
    overwrite: true,
    training: {
      data: resolve(config.data.file!),
      dataFingerprint: result.state.dataFingerprint,
      method: config.train.method,
      init: result.state.initId ?? null,
      augment: augment ? augment.names : [],
      seed: config.seed,
      epochs: config.train.epochs,
      steps: result.state.totalSteps,
      config: config.train,
      backend: backend.name,
      secondsPerEpoch: result.secondsPerEpoch,
      trainSeconds: Math.round((Date.now() - t0) / 1000),
      finalLoss: result.finalLoss,
    },
    metrics: test ? { test: { tr: test.tr, ir: test.ir, semantic: test.semantic, protocol: test.protocol, nImages: test.nImages, nTexts: test.nTexts } } : {},
  });
  // the artifact id is known only once it is saved (it hashes the weights): label the test summary with it
  if (test) test.model = manifest.id;
  writeFileSync(join(opts.out, 'train.json'), JSON.stringify({ model: manifest.id, method: config.train.method, backend: `${backend.name} (${backend.reason})`, secondsPerEpoch: result.secondsPerEpoch, test, augment }, null, 2));
  result.model.dispose();
  return { modelDir, manifest, finished: true, secondsPerEpoch: result.secondsPerEpoch, test, augment };
}
