import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { BACKEND_KINDS, loadConfig } from '../../config.js';
import { choiceFlag, intFlag, numberFlag, numberListFlag, THREADS_FLAG_HELP } from '../flags.js';
import { TEXT_LABEL_CHOICES, TEXT_LABELS_HELP, textLabelLexicon, type TextLabelChoice } from '../../eval/text-labels.js';
import { PROBE_ATTACKS, PROBE_ATTACK_NAMES, specsAtEachEps, type ProbeAttackName, type ProbeAttackSpec } from '../../eval/robust/catalog.js';
import { checkBars, parseFailBelow } from '../../eval/robust/gate.js';
import { renderRobustHtml, renderRobustMarkdown } from '../../eval/robust/render.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { EXIT_BARS_FAILED } from '../exit-codes.js';

/** `--model` accepts an artifact directory or a training run directory holding model/. */
export function resolveModelDir(dir: string): string {
  if (existsSync(join(dir, 'manifest.json'))) return dir;
  if (existsSync(join(dir, 'model', 'manifest.json'))) return join(dir, 'model');
  throw new Error(`no model artifact at ${dir} (expected ${join(dir, 'manifest.json')} or ${join(dir, 'model', 'manifest.json')})`);
}

export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description(
      'retrieval recall (R@1/5/10, both directions, semantic recall on scenes) of a model on a split; with --attack, ' +
        'robust recall under attack (ASR, worst case, bootstrap CIs, sanity checks) with JSON / Markdown / HTML reports',
    )
    .requiredOption('--model <dir>', 'model artifact directory (or a training run directory)')
    .requiredOption('--data <file>', 'Karpathy JSON or JSONL manifest')
    .option('--split <name>', 'split to evaluate', 'test')
    .option('--images <dir>', 'image directory (default: relative to the data file)')
    .option('--json <file>', 'write the results as JSON')
    .option('--export-sims <prefix>', 'write PREFIX.json (ground truth) and PREFIX.bin (float32 image x text similarities)')
    .option('--backend <name>', `${BACKEND_KINDS.join(' | ')} (docs/gpu.md)`, choiceFlag(BACKEND_KINDS))
    .option('--threads <n>', THREADS_FLAG_HELP, intFlag(1))
    .option('--on-bad-row <mode>', 'fail | skip', choiceFlag(['fail', 'skip'] as const))
    .option(
      '--attack <list>',
      `robust eval: comma list of ${PROBE_ATTACK_NAMES.join(', ')}; blackbox = blackbox-image + blackbox-text; transfer:MODEL_DIR = transfer-<--transfer-attack> crafted on MODEL_DIR`,
    )
    .option('--eps <list>', 'image budgets in /255 units (L-inf), e.g. 1,2,4,8', numberListFlag, [2])
    .option('--steps <n>', 'PGD steps', intFlag(0), 10)
    .option('--step-size <x>', 'PGD step size in /255 units (default max(eps/4, 0.25): 0.5/255 at eps 2)', numberFlag({ min: 0 }))
    .option('--words <n>', 'words changed per caption', intFlag(0), 1)
    .option('--text-labels <name>', TEXT_LABELS_HELP, choiceFlag(TEXT_LABEL_CHOICES), 'none')
    .option('--side <side>', 'query: only queries adversarial (a live index); both: queries and gallery (the papers)', choiceFlag(['query', 'both'] as const), 'query')
    .option('--goal-k <n>', 'attack goal: every gold item leaves the top-K (default 10, the largest reported K)', intFlag(1), 10)
    .option('--surrogate <dir>', 'model transfer-* attacks are crafted on (transfer:DIR in --attack says the same)')
    .option('--limit <n>', 'robust eval on the first N images of the split (and their captions)', intFlag(1))
    .option('--seed <n>', 'attack seed', intFlag(0), 0)
    .option('--chunk <n>', 'images per attack chunk (part of the protocol: seeds are per chunk)', intFlag(1), 64)
    .option('--queries <n>', 'black-box query budget per image', intFlag(1), 500)
    .option('--text-queries <n>', 'black-box query budget per caption', intFlag(1), 100)
    .option('--transfer-attack <name>', 'recipe crafted on a transfer surrogate', choiceFlag(['pgd', 'coattack', 'sga'] as const), 'sga')
    .option('--examples <n>', 'adversarial examples in the HTML report', intFlag(0), 4)
    .option('--resamples <n>', 'bootstrap resamples', intFlag(1), 1000)
    .option('--no-sanity', 'skip the sanity checks')
    .option('--md <file>', 'write a Markdown report (with --attack)')
    .option('--html <file>', 'write a self-contained HTML report (with --attack)')
    .option('--fail-below <bars>', 'with --attack: exit 3 when a figure is below its bar, e.g. robust.tr.r1=30,robust.ir.r1=30')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.attack) {
        process.exitCode = await robustAction(o);
        return;
      }
      if (o.failBelow || o.surrogate) throw new Error('--fail-below and --surrogate need --attack');
      if (o.md || o.html || o.limit !== undefined) throw new Error('--md, --html and --limit need --attack (the clean eval writes --json over the whole split)');
      if (o.textLabels !== 'none') throw new Error('--text-labels constrains the text attacks: it needs --attack');
      const config = loadConfig({ overrides: { backend: o.backend, threads: o.threads, data: { file: o.data, imagesDir: o.images, onBadRow: o.onBadRow } } });
      const [{ initBackend }, { loadArtifact }, { Encoder }, { evaluateClean, formatCleanSummary }, { exportSims }, { loadSplit }] = await Promise.all([
        import('../../engine/backend.js'),
        import('../../model/artifact.js'),
        import('../../model/encoder.js'),
        import('../../eval/evaluate.js'),
        import('../../eval/export-sims.js'),
        import('../../data/split.js'),
      ]);
      await initBackend(config.backend, { threads: config.threads });
      const modelDir = resolveModelDir(o.model);
      const { model, tokenizer, manifest } = await loadArtifact(modelDir);
      const encoder = new Encoder(model, tokenizer, manifest);
      const split = await loadSplit(config, o.split, encoder.model.config, Boolean(o.quiet));
      if (split.count === 0) throw new Error(`${o.data} has no rows in split "${o.split}"`);
      const result = await evaluateClean(encoder, split);
      process.stdout.write(`${formatCleanSummary(result.summary)}\n`);
      if (o.exportSims) {
        mkdirSync(dirname(o.exportSims), { recursive: true });
        const files = await exportSims(o.exportSims, result.sims, split.count, split.captions.length, split.captionToImage, split.imageToCaptions);
        process.stderr.write(`similarities written to ${files.json} and ${files.bin}\n`);
      }
      if (o.json) {
        mkdirSync(dirname(o.json), { recursive: true });
        const s = result.summary;
        const report = {
          model: manifest.id,
          data: o.data,
          split: o.split,
          clean: { tr: s.tr, ir: s.ir, ...(s.semantic ? { semantic: s.semantic } : {}) },
          nImages: s.nImages,
          nTexts: s.nTexts,
          protocol: s.protocol,
          seconds: s.seconds,
        };
        writeFileSync(o.json, JSON.stringify(report, null, 2) + '\n');
        process.stderr.write(`results written to ${o.json}\n`);
      }
      model.dispose();
    });
}

