import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { BACKEND_KINDS, loadConfig } from '../../config.js';
import { choiceFlag, intFlag, numberFlag, numberListFlag, THREADS_FLAG_HELP } from '../flags.js';
import { TEXT_LABEL_CHOICES, TEXT_LABELS_HELP, textLabelLexicon, type TextLabelChoice } from '../../eval/text-labels.js';

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
    .option('--attack <list>', 'robust eval: comma list of pgd,text,charedit,coattack,sga,blackbox,transfer:MODEL_DIR')
    .option('--eps <list>', 'image budgets in /255 units (L-inf), e.g. 1,2,4,8', numberListFlag, [2])
    .option('--steps <n>', 'PGD steps', intFlag(0), 10)
    .option('--step-size <x>', 'PGD step size in /255 units (default 2.5*eps/steps)', numberFlag({ min: 0 }))
    .option('--words <n>', 'words changed per caption', intFlag(0), 1)
    .option('--text-labels <name>', TEXT_LABELS_HELP, choiceFlag(TEXT_LABEL_CHOICES), 'none')
    .option('--side <side>', 'query: only queries adversarial (live index); both: queries and gallery (papers)', choiceFlag(['query', 'both'] as const), 'query')
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
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      if (o.attack) return robustAction(o);
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
      const result = evaluateClean(encoder, split);
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

/** `manyfold eval --attack ...`: robust recall through evaluateRobust, reports in JSON / Markdown / HTML. */
async function robustAction(o: RobustFlags): Promise<void> {
  const config = loadConfig({ overrides: { backend: o.backend, threads: o.threads, data: { file: o.data, imagesDir: o.images, onBadRow: o.onBadRow } } });
  const [{ initBackend }, { loadArtifact }, { Encoder }, { evaluateRobust }, { writeReports, renderMarkdown }, { loadSplit }, { createProgress }] = await Promise.all([
    import('../../engine/backend.js'),
    import('../../model/artifact.js'),
    import('../../model/encoder.js'),
    import('../../eval/robust.js'),
    import('../../eval/report/index.js'),
    import('../../data/split.js'),
    import('../../util/progress.js'),
  ]);
  const backend = await initBackend(config.backend, { threads: config.threads });
  const modelDir = resolveModelDir(o.model);
  const { model, tokenizer, manifest } = await loadArtifact(modelDir);
  const encoder = new Encoder(model, tokenizer, manifest);
  // transfer:DIR -> surrogate artifacts keyed by DIR
  const attacks = o.attack.split(',').map((a) => a.trim()).filter(Boolean);
  const surrogates: Record<string, InstanceType<typeof Encoder>> = {};
  for (const a of attacks) {
    if (!a.startsWith('transfer:')) continue;
    const dir = a.slice('transfer:'.length);
    if (surrogates[dir]) continue;
    const s = await loadArtifact(resolveModelDir(dir));
    surrogates[dir] = new Encoder(s.model, s.tokenizer, s.manifest);
  }
  try {
    const split = await loadSplit(config, o.split, encoder.model.config, Boolean(o.quiet));
    if (split.count === 0) throw new Error(`${o.data} has no rows in split "${o.split}"`);
    const method = typeof manifest.training.method === 'string' ? manifest.training.method : undefined;
    let bar: ReturnType<typeof createProgress> | undefined;
    let barLabel = '';
    const { report, examples } = await evaluateRobust(encoder, split, {
      attacks,
      eps255: o.eps,
      steps: o.steps,
      stepSize255: o.stepSize,
      words: o.words,
      textLabels: textLabelLexicon(o.textLabels),
      side: o.side,
      limit: o.limit,
      seed: o.seed,
      chunkImages: o.chunk,
      surrogates,
      transferAttack: o.transferAttack,
      blackbox: { imageQueries: o.queries, textQueries: o.textQueries },
      examples: o.examples,
      resamples: o.resamples,
      sanity: o.sanity,
      defended: method === undefined ? undefined : method === 'clean' ? false : true,
      modelName: manifest.id,
      onProgress: (p) => {
        if (o.quiet || p.stage !== 'attack' || !p.label) return;
        if (p.label !== barLabel) {
          bar?.stop();
          barLabel = p.label;
          bar = createProgress(`${p.label} (${p.entriesDone + 1}/${p.entriesTotal})`, p.total);
        }
        bar!.update(p.done);
      },
    });
    bar?.stop();
    process.stderr.write(`backend ${backend.name}; ${report.seconds.toFixed(1)} s\n`);
    process.stdout.write(renderMarkdown(report));
    const command = `manyfold eval ${process.argv.slice(3).join(' ')}`;
    const files = await writeReports(report, examples, { json: o.json, md: o.md, html: o.html }, { command, extraJson: { data: o.data, split: o.split, backend: backend.name } });
    for (const f of files) process.stderr.write(`report written to ${f}\n`);
    if (report.sanity.warnings > 0) process.stderr.write(`${report.sanity.warnings} sanity warning(s): see the report\n`);
  } finally {
    model.dispose();
    for (const s of Object.values(surrogates)) s.model.dispose();
  }
}
