/**
 * `manyfold experiment`: the defenses table of issue 4.
 *
 * For each seed: train ONE clean model, fine-tune every method / augmentation variant from it with the same
 * data, budget and seed, run the robust evaluation (src/eval/robust/evaluate.ts: PGD, text, Co-Attack, SGA, and
 * SGA transferred from the clean model) on each, and write one table (Markdown + JSON + HTML) with the
 * clean and robust R@1 of both directions, their bootstrap CIs, and seconds per epoch per method.
 * Resumable: a row whose result.json exists is skipped; a row whose training was interrupted resumes from its
 * checkpoint (step-exact); a finished model is not retrained.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, type ManyfoldConfig } from '../src/config.js';
import { initBackend } from '../src/engine/backend.js';
import { generateScenes } from '../src/data/scenes/generate.js';
import { loadArtifact, readManifest } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { cleanMeanR1, evaluateRobust, multimodalMeanR1, type RobustEvalOptions, type RobustEvalReport } from '../src/eval/robust/evaluate.js';
import { specsAtEachEps, type ProbeAttackSpec } from '../src/eval/robust/catalog.js';
import type { AttackFigures } from '../src/eval/robust/runner.js';
import { modelConfigFromPreset } from '../src/model/presets.js';
import { textLabelLexicon, type TextLabelChoice } from '../src/eval/text-labels.js';
import { mean, sampleSd } from '../src/util/stats.js';
import { loadSplit, runTraining } from './run.js';
import { ROWS, type RowSpec } from './experiment-rows.js';

export type Budget = 'quick' | 'full';

export interface BudgetSpec {
  /** scenes sizes generated when no --data is given */
  scenes: { train: number; test: number };
  preset: 'tiny' | 'small';
  batch: number;
  captionsPerImage: number;
  cleanEpochs: number;
  cleanLr: number;
  fineTuneEpochs: number;
  fineTuneLr: number;
  trainEps: number;
  trainSteps: number;
  /** MAT substitution: WordNet candidates scored per word in training (the eval attack scores up to 50) */
  textCandidates: number;
  /** MAT substitution: word order in training, 'random' (cheap) or 'delete' (importance, as the eval attack) */
  textWir: 'random' | 'delete';
  /** closed-vocabulary labels text substitutes must keep, in MAT training and in every text attack of the eval
   * ('none' = the paper's protocol; src/eval/text-labels.ts) */
  textLabels: TextLabelChoice;
  /** robust eval */
  evalLimit: number;
  evalEps: number[];
  evalSteps: number;
  resamples: number;
}

/**
 * Budgets, planned from measured step times on the 2-core machine (docs/defenses.md): relative to a clean step
 * (~0.9 s idle, ~1.9 s at load 10; batch 64, 2 captions), TeCoA ~1x, FARE ~0.75x, MAT ~3.6x (2 PGD steps +
 * substitution), MAT + augmentation ~5-7x (one more caption per image to attack) plus ~50 s to build its pool;
 * robust eval (5 attacks) ~5 s per test image at load 8, ~2.5 s idle. quick on an idle machine: clean 500
 * steps ~8 min, 9 fine-tuned rows x 40 steps ~20 min, eval 10 rows x 40 images ~17 min -> ~45 min (about twice
 * that when the machine is as loaded as it was during development). Measured (docs/defenses.md): 33-38 min per
 * seed for the first 10 rows at load 2-3; the ablation row adds ~5 min.
 */
export const BUDGETS: Record<Budget, BudgetSpec> = {
  quick: {
    scenes: { train: 640, test: 100 },
    preset: 'tiny',
    batch: 64,
    captionsPerImage: 2,
    cleanEpochs: 50,
    // pinned (not the trainer's default, 5e-4 since session 3) so the recorded tables stay reproducible
    cleanLr: 1e-3,
    fineTuneEpochs: 4,
    fineTuneLr: 2e-4,
    trainEps: 4,
    trainSteps: 2,
    textCandidates: 8,
    textWir: 'random',
    textLabels: 'none',
    evalLimit: 40,
    evalEps: [2],
    evalSteps: 10,
    resamples: 1000,
  },
  full: {
    scenes: { train: 4000, test: 500 },
    preset: 'tiny',
    batch: 64,
    captionsPerImage: 2,
    cleanEpochs: 30,
    cleanLr: 1e-3,
    fineTuneEpochs: 10,
    fineTuneLr: 2e-4,
    trainEps: 4,
    trainSteps: 3,
    textCandidates: 8,
    textWir: 'random',
    textLabels: 'none',
    evalLimit: 500,
    evalEps: [2, 4],
    evalSteps: 10,
    resamples: 1000,
  },
};

