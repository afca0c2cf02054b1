/**
 * Per-method training step times on one data set and init model (the numbers behind docs/defenses.md and the
 * experiment budgets): `npx tsx training/bench-methods.ts DATA INIT_MODEL [steps=4]`.
 * Each method runs `steps` steps (the first is reported separately as warm-up) in a temporary directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainSchema } from '../src/config.js';
import { initBackend } from '../src/engine/backend.js';
import { loadDataset } from '../src/data/load.js';
import { loadArtifact } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { buildAugmentPool } from '../src/augment/pool.js';
import { stepsPerEpoch } from './batches.js';
import { trainModel } from './trainer.js';

const [data, initDir, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg ?? 4);
const backend = await initBackend('wasm');
const init = await loadArtifact(initDir);
const ref = await loadArtifact(initDir);
const train = await loadDataset(data, { size: init.model.config.image.size, split: 'train' });
const dir = mkdtempSync(join(tmpdir(), 'mf-bench-'));
const variants: [string, Record<string, unknown>][] = [
  ['clean (fine-tune)', { method: 'clean' }],
  ['tecoa', { method: 'tecoa' }],
  ['fare', { method: 'fare' }],
  ['mat (substitution)', { method: 'mat' }],
  ['mat (embedding)', { method: 'mat', textAttack: 'embedding' }],
  ['mat + nn', { method: 'mat', augment: ['nn'] }],
];
const perEpoch = stepsPerEpoch(train.count, 64);
console.log(`backend ${backend.name}; ${train.count} train images, batch 64 (${perEpoch} steps/epoch), 2 captions/image, train eps 4/255, 2 PGD steps; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const [name, o] of variants) {
  const config = trainSchema.parse({ batch: 64, epochs: 1, lr: 2e-4, trainSteps: 2, ...o });
  const pool = config.augment.length ? await buildAugmentPool(train, config.augment, { seed: 0, scorer: new Encoder(init.model, init.tokenizer), quantile: 0.05 }) : undefined;
  const ms: number[] = [];
  const inner: number[] = [];
  const r = await trainModel({ out: join(dir, name.replace(/\W+/g, '-')), train, config, seed: 0, quiet: true, init: { model: init.model, tokenizer: init.tokenizer, id: init.manifest.id }, reference: ref.model, pool, stopAfterStep: steps, onStep: (i) => (ms.push(i.ms), inner.push(i.innerMs ?? 0)) });
  r.model.dispose();
  const warm = ms.slice(1);
  const mean = warm.reduce((a, b) => a + b, 0) / warm.length;
  const innerMean = inner.slice(1).reduce((a, b) => a + b, 0) / warm.length;
  console.log(`${name.padEnd(20)} ${(mean / 1000).toFixed(2)} s/step (inner ${(innerMean / 1000).toFixed(2)} s) -> ${((mean * perEpoch) / 1000).toFixed(1)} s/epoch; first step ${(ms[0] / 1000).toFixed(2)} s${pool ? `; pool ${pool.stats.ms} ms` : ''}; load ${loadavg()[0].toFixed(1)}`);
}
rmSync(dir, { recursive: true, force: true });