interface RobustFlags {
  model: string;
  data: string;
  split: string;
  images?: string;
  json?: string;
  md?: string;
  html?: string;
  backend?: 'auto' | 'tensorflow' | 'wasm' | 'cpu';
  threads?: number;
  onBadRow?: 'fail' | 'skip';
  quiet?: boolean;
  attack: string;
  eps: number[];
  steps: number;
  stepSize?: number;
  words: number;
  textLabels: TextLabelChoice;
  side: 'query' | 'both';
  goalK: number;
  surrogate?: string;
  failBelow?: string;
  limit?: number;
  seed: number;
  chunk: number;
  queries: number;
  textQueries: number;
  transferAttack: 'pgd' | 'coattack' | 'sga';
  examples: number;
  resamples: number;
  sanity: boolean;
}

/** what the old attack names of `--attack` and the shared budget flags make of a suite */
export interface EvalSuiteFlags {
  eps: readonly number[];
  steps: number;
  stepSize?: number;
  words: number;
  queries: number;
  textQueries: number;
  transferAttack: 'pgd' | 'coattack' | 'sga';
  surrogate?: string;
}

/**
 * `--attack pgd,text,blackbox,transfer:DIR` with `--eps 2,4`: one spec per attack and eps (an attack without an
 * image budget runs once), each budget flag going only to the attacks that take it. Returns the transfer surrogate
 * directory when one is named; throws naming the attack that is unknown or needs a surrogate.
 */
