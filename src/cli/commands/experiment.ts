import type { Command } from 'commander';
import { choiceFlag, intFlag, intListFlag, THREADS_FLAG_HELP } from '../flags.js';
import { ROWS } from '../../../training/experiment-rows.js';
import { TEXT_LABEL_CHOICES, TEXT_LABELS_HELP } from '../../eval/text-labels.js';
import { BACKEND_KINDS } from '../../config.js';

export function registerExperimentCommand(program: Command): void {
  program
    .command('experiment')
    .description('the defenses table: train one clean model, fine-tune TeCoA, FARE, MAT and the MAT augmentation variants from it, robust-eval each, write table.{md,json,html} (resumable)')
    .requiredOption('--out <dir>', 'experiment directory (rows already finished there are skipped)')
    .option('--budget <name>', 'quick (< 1 h on 2 cores) | full', choiceFlag(['quick', 'full'] as const), 'quick')
    .option('--seeds <n>', 'repeat the whole table with seeds 0..N-1', intFlag(1), 1)
    .option('--seed <k>', 'run seed k only, or a comma list of seeds (to run seeds in parallel processes; a later run with --seeds N, all rows done, writes the table of every seed, and one with --seed 3,4,5 the table of those seeds)', intListFlag(0))
    .option('--data <file>', 'Karpathy JSON / JSONL (default: generate the scenes set into --out/data)')
    .option('--base <model>', 'use this clean model artifact as the clean row (not trained here); every row fine-tunes from it')
    .option('--augment-cache <file>', "provider cache for cross-modal augmentation on real data ('manyfold augment prepare')")
    .option('--side <side>', 'query | both (see manyfold eval --side)', choiceFlag(['query', 'both'] as const), 'query')
    .option('--only <rows>', `comma list of row ids to run (clean always runs): ${ROWS.filter((r) => !r.base).map((r) => r.id).join(',')}`)
    .option('--fine-tune-epochs <n>', 'override the budget: epochs of every fine-tuned row (quick 4, full 10)', intFlag(1))
    .option('--text-candidates <n>', 'override the budget: WordNet candidates per word in MAT training (default 8; the eval attack scores up to 50)', intFlag(1))
    .option('--text-wir <order>', 'override the budget: word order of MAT training substitutions, random (default) | delete (importance, as the eval attack)', choiceFlag(['random', 'delete'] as const))
    .option('--text-labels <name>', `${TEXT_LABELS_HELP}; applies to MAT training and to every text attack of the eval`, choiceFlag(TEXT_LABEL_CHOICES))
    .option('--backend <name>', `${BACKEND_KINDS.join(' | ')} (docs/gpu.md)`, choiceFlag(BACKEND_KINDS))
    .option('--threads <n>', THREADS_FLAG_HELP, intFlag(1))
    .option('--train-only', 'train the selected rows (and the clean base) without robust eval or table, e.g. in a second process while the first evaluates; a later run without it evaluates them')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const { runExperiment } = await import('../../../training/experiment.js');
      const { files } = await runExperiment({
        out: o.out,
        budget: o.budget,
        seeds: o.seed !== undefined ? Math.max(o.seeds, ...(o.seed as number[]).map((k) => k + 1)) : o.seeds,
        onlySeeds: o.seed,
        data: o.data,
        base: o.base,
        augmentCache: o.augmentCache,
        side: o.side,
        only: o.only ? String(o.only).split(',').map((s: string) => s.trim()) : undefined,
        backend: o.backend,
        threads: o.threads,
        trainOnly: Boolean(o.trainOnly),
        overrides: {
          ...(o.fineTuneEpochs !== undefined ? { fineTuneEpochs: o.fineTuneEpochs } : {}),
          ...(o.textCandidates !== undefined ? { textCandidates: o.textCandidates } : {}),
          ...(o.textWir !== undefined ? { textWir: o.textWir } : {}),
          ...(o.textLabels !== undefined ? { textLabels: o.textLabels } : {}),
        },
        quiet: Boolean(o.quiet),
      });
      if (files.length) process.stderr.write(`wrote ${files.join(', ')}\n`);
    });
}