export { ROWS, type RowSpec } from './experiment-rows.js';

/** the evaluated attacks, each image attack at every eval budget; transfer-sga is crafted on the clean row's model */
export const EXPERIMENT_ATTACKS = ['pgd', 'text', 'coattack', 'sga', 'transfer-sga'] as const;

export function experimentSuite(spec: Pick<BudgetSpec, 'evalEps' | 'evalSteps'>): ProbeAttackSpec[] {
  return EXPERIMENT_ATTACKS.flatMap((name) => specsAtEachEps(name, spec.evalEps, { steps: spec.evalSteps, maxWordsChanged: 1 }));
}

export interface ExperimentOptions {
  out: string;
  budget: Budget;
  seeds: number;
  /** data set (default: the scenes set generated into out/data) */
  data?: string;
  augmentCache?: string;
  backend?: ManyfoldConfig['backend'];
  /** wasm XNNPACK threads (ManyfoldConfig['threads']) */
  threads?: number;
  /**
   * train the selected rows (and the clean base if missing) but run no robust eval and write no table: to train
   * rows in parallel processes while another process evaluates; a later run without it evaluates them
   */
  trainOnly?: boolean;
  side?: 'query' | 'both';
  /** run only these seeds (results and table of those seeds only; a run without it assembles every seed's) */
  onlySeeds?: number[];
  /** run only these row ids (the clean base always runs) */
  only?: string[];
  /**
   * an existing clean model artifact to use as the base row instead of training one (every seed fine-tunes from
   * it): to run the table on a stronger clean model, e.g. one trained with training/recipes/scenes-shape.json
   */
  base?: string;
  quiet?: boolean;
  /** robust eval implementation (tests inject a stub); default evaluateRobust */
  evaluate?: typeof evaluateRobust;
  /** override budget fields (tests) */
  overrides?: Partial<BudgetSpec>;
}

export interface RowResult {
  row: string;
  label: string;
  seed: number;
  method: string;
  augment: string[];
  model: string;
  secondsPerEpoch: number | null;
  trainSeconds: number | null;
  loadavg: number[];
  augmentCounts?: unknown;
  report: RobustEvalReport;
}