export function evalSuite(list: string, f: EvalSuiteFlags): { specs: ProbeAttackSpec[]; surrogate?: string } {
  let surrogate = f.surrogate;
  const specs: ProbeAttackSpec[] = [];
  const items = list.split(',').map((x) => x.trim()).filter(Boolean);
  if (items.length === 0) throw new Error('--attack: no attack listed');
  for (const item of items) {
    let names: string[];
    if (item.startsWith('transfer:')) {
      const dir = item.slice('transfer:'.length).trim();
      if (!dir) throw new Error(`--attack: '${item}' names no model (transfer:MODEL_DIR)`);
      if (surrogate !== undefined && surrogate !== dir) throw new Error(`--attack: one transfer surrogate per run (${surrogate} and ${dir})`);
      surrogate = dir;
      names = [`transfer-${f.transferAttack}`];
    } else names = item === 'blackbox' ? ['blackbox-image', 'blackbox-text'] : [item];
    for (const name of names) {
      if (!(name in PROBE_ATTACKS)) throw new Error(`--attack: unknown attack '${name}' (expected one of: ${[...PROBE_ATTACK_NAMES, 'blackbox', 'transfer:MODEL_DIR'].join(', ')})`);
      if (PROBE_ATTACKS[name as ProbeAttackName].threatModel === 'transfer' && surrogate === undefined) throw new Error(`--attack: ${name} needs a surrogate model (--surrogate DIR, or transfer:DIR)`);
      specs.push(...specsAtEachEps(name, f.eps, { steps: f.steps, stepSize: f.stepSize, maxWordsChanged: f.words, maxQueries: name === 'blackbox-text' ? f.textQueries : f.queries }));
    }
  }
  return { specs, ...(surrogate !== undefined ? { surrogate } : {}) };
}

/**
 * `manyfold eval --attack ...`: robust recall of a model on a split (the probe runner over the in-memory source,
 * with sanity checks and adversarial examples), reports in JSON / Markdown / HTML. Returns the exit code: 0, or 3
 * when a --fail-below bar is not met.
 */
async function robustAction(o: RobustFlags): Promise<number> {
  const config = loadConfig({ overrides: { backend: o.backend, threads: o.threads, data: { file: o.data, imagesDir: o.images, onBadRow: o.onBadRow } } });
  const { specs, surrogate: surrogateDir } = evalSuite(o.attack, o);
  const bars = o.failBelow ? parseFailBelow(o.failBelow) : [];
  const [{ initBackend }, { loadArtifact }, { Encoder }, { evaluateRobust }, { renderExamplesHtml }, { loadSplit }, { createProgress }] = await Promise.all([
    import('../../engine/backend.js'),
    import('../../model/artifact.js'),
    import('../../model/encoder.js'),
    import('../../eval/robust/evaluate.js'),
    import('../../eval/robust/examples.js'),
    import('../../data/split.js'),
    import('../../util/progress.js'),
  ]);
  const backend = await initBackend(config.backend, { threads: config.threads });
  const { model, tokenizer, manifest } = await loadArtifact(resolveModelDir(o.model));
  const encoder = new Encoder(model, tokenizer, manifest);
  const sur = surrogateDir !== undefined ? await loadArtifact(resolveModelDir(surrogateDir)) : undefined;
  try {
    const split = await loadSplit(config, o.split, encoder.model.config, Boolean(o.quiet));
    if (split.count === 0) throw new Error(`${o.data} has no rows in split "${o.split}"`);
    const method = typeof manifest.training.method === 'string' ? manifest.training.method : undefined;
    let bar: ReturnType<typeof createProgress> | undefined;
    const started = performance.now();
    const { report, examples } = await evaluateRobust(encoder, split, {
      attacks: specs,
      limit: o.limit,
      seed: o.seed,
      chunkImages: o.chunk,
      goalK: o.goalK,
      resamples: o.resamples,
      textLabels: textLabelLexicon(o.textLabels),
      gallery: o.side === 'both' ? 'attacked' : 'clean',
      ...(sur ? { surrogate: { encoder: sur.model, tokenizer: sur.tokenizer, id: sur.manifest.id } } : {}),
      examples: o.examples,
      sanity: o.sanity,
      defended: method === undefined ? undefined : method !== 'clean',
      onProgress: (p) => (bar ??= createProgress('robust eval', p.total, { quiet: o.quiet })).update(p.done, { stage: p.stage }),
    });
    bar?.stop();
    process.stderr.write(`backend ${backend.name}; ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    const command = `manyfold eval ${process.argv.slice(3).join(' ')}`;
    process.stdout.write(renderRobustMarkdown(report, { command }));
    const put = async (file: string, text: string) => {
      await writeFileAtomic(file, text);
      process.stderr.write(`report written to ${file}\n`);
    };
    if (o.json) await put(o.json, JSON.stringify({ ...report, model: manifest.id, data: o.data, split: o.split, backend: backend.name, command }, null, 2) + '\n');
    if (o.md) await put(o.md, renderRobustMarkdown(report, { command }));
    if (o.html) await put(o.html, renderRobustHtml(report, `Robust recall of ${manifest.id} on ${o.split}`, { command, sections: [await renderExamplesHtml(examples)] }));
    if (report.sanity.warnings > 0) process.stderr.write(`${report.sanity.warnings} sanity warning(s): see the report\n`);
    const failed = checkBars(report, bars);
    for (const f of failed) process.stderr.write(`below the bar: ${f}\n`);
    return failed.length ? EXIT_BARS_FAILED : 0;
  } finally {
    model.dispose();
    sur?.model.dispose();
  }
}
