/**
 * The experiment runner end to end on a toy budget with a stubbed robust eval: clean base + two fine-tuned rows,
 * table files written, checks computed, and a second run skips every finished row.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateScenes } from '../../src/data/scenes/generate.js';
import type { RobustEvalReport, evaluateRobust } from '../../src/eval/robust/evaluate.js';
import { BUDGETS, experimentSuite, runExperiment, type ExperimentTable } from '../../training/experiment.js';

let dir: string;
let data: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mf-exp-'));
  data = (await generateScenes({ out: join(dir, 'scenes'), train: 16, val: 0, test: 6, seed: 2 })).file;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const calls: string[] = [];
const textLabelsSeen: (string | undefined)[] = [];
const stub: typeof evaluateRobust = async (encoder, _data, opts) => {
  calls.push(String(opts.modelName));
  textLabelsSeen.push(opts.textLabels?.name);
  expect(opts.surrogate?.id).toMatch(/^clean /);
  const fig = (v: number, lo: number, hi: number) => ({ n: 6, failed: 0, recall: { r1: { mean: v, lo, hi } } });
  const e = (label: string, v: number) => ({ label, name: label.split('@')[0], tr: fig(v, v - 5, v + 5), ir: fig(v + 1, v - 4, v + 6) });
  const v = String(opts.modelName).startsWith('mat-nn') ? 40 : 20;
  const c = String(opts.modelName).startsWith('mat-misaligned') ? 10 : 0; // the control loses clean recall
  const attacks = opts.attacks.map((a) => e(a.eps === undefined ? a.name : `${a.name}@${a.eps}`, v));
  const report = { format: 'manyfold-robust/1', clean: { tr: fig(50 - c, 45, 55), ir: fig(48 - c / 2, 43, 53) }, attacks, source: { kind: 'in-memory', name: encoder.version } } as unknown as RobustEvalReport;
  return { report, examples: [], captions: { original: [], byAttack: {} } };
};

describe('manyfold experiment', () => {
  it('evaluates every image attack at each eval budget and the text attack once, from the catalogue', () => {
    expect(experimentSuite(BUDGETS.full)).toEqual([
      { name: 'pgd', eps: 2, steps: 10 },
      { name: 'pgd', eps: 4, steps: 10 },
      { name: 'text', maxWordsChanged: 1 },
      { name: 'coattack', eps: 2, steps: 10, maxWordsChanged: 1 },
      { name: 'coattack', eps: 4, steps: 10, maxWordsChanged: 1 },
      { name: 'sga', eps: 2, steps: 10, maxWordsChanged: 1 },
      { name: 'sga', eps: 4, steps: 10, maxWordsChanged: 1 },
      { name: 'transfer-sga', eps: 2, steps: 10, maxWordsChanged: 1 },
      { name: 'transfer-sga', eps: 4, steps: 10, maxWordsChanged: 1 },
    ]);
  });

  it('trains the clean base, fine-tunes the selected rows from it, writes the table, and resumes by skipping finished rows', async () => {
    const out = join(dir, 'exp');
    const overrides = { cleanEpochs: 1, fineTuneEpochs: 1, batch: 8, trainSteps: 1, evalLimit: 6 };
    const { table, files } = await runExperiment({ out, budget: 'quick', seeds: 1, data, backend: 'wasm', only: ['mat-nn', 'mat-misaligned'], quiet: true, evaluate: stub, overrides });
    expect(calls.length).toBe(3);
    expect(table.rows.map((r) => r.row)).toEqual(['clean', 'mat-nn', 'mat-misaligned']);
    for (const f of files) expect(existsSync(f)).toBe(true);
    const md = readFileSync(join(out, 'table.md'), 'utf8');
    expect(md).toMatch(/\| MAT \+ N:N \| 50\.0 \[45, 55\]/);
    expect(md).toMatch(/Protocol: /);
    const json = JSON.parse(readFileSync(join(out, 'table.json'), 'utf8')) as ExperimentTable;
    const check = json.checks.find((c) => c.name.startsWith('MAT+N:N (aligned) - MAT+misaligned'))!;
    expect(check.value).toBe(20.5 - 0.5 - 0);
    expect(check.perSeed).toEqual([20]);
    expect(check.everySeed).toBe(true);
    expect(md).toMatch(/\| MAT\+N:N \(aligned\) - MAT\+misaligned under multimodal attacks \(goal: misaligned hurts \(> 0\)\) \| 20 \| 20 \| yes \| yes \|/);
    const cleanCheck = json.checks.find((c) => c.name === 'MAT+N:N (aligned) - MAT+misaligned, clean R@1 (mean of TR/IR)')!;
    expect(cleanCheck.perSeed).toEqual([7.5]);
    expect(cleanCheck.holds).toBe(true);
    expect(json.rows.find((r) => r.row === 'mat-nn')!.secondsPerEpoch).toBeGreaterThan(0);
    // the fine-tuned rows started from the clean model
    const manifest = JSON.parse(readFileSync(join(out, 'seed-0', 'mat-nn', 'model', 'manifest.json'), 'utf8')) as { training: { init: string; method: string; augment: string[] } };
    const clean = JSON.parse(readFileSync(join(out, 'seed-0', 'clean', 'model', 'manifest.json'), 'utf8')) as { id: string };
    expect(manifest.training.init).toBe(clean.id);
    expect(manifest.training.method).toBe('mat');
    expect(existsSync(join(out, 'seed-0', 'mat-nn', 'augment.json'))).toBe(true);

    calls.length = 0;
    const again = await runExperiment({ out, budget: 'quick', seeds: 1, data, backend: 'wasm', only: ['mat-nn', 'mat-misaligned'], quiet: true, evaluate: stub, overrides });
    expect(calls.length).toBe(0);
    expect(again.table.rows.length).toBe(3);

    // a row evaluated by the earlier engine (no report format) is evaluated again, its model kept
    const rowResult = join(out, 'seed-0', 'mat-nn', 'result.json');
    const old = JSON.parse(readFileSync(rowResult, 'utf8')) as { report: Record<string, unknown> };
    delete old.report.format;
    writeFileSync(rowResult, JSON.stringify(old));
    const modelId = manifest.training.init;
    await runExperiment({ out, budget: 'quick', seeds: 1, data, backend: 'wasm', only: ['mat-nn', 'mat-misaligned'], quiet: true, evaluate: stub, overrides });
    expect(calls.map((c) => c.split(' ')[0])).toEqual(['mat-nn']);
    expect((JSON.parse(readFileSync(rowResult, 'utf8')) as { report: { format: string } }).report.format).toBe('manyfold-robust/1');
    expect((JSON.parse(readFileSync(join(out, 'seed-0', 'mat-nn', 'model', 'manifest.json'), 'utf8')) as { training: { init: string } }).training.init).toBe(modelId);
  });

  it('runs one seed per process with onlySeeds, and a later run without it assembles every seed into the table', async () => {
    const out = join(dir, 'exp-seeds');
    const overrides = { cleanEpochs: 1, fineTuneEpochs: 1, batch: 8, trainSteps: 1, evalLimit: 6 };
    const base = { out, budget: 'quick' as const, seeds: 2, data, backend: 'wasm' as const, only: ['fare'], quiet: true, evaluate: stub, overrides };
    calls.length = 0;
    const second = await runExperiment({ ...base, onlySeeds: [1] });
    expect(existsSync(join(out, 'seed-0'))).toBe(false);
    expect(second.table.rows.map((r) => r.seeds)).toEqual([1, 1]);
    await runExperiment({ ...base, onlySeeds: [0] });
    expect(calls.length).toBe(4);
    calls.length = 0;
    const all = await runExperiment(base);
    expect(calls.length).toBe(0);
    expect(all.table.rows.map((r) => r.seeds)).toEqual([2, 2]);
    expect(readFileSync(join(out, 'table.md'), 'utf8')).toMatch(/mean over 2 seeds/);
    // a list of seeds assembles the table of those seeds only, and does not start the missing seed 2
    const subset = await runExperiment({ ...base, seeds: 3, onlySeeds: [0, 1] });
    expect(calls.length).toBe(0);
    expect(existsSync(join(out, 'seed-2'))).toBe(false);
    expect(subset.table.rows.map((r) => r.seeds)).toEqual([2, 2]);
    // checks are paired within each seed
    const fareVsClean = all.table.checks.find((c) => c.name.startsWith('MAT - FARE'))!;
    expect(fareVsClean.value).toBeNull(); // no MAT row in this run
    const drop = all.table.checks.find((c) => c.name.startsWith('clean R@1 drop'))!;
    expect(drop.perSeed).toEqual([]);
  });

  it('--train-only trains the selected rows without robust eval or table; a later run evaluates them without retraining', async () => {
    const out = join(dir, 'exp-train-only');
    const overrides = { cleanEpochs: 1, fineTuneEpochs: 1, batch: 8, trainSteps: 1, evalLimit: 6 };
    const base = { out, budget: 'quick' as const, seeds: 1, data, backend: 'wasm' as const, only: ['tecoa'], quiet: true, evaluate: stub, overrides };
    calls.length = 0;
    const trained = await runExperiment({ ...base, trainOnly: true });
    expect(calls).toEqual([]);
    expect(trained.files).toEqual([]);
    expect(existsSync(join(out, 'table.md'))).toBe(false);
    const manifestPath = join(out, 'seed-0', 'tecoa', 'model', 'manifest.json');
    const id = (JSON.parse(readFileSync(manifestPath, 'utf8')) as { id: string }).id;
    expect(existsSync(join(out, 'seed-0', 'tecoa', 'result.json'))).toBe(false);

    const evaluated = await runExperiment(base);
    expect(calls.map((c) => c.split(' ')[0])).toEqual(['clean', 'tecoa']);
    expect(evaluated.table.rows.map((r) => r.row)).toEqual(['clean', 'tecoa']);
    // not retrained: the evaluated model is the one --train-only wrote
    expect((JSON.parse(readFileSync(manifestPath, 'utf8')) as { id: string }).id).toBe(id);
    expect(evaluated.table.rows.find((r) => r.row === 'tecoa')!.secondsPerEpoch).toBeGreaterThan(0);
  });
  it('--base uses a given clean model as the clean row (not retrained) and fine-tunes every row from it', async () => {
    const overrides = { cleanEpochs: 1, fineTuneEpochs: 1, batch: 8, trainSteps: 1, evalLimit: 6 };
    // a clean model trained by an earlier experiment stands in for one trained elsewhere (e.g. with a recipe)
    const baseModel = join(dir, 'exp', 'seed-0', 'clean', 'model');
    const baseId = (JSON.parse(readFileSync(join(baseModel, 'manifest.json'), 'utf8')) as { id: string }).id;
    const out = join(dir, 'exp-base');
    calls.length = 0;
    const r = await runExperiment({ out, budget: 'quick', seeds: 1, data, backend: 'wasm', only: ['tecoa'], base: baseModel, quiet: true, evaluate: stub, overrides });
    expect(calls.map((c) => c.split(' ')[0])).toEqual(['clean', 'tecoa']);
    expect(calls[0]).toContain(baseId);
    expect(existsSync(join(out, 'seed-0', 'clean', 'model'))).toBe(false);
    const ft = JSON.parse(readFileSync(join(out, 'seed-0', 'tecoa', 'model', 'manifest.json'), 'utf8')) as { training: { init: string } };
    expect(ft.training.init).toBe(baseId);
    expect(r.table.protocol).toContain(`clean = the given model ${baseId} (--base, not trained here)`);
    expect(r.table.base).toBe(baseId);
    expect((JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as { base: { id: string } }).base.id).toBe(baseId);
    // a different base on the same --out is refused rather than mixed into one table
    const other = join(dir, 'exp-seeds', 'seed-1', 'clean', 'model'); // seed 1: another model (seed 0's would be identical)
    await expect(runExperiment({ out, budget: 'quick', seeds: 1, data, backend: 'wasm', only: ['tecoa'], base: other, quiet: true, evaluate: stub, overrides })).rejects.toThrow(
      /was run on --base .*, not --base .*: use another --out/,
    );
    // a defended model is not a clean base
    await expect(
      runExperiment({ out: join(dir, 'exp-base-bad'), budget: 'quick', seeds: 1, data, backend: 'wasm', base: join(out, 'seed-0', 'tecoa', 'model'), quiet: true, evaluate: stub, overrides }),
    ).rejects.toThrow(/was trained with --method tecoa; the base row must be a clean model/);
  });

  it('budget overrides are part of the protocol: recorded, applied to MAT training and the eval, and never mixed on one --out', async () => {
    const overrides = { cleanEpochs: 1, fineTuneEpochs: 1, batch: 8, trainSteps: 1, evalLimit: 6 };
    // the first test's directory holds rows fine-tuned 1 epoch: 2 epochs there would mix two protocols
    await expect(
      runExperiment({ out: join(dir, 'exp'), budget: 'quick', seeds: 1, data, backend: 'wasm', only: ['mat-nn'], quiet: true, evaluate: stub, overrides: { ...overrides, fineTuneEpochs: 2 } }),
    ).rejects.toThrow(/exp.experiment\.json was written with other settings \(fineTuneEpochs 1 -> 2\): use another --out/);
    await expect(
      runExperiment({ out: join(dir, 'exp'), budget: 'full', seeds: 1, data, backend: 'wasm', only: ['mat-nn'], quiet: true, evaluate: stub, overrides }),
    ).rejects.toThrow(/other settings \(budget quick -> full; /);
    await expect(
      runExperiment({ out: join(dir, 'exp'), budget: 'quick', seeds: 1, data: join(dir, 'other.json'), backend: 'wasm', only: ['mat-nn'], quiet: true, evaluate: stub, overrides }),
    ).rejects.toThrow(/was run on the data .*scenes.*, not .*other\.json: use another --out/);

    const out = join(dir, 'exp-labels');
    textLabelsSeen.length = 0;
    const r = await runExperiment({ out, budget: 'quick', seeds: 1, data, backend: 'wasm', only: ['mat'], quiet: true, evaluate: stub, overrides: { ...overrides, textLabels: 'scenes', textCandidates: 3, textWir: 'delete' } });
    expect(r.table.rows.map((x) => x.row)).toEqual(['clean', 'mat']);
    expect(textLabelsSeen).toEqual(['scenes', 'scenes']); // every row's eval constrains its text attacks
    const mat = JSON.parse(readFileSync(join(out, 'seed-0', 'mat', 'model', 'manifest.json'), 'utf8')) as { training: { config: { textLabels: string; textCandidates: number; textWir: string } } };
    expect(mat.training.config).toMatchObject({ textLabels: 'scenes', textCandidates: 3, textWir: 'delete' });
    const recorded = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')) as { spec: { textLabels: string; textCandidates: number } };
    expect(recorded.spec).toMatchObject({ textLabels: 'scenes', textCandidates: 3, textWir: 'delete' });
    expect(r.table.protocol).toContain('1 word (3 WordNet candidates, delete word order, scenes labels kept)');
    expect(r.table.protocol).toContain('text: 1 word (WordNet, substitutes keep their scenes label)');
  });
});