const log = (quiet: boolean | undefined, m: string) => {
  if (!quiet) process.stderr.write(`[experiment ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
};

/**
 * Rows already in `out` are reused, so a run with other settings (budget, overrides, base model, data) on the same
 * directory would mix two protocols in one table: refuse it. Fields an older experiment.json lacks take the
 * budget's defaults, which is what that run used.
 */
function refuseOtherSettings(file: string, budget: Budget, spec: BudgetSpec, baseId: string | undefined, data: string): void {
  if (!existsSync(file)) return;
  const earlier = JSON.parse(readFileSync(file, 'utf8')) as { budget?: Budget; spec?: Partial<BudgetSpec>; base?: { id: string } | null; data?: string };
  if (earlier.data && resolve(earlier.data) !== resolve(data)) throw new Error(`${file} was run on the data ${earlier.data}, not ${data}: use another --out`);
  const earlierBudget = earlier.budget ?? budget;
  const before: BudgetSpec = { ...BUDGETS[earlierBudget], ...(earlier.spec ?? {}) };
  const differ = earlierBudget !== budget ? [`budget ${earlierBudget} -> ${budget}`] : [];
  for (const k of Object.keys(spec) as (keyof BudgetSpec)[]) {
    const [was, now] = [JSON.stringify(before[k]), JSON.stringify(spec[k])];
    if (was !== now) differ.push(`${k} ${was} -> ${now}`);
  }
  if (differ.length) throw new Error(`${file} was written with other settings (${differ.join('; ')}): use another --out, or the same settings`);
  const earlierBase = earlier.base?.id;
  if (earlierBase !== baseId) throw new Error(`${file} was run on ${earlierBase ? `--base ${earlierBase}` : 'its own clean model'}, not ${baseId ? `--base ${baseId}` : 'a clean model trained here'}: use another --out`);
}

export async function runExperiment(o: ExperimentOptions): Promise<{ table: ExperimentTable; files: string[] }> {
  const spec: BudgetSpec = { ...BUDGETS[o.budget], ...(o.overrides ?? {}) };
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const backend = await initBackend(o.backend ?? 'auto', { threads: o.threads ?? 1 });
  log(o.quiet, `backend ${backend.name}; budget ${o.budget}; seeds ${o.seeds}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const given = o.base ? await readManifest(resolve(o.base)) : undefined;
  if (given?.training.method && given.training.method !== 'clean') {
    throw new Error(`--base ${o.base}: model ${given.id} was trained with --method ${String(given.training.method)}; the base row must be a clean model`);
  }
  const baseInfo = given && { dir: resolve(o.base!), id: given.id };
  let data = o.data;
  if (!data) {
    const dir = join(out, 'data');
    const file = join(dir, 'dataset_scenes.json');
    if (!existsSync(file)) await generateScenes({ out: dir, train: spec.scenes.train, val: 0, test: spec.scenes.test, seed: 1 });
    data = file;
  }
  refuseOtherSettings(join(out, 'experiment.json'), o.budget, spec, baseInfo?.id, data);
  writeFileSync(join(out, 'experiment.json'), JSON.stringify({ budget: o.budget, spec, seeds: o.seeds, data, side: o.side ?? 'query', base: baseInfo ?? null, rows: ROWS.map((r) => r.id), attacks: EXPERIMENT_ATTACKS }, null, 2));
  const imageSize = given ? given.config.image.size : modelConfigFromPreset(spec.preset, 2).image.size;
  const baseConfig = loadConfig({ overrides: { backend: o.backend, data: { file: data } } });
  const test = await loadSplit(baseConfig, 'test', imageSize, true);
  const train = await loadSplit(baseConfig, 'train', imageSize, true);
  const hasScenes = !!train.scenes?.some(Boolean);
  const evaluate = o.evaluate ?? evaluateRobust;
  const results: RowResult[] = [];

  for (let seed = 0; seed < o.seeds; seed++) {
    if (o.onlySeeds && !o.onlySeeds.includes(seed)) continue;
    const seedDir = join(out, `seed-${seed}`);
    const cleanDir = join(seedDir, 'clean');
    const cleanModel = baseInfo ? baseInfo.dir : join(cleanDir, 'model');
    const trainCfg = (row: RowSpec, init?: string) =>
      loadConfig({
        overrides: {
          backend: o.backend,
          seed,
          data: { file: data },
          train: {
            preset: spec.preset,
            method: row.method,
            batch: spec.batch,
            captionsPerImage: spec.captionsPerImage,
            epochs: row.base ? spec.cleanEpochs : spec.fineTuneEpochs,
            lr: row.base ? spec.cleanLr : spec.fineTuneLr,
            init,
            trainEps: spec.trainEps,
            trainSteps: spec.trainSteps,
            textCandidates: spec.textCandidates,
            textWir: spec.textWir,
            textLabels: spec.textLabels,
            augment: row.augment,
            augmentCache: o.augmentCache,
            ...(row.alignQuantile !== undefined ? { alignQuantile: row.alignQuantile } : {}),
          },
        },
      });
    let cleanEnc: Encoder | undefined;
    try {
      for (const row of ROWS) {
        if (o.only && !row.base && !o.only.includes(row.id)) continue;
        const rowDir = row.base ? cleanDir : join(seedDir, row.id);
        const resultFile = join(rowDir, 'result.json');
        if (row.augment.includes('cross') && !hasScenes && !o.augmentCache) {
          log(o.quiet, `seed ${seed} ${row.id}: skipped (cross-modal augmentation needs scene graphs or --augment-cache)`);
          continue;
        }
        if (existsSync(resultFile) && !(row.base && !existsSync(join(cleanModel, 'manifest.json')))) {
          const earlier = JSON.parse(readFileSync(resultFile, 'utf8')) as RowResult;
          if (row.base && baseInfo && earlier.model !== baseInfo.id) {
            throw new Error(`${resultFile} holds results for clean model ${earlier.model}, not --base ${baseInfo.id}: use another --out`);
          }
          if (earlier.report?.format === 'manyfold-robust/1') {
            results.push(earlier);
            log(o.quiet, `seed ${seed} ${row.id}: done earlier (${resultFile})`);
            if (!row.base) continue;
          } else {
            // written by the evaluation engine before the probe runner: the model is kept, its evaluation reruns
            log(o.quiet, `seed ${seed} ${row.id}: ${resultFile} is from the earlier evaluation engine; evaluating again`);
            rmSync(resultFile);
          }
        }
        const modelDir = row.base ? cleanModel : join(rowDir, 'model');
        mkdirSync(rowDir, { recursive: true });
        const load0 = loadavg();
        let secondsPerEpoch: number | null = null;
        let trainSeconds: number | null = null;
        let augmentCounts: unknown;
        if (!existsSync(join(modelDir, 'manifest.json'))) {
          log(o.quiet, `seed ${seed} ${row.id}: training (${row.label})`);
          const r = await runTraining({ config: trainCfg(row, row.base ? undefined : cleanModel), out: rowDir, resume: true, evaluate: false, quiet: true });
          if (!r.finished) throw new Error(`training of ${row.id} did not finish`);
          augmentCounts = r.augment;
        }
        if (o.trainOnly) {
          log(o.quiet, `seed ${seed} ${row.id}: trained (${modelDir}); robust eval left for a run without --train-only`);
          continue;
        }
        const loaded = await loadArtifact(modelDir);
        secondsPerEpoch = typeof loaded.manifest.training.secondsPerEpoch === 'number' ? loaded.manifest.training.secondsPerEpoch : null;
        trainSeconds = typeof loaded.manifest.training.trainSeconds === 'number' ? loaded.manifest.training.trainSeconds : null;
        if (augmentCounts === undefined && existsSync(join(rowDir, 'augment.json'))) augmentCounts = JSON.parse(readFileSync(join(rowDir, 'augment.json'), 'utf8'));
        const encoder = new Encoder(loaded.model, loaded.tokenizer, loaded.manifest);
        if (row.base) {
          cleanEnc = encoder;
          if (existsSync(resultFile)) continue;
        }
        log(o.quiet, `seed ${seed} ${row.id}: robust eval`);
        const evalOpts: RobustEvalOptions = {
          attacks: experimentSuite(spec),
          gallery: o.side === 'both' ? 'attacked' : 'clean',
          limit: Math.min(spec.evalLimit, test.count),
          textLabels: textLabelLexicon(spec.textLabels),
          seed,
          surrogate: { encoder: cleanEnc!.model, tokenizer: cleanEnc!.tokenizer, id: `clean (${cleanEnc!.version})` },
          resamples: spec.resamples,
          examples: 0,
          defended: row.method !== 'clean',
          modelName: `${row.id} (${loaded.manifest.id})`,
        };
        const { report } = await evaluate(encoder, test, evalOpts);
        const result: RowResult = { row: row.id, label: row.label, seed, method: row.method, augment: row.augment, model: loaded.manifest.id, secondsPerEpoch, trainSeconds, loadavg: [...load0, ...loadavg()].map((x) => Math.round(x * 100) / 100), augmentCounts, report };
        writeFileSync(resultFile, JSON.stringify(result, null, 2));
        results.push(result);
        if (!row.base) loaded.model.dispose();
        const f = (a: AttackFigures | RobustEvalReport['clean'], d: 'tr' | 'ir') => a[d]?.recall.r1?.mean.toFixed(1) ?? '–';
        log(o.quiet, `seed ${seed} ${row.id}: clean TR ${f(report.clean, 'tr')} IR ${f(report.clean, 'ir')}; ${report.attacks.map((a) => `${a.label} ${f(a, 'tr')}/${f(a, 'ir')}`).join(', ')}`);
      }
    } finally {
      cleanEnc?.model.dispose();
    }
  }
  const table = buildTable(results, { budget: o.budget, spec, data, side: o.side ?? 'query', seeds: new Set(results.map((r) => r.seed)).size, base: baseInfo?.id });
  if (o.trainOnly) return { table, files: [] };
  const files = writeTable(out, table);
  return { table, files };
}

// ---------------------------------------------------------------------------------------------- table

export interface Cell {
  r1: number;
  ci: [number, number] | null;
  /** across seeds: sample standard deviation (null with one seed) */
  sd: number | null;
  attacked: boolean;
}

export interface TableRow {
  row: string;
  label: string;
  seeds: number;
  clean: { tr: Cell; ir: Cell };
  attacks: Record<string, { tr: Cell; ir: Cell }>;
  /** mean of TR and IR robust R@1 under Co-Attack and SGA (the goal's metric) */
  multimodalMean: number | null;
  secondsPerEpoch: number | null;
}

export interface ExperimentTable {
  title: string;
  protocol: string;
  budget: string;
  spec: BudgetSpec;
  data: string;
  side: string;
  /** id of the clean model given with --base (null: the clean row was trained by the experiment) */
  base: string | null;
  attackLabels: string[];
  rows: TableRow[];
  /**
   * value: the difference of the seed means; perSeed: the same difference within each seed (rows of one seed share
   * the clean base and the evaluated images, so these are paired); everySeed: whether the goal holds in every seed
   */
  checks: { name: string; value: number | null; holds: boolean | null; detail: string; perSeed?: number[]; everySeed?: boolean | null }[];
  generated: string;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

function cell(values: number[], cis: ([number, number] | undefined)[], attacked: boolean): Cell {
  const sd = sampleSd(values);
  return { r1: r2(mean(values)), ci: values.length === 1 && cis[0] ? cis[0] : null, sd: sd === null ? null : r2(sd), attacked };
}

export function buildTable(results: RowResult[], meta: { budget: string; spec: BudgetSpec; data: string; side: string; seeds: number; base?: string }): ExperimentTable {
  const labels: string[] = [];
  for (const r of results) for (const a of r.report.attacks) if (!labels.includes(a.label)) labels.push(a.label);
  // an attack that leaves a direction alone (clean gallery) shows that direction's clean value, marked
  const dirOf = (r: RowResult, a: AttackFigures, d: 'tr' | 'ir') => ({ fig: a[d] ?? r.report.clean[d], attacked: a[d] !== undefined });
  const ciOf = (c: { lo: number; hi: number } | undefined): [number, number] | undefined => (c ? [c.lo, c.hi] : undefined);
  const rows: TableRow[] = [];
  for (const spec of ROWS) {
    const rs = results.filter((r) => r.row === spec.id);
    if (rs.length === 0) continue;
    const attacks: TableRow['attacks'] = {};
    for (const l of labels) {
      const es = rs.flatMap((r) => r.report.attacks.filter((a) => a.label === l).map((a) => ({ tr: dirOf(r, a, 'tr'), ir: dirOf(r, a, 'ir') })));
      if (es.length === 0) continue;
      attacks[l] = {
        tr: cell(es.map((e) => e.tr.fig.recall.r1.mean), es.map((e) => ciOf(e.tr.fig.recall.r1)), es[0].tr.attacked),
        ir: cell(es.map((e) => e.ir.fig.recall.r1.mean), es.map((e) => ciOf(e.ir.fig.recall.r1)), es[0].ir.attacked),
      };
    }
    const mm = labels.filter((l) => /^(coattack|sga)@/.test(l) && attacks[l]).flatMap((l) => [attacks[l].tr.r1, attacks[l].ir.r1]);
    const spe = rs.map((r) => r.secondsPerEpoch).filter((x): x is number => typeof x === 'number');
    rows.push({
      row: spec.id,
      label: spec.label,
      seeds: rs.length,
      clean: {
        tr: cell(rs.map((r) => r.report.clean.tr.recall.r1.mean), rs.map((r) => ciOf(r.report.clean.tr.recall.r1)), true),
        ir: cell(rs.map((r) => r.report.clean.ir.recall.r1.mean), rs.map((r) => ciOf(r.report.clean.ir.recall.r1)), true),
      },
      attacks,
      multimodalMean: mm.length ? r2(mean(mm)) : null,
      secondsPerEpoch: spe.length ? r2(mean(spe)) : null,
    });
  }
  const checks: ExperimentTable['checks'] = [];
  const mmOf = (r: RowResult) => multimodalMeanR1(r.report);
  const cleanOf = (r: RowResult) => cleanMeanR1(r.report);
  /** per-seed paired differences f(a) - f(b) over the seeds both rows have */
  const paired = (a: string, b: string, f: (r: RowResult) => number | null): number[] => {
    const out: number[] = [];
    for (const ra of results.filter((r) => r.row === a)) {
      const rb = results.find((r) => r.row === b && r.seed === ra.seed);
      const va = f(ra);
      const vb = rb ? f(rb) : null;
      if (va !== null && vb !== null) out.push(r2(va - vb));
    }
    return out;
  };
  const check = (name: string, detail: string, a: string, b: string, f: (r: RowResult) => number | null, goal: (d: number) => boolean) => {
    const perSeed = paired(a, b, f);
    const value = perSeed.length ? r2(mean(perSeed)) : null;
    checks.push({ name, detail, value, holds: value === null ? null : goal(value), perSeed, everySeed: perSeed.length ? perSeed.every(goal) : null });
  };
  check('MAT+N:N - MAT, robust R@1 (mean of TR/IR under Co-Attack and SGA)', 'goal: >= 5 points', 'mat-nn', 'mat', mmOf, (d) => d >= 5);
  check('clean R@1 drop of MAT+N:N vs the clean model (mean of TR/IR)', 'goal: <= 3 points', 'clean', 'mat-nn', cleanOf, (d) => d <= 3);
  check('MAT - TeCoA under multimodal attacks', 'goal: > 0', 'mat', 'tecoa', mmOf, (d) => d > 0);
  check('MAT - FARE under multimodal attacks', 'goal: > 0', 'mat', 'fare', mmOf, (d) => d > 0);
  check('MAT+N:N (aligned) - MAT+misaligned under multimodal attacks', 'goal: misaligned hurts (> 0)', 'mat-nn', 'mat-misaligned', mmOf, (d) => d > 0);
  // the paper's point is that wrong pairs teach wrong relations: that shows first on clean recall
  check('MAT+N:N (aligned) - MAT+misaligned, clean R@1 (mean of TR/IR)', 'goal: misaligned hurts (> 0)', 'mat-nn', 'mat-misaligned', cleanOf, (d) => d > 0);
  check('MAT - MAT+misaligned under multimodal attacks', 'paper: misaligned can be worse than no augmentation', 'mat', 'mat-misaligned', mmOf, (d) => d > 0);
  check('MAT+N:N (filtered) - MAT+N:N without the alignment filter', 'ablation: does the filter help (> 0)', 'mat-nn', 'mat-nn-unfiltered', mmOf, (d) => d > 0);
  const seedsNote = meta.seeds > 1 ? `mean over ${meta.seeds} seeds (± sample sd)` : '95% CI = percentile bootstrap over queries (1000 resamples)';
  return {
    title: 'Manyfold defenses: clean and robust R@1',
    protocol:
      `Test split of ${meta.data}, first ${meta.spec.evalLimit} images and their captions; Karpathy R@1 (TR image->text, IR text->image, pessimistic ties); ` +
      `side '${meta.side}' (${meta.side === 'query' ? 'only queries are adversarial, the gallery is clean; an attack on one modality leaves the other direction at its clean value, marked *' : 'queries and gallery adversarial'}); ` +
      `image budget L-inf ${meta.spec.evalEps.join(', ')}/255, PGD ${meta.spec.evalSteps} steps, step max(eps/4, 0.25)/255, random start, images quantised to 8 bits; text: 1 word (WordNet${meta.spec.textLabels !== 'none' ? `, substitutes keep their ${meta.spec.textLabels} label` : ''}); ` +
      `Co-Attack and SGA as in src/attacks; transfer-sga = SGA crafted on the clean model; attacks push the gold out of the top 10. Training: ${meta.spec.preset} preset, batch ${meta.spec.batch}, ` +
      `${meta.base ? `clean = the given model ${meta.base} (--base, not trained here)` : `clean ${meta.spec.cleanEpochs} epochs at lr ${meta.spec.cleanLr}`}; every other row fine-tuned ${meta.spec.fineTuneEpochs} epochs at lr ${meta.spec.fineTuneLr} from that clean model, ` +
      `training attack L-inf ${meta.spec.trainEps}/255, ${meta.spec.trainSteps} PGD steps, 1 word (${meta.spec.textCandidates} WordNet candidates, ${meta.spec.textWir} word order${meta.spec.textLabels !== 'none' ? `, ${meta.spec.textLabels} labels kept` : ''}). ${seedsNote}.`,
    budget: meta.budget,
    spec: meta.spec,
    data: meta.data,
    side: meta.side,
    base: meta.base ?? null,
    attackLabels: labels,
    rows,
    checks,
    generated: new Date().toISOString(),
  };
}

const yesNo = (b: boolean | null) => (b === null ? 'n/a' : b ? 'yes' : 'no');

function fmtCell(c: Cell): string {
  const v = c.r1.toFixed(1) + (c.attacked ? '' : '*');
  if (c.ci) return `${v} [${c.ci[0].toFixed(0)}, ${c.ci[1].toFixed(0)}]`;
  if (c.sd !== null) return `${v} ± ${c.sd.toFixed(1)}`;
  return v;
}

export function tableMarkdown(t: ExperimentTable): string {
  const head = ['method', 'clean TR', 'clean IR', ...t.attackLabels.flatMap((l) => [`${l} TR`, `${l} IR`]), 'CoA+SGA mean', 's/epoch'];
  const lines = [`# ${t.title}`, '', `Budget \`${t.budget}\`, generated ${t.generated}.`, '', `Protocol: ${t.protocol}`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of t.rows) {
    const cells = [r.label, fmtCell(r.clean.tr), fmtCell(r.clean.ir), ...t.attackLabels.flatMap((l) => (r.attacks[l] ? [fmtCell(r.attacks[l].tr), fmtCell(r.attacks[l].ir)] : ['–', '–'])), r.multimodalMean?.toFixed(1) ?? '–', r.secondsPerEpoch?.toFixed(1) ?? '–'];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  lines.push('', '## Checks against the goals of issue 4', '', '| check | value (mean of per-seed differences) | per seed | holds (on the mean) | in every seed |', '|---|---|---|---|---|');
  for (const c of t.checks) lines.push(`| ${c.name} (${c.detail}) | ${c.value ?? '–'} | ${c.perSeed?.join(', ') ?? '–'} | ${yesNo(c.holds)} | ${yesNo(c.everySeed ?? null)} |`);
  lines.push('', 's/epoch: mean wall seconds per training epoch of that row (fine-tuning rows; the clean row trains from scratch, or with --base is the given model\'s own training as its manifest records it) on this machine, under whatever load it had.');
  return lines.join('\n') + '\n';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function tableHtml(t: ExperimentTable): string {
  const head = ['method', 'clean TR', 'clean IR', ...t.attackLabels.flatMap((l) => [`${l} TR`, `${l} IR`]), 'CoA+SGA mean', 's/epoch'];
  const rows = t.rows.map((r) => `<tr><th>${esc(r.label)}</th>${[fmtCell(r.clean.tr), fmtCell(r.clean.ir), ...t.attackLabels.flatMap((l) => (r.attacks[l] ? [fmtCell(r.attacks[l].tr), fmtCell(r.attacks[l].ir)] : ['–', '–'])), r.multimodalMean?.toFixed(1) ?? '–', r.secondsPerEpoch?.toFixed(1) ?? '–'].map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`);
  const checks = t.checks.map((c) => `<tr><td>${esc(c.name)} (${esc(c.detail)})</td><td>${c.value ?? '–'}</td><td>${esc(c.perSeed?.join(', ') ?? '–')}</td><td>${yesNo(c.holds)}</td><td>${yesNo(c.everySeed ?? null)}</td></tr>`);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(t.title)}</title><style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}th{text-align:left;background:#f6f6f6}p{max-width:100ch}</style></head><body>
<h1>${esc(t.title)}</h1><p>Budget <code>${esc(t.budget)}</code>, generated ${esc(t.generated)}.</p><p>${esc(t.protocol)}</p>
<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>
<h2>Checks against the goals of issue 4</h2><table><thead><tr><th>check</th><th>value (mean of per-seed differences)</th><th>per seed</th><th>holds (on the mean)</th><th>in every seed</th></tr></thead><tbody>${checks.join('')}</tbody></table>
</body></html>
`;
}

export function writeTable(out: string, t: ExperimentTable): string[] {
  const files = [join(out, 'table.json'), join(out, 'table.md'), join(out, 'table.html')];
  writeFileSync(files[0], JSON.stringify(t, null, 2) + '\n');
  writeFileSync(files[1], tableMarkdown(t));
  writeFileSync(files[2], tableHtml(t));
  return files;
}
