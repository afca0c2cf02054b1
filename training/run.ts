import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ManyfoldConfig } from '../src/config.js';
import { initBackend } from '../src/engine/backend.js';
import { loadDataset } from '../src/data/load.js';
import { loadProgressBar } from '../src/data/progress.js';
import type { DatasetSplit } from '../src/data/types.js';
import { evaluateClean, formatCleanSummary, type CleanEvalSummary } from '../src/eval/evaluate.js';
import { saveArtifact, type ArtifactManifest } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { modelConfigFromPreset } from '../src/model/presets.js';
import { trainModel } from './trainer.js';

export interface RunTrainingOptions {
  config: ManyfoldConfig;
  out: string;
  resume: boolean;
  /** evaluate the final model on the test split (when the data set has one) */
  evaluate: boolean;
  quiet?: boolean;
  stopAfterStep?: number;
}

export interface RunTrainingResult {
  modelDir: string;
  manifest?: ArtifactManifest;
  finished: boolean;
  secondsPerEpoch: number;
  test?: CleanEvalSummary;
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
  const backend = await initBackend(config.backend);
  if (!opts.quiet) process.stderr.write(`backend: ${backend.name} (${backend.reason})\n`);
  const imageSize = modelConfigFromPreset(config.train.preset, 2).image.size;
  const train = await loadSplit(config, 'train', imageSize, opts.quiet);
  if (train.count === 0) throw new Error(`${config.data.file} has no rows in split "train"`);

  const t0 = Date.now();
  const result = await trainModel({
    out: opts.out,
    train,
    config: config.train,
    seed: config.seed,
    resume: opts.resume,
    quiet: opts.quiet,
    stopAfterStep: opts.stopAfterStep,
  });
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
  writeFileSync(join(opts.out, 'train.json'), JSON.stringify({ model: manifest.id, secondsPerEpoch: result.secondsPerEpoch, test }, null, 2));
  result.model.dispose();
  return { modelDir, manifest, finished: true, secondsPerEpoch: result.secondsPerEpoch, test };
}
