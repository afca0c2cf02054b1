/**
 * Does adversarial fine-tuning overfit its training pairs? The paper's argument for N:N augmentation is that
 * adversarial training on fixed 1:1 pairs overfits to them; if it does, robust recall on the training images runs
 * ahead of robust recall on unseen images. This script measures that gap: the robust eval (the experiment's
 * protocol: side=query, 2/255, PGD 10 steps, 1 word; text, Co-Attack, SGA) on the first N images of the train
 * split and of the test split, for a reference model that never saw either split (`--base`, e.g. the clean model the
 * rows were fine-tuned from, trained on other images) and for each `--model`. The two galleries differ in
 * difficulty, so a row's gap is read against the base's: (row train - row test) - (base train - base test).
 *
 *   npx tsx scripts/robust-gap.ts --data dataset_scenes.json --base DIR --model DIR[,DIR...] [--limit 100]
 *     [--seed 0] [--json OUT] [--backend wasm] [--threads 1]
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import { initBackend } from '../src/engine/backend.js';
import { loadArtifact } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { loadDataset } from '../src/data/load.js';
import { cleanMeanR1, evaluateRobust, multimodalMeanR1, type RobustEvalReport } from '../src/eval/robust/evaluate.js';
import { textLabelLexicon } from '../src/eval/text-labels.js';
import { BUDGETS } from '../training/experiment.js';

const flags = z
  .object({
    data: z.string({ error: '--data dataset_scenes.json is required' }),
    base: z.string({ error: '--base DIR (a model that saw neither split) is required' }),
    model: z.string({ error: '--model DIR[,DIR...] is required' }).transform((s) => s.split(',').filter(Boolean)),
    limit: z.coerce.number().int().min(1).default(100),
    seed: z.coerce.number().int().min(0).default(0),
    json: z.string().optional(),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('wasm'),
    threads: z.coerce.number().int().min(1).max(64).default(1),
  })
  .strict();
const o = parseFlags(flags);
if (!o.model.length) throw new Error('bad flag: --model: name at least one model directory');

await initBackend(o.backend, { threads: o.threads });
// the quick experiment's eval protocol, read from the budget so the two cannot drift
const protocol = BUDGETS.quick;

interface Side {
  clean: number;
  multimodal: number;
  textIr: number;
  report: Pick<RobustEvalReport, 'clean' | 'queries'>;
}
interface Measured {
  model: string;
  dir: string;
  train: Side;
  test: Side;
  cleanGap: number;
  robustGap: number;
}

// splits are decoded once per input size, not once per model
const splits = new Map<string, ReturnType<typeof loadDataset>>();
const splitAt = (split: string, size: number) => {
  const key = `${split}@${size}`;
  if (!splits.has(key)) splits.set(key, loadDataset(o.data, { split, size, onProgress: () => {} }));
  return splits.get(key)!;
};

const measured: Measured[] = [];
for (const dir of [o.base, ...o.model]) {
  const { model, tokenizer, manifest } = await loadArtifact(dir);
  const enc = new Encoder(model, tokenizer, manifest);
  const side = async (split: string): Promise<Side> => {
    const data = await splitAt(split, enc.imageSize);
    const { report } = await evaluateRobust(enc, data, {
      attacks: [{ name: 'text', maxWordsChanged: 1 }, ...protocol.evalEps.flatMap((eps) => (['coattack', 'sga'] as const).map((name) => ({ name, eps, steps: protocol.evalSteps, maxWordsChanged: 1 })))],
      limit: Math.min(o.limit, data.count),
      textLabels: textLabelLexicon(protocol.textLabels),
      seed: o.seed,
      resamples: protocol.resamples,
      examples: 0,
      sanity: false,
      modelName: manifest.id,
    });
    return {
      clean: cleanMeanR1(report),
      multimodal: multimodalMeanR1(report)!,
      textIr: report.attacks.find((a) => a.name === 'text')!.ir!.recall.r1.mean,
      report: { clean: report.clean, queries: report.queries },
    };
  };
  console.error(`[robust-gap] ${manifest.id}: train split`);
  const train = await side('train');
  console.error(`[robust-gap] ${manifest.id}: test split`);
  const test = await side('test');
  measured.push({ model: manifest.id, dir, train, test, cleanGap: train.clean - test.clean, robustGap: train.multimodal - test.multimodal });
  model.dispose();
}
const rows = measured.map((r) => ({ ...r, cleanGapVsBase: r.cleanGap - measured[0].cleanGap, robustGapVsBase: r.robustGap - measured[0].robustGap }));
const [base] = rows;

const f = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(2);
console.log(`first ${o.limit} images of each split, attack seed ${o.seed}; multimodal = mean R@1 of TR and IR under Co-Attack and SGA at ${protocol.evalEps.join(', ')}/255`);
console.log('| model | clean train / test | multimodal train / test | text IR train / test | clean gap (vs base) | robust gap (vs base) |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r === base ? 'base ' : ''}${r.model} | ${r.train.clean.toFixed(2)} / ${r.test.clean.toFixed(2)} | ${r.train.multimodal.toFixed(2)} / ${r.test.multimodal.toFixed(2)} | ${r.train.textIr} / ${r.test.textIr} | ${f(r.cleanGap)} (${f(r.cleanGapVsBase)}) | ${f(r.robustGap)} (${f(r.robustGapVsBase)}) |`,
  );
}
if (o.json) writeFileSync(o.json, JSON.stringify({ data: o.data, limit: o.limit, seed: o.seed, rows }, null, 2) + '\n');
process.exit(0);
