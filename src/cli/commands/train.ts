import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig, presetSchema, trainSchema } from '../../config.js';
import { choiceFlag, intFlag, numberFlag } from '../flags.js';

export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description('train a dual encoder; writes checkpoints, metrics.jsonl and the final model artifact to --out/model')
    .requiredOption('--data <file>', 'Karpathy JSON or JSONL manifest')
    .requiredOption('--out <dir>', 'run directory (checkpoint, metrics, model/)')
    .option('--images <dir>', 'image directory (default: relative to the data file)')
    .option('--preset <name>', 'model preset: tiny | small | base', choiceFlag(presetSchema.options))
    .option('--method <name>', 'training method', choiceFlag(trainSchema.shape.method.unwrap().options))
    .option('--epochs <n>', 'epochs', intFlag(1))
    .option('--batch <n>', 'images per batch', intFlag(1))
    .option('--captions-per-image <n>', 'captions sampled per image per step (all positives)', intFlag(1))
    .option('--lr <x>', 'peak learning rate', numberFlag({ min: 0, exclusiveMin: true }))
    .option('--weight-decay <x>', 'AdamW weight decay', numberFlag({ min: 0 }))
    .option('--checkpoint-every <n>', 'checkpoint every N steps', intFlag(1))
    .option('--seed <n>', 'seed for init, batches and sampling', intFlag(0))
    .option('--backend <name>', 'auto | tensorflow | wasm | cpu', choiceFlag(['auto', 'tensorflow', 'wasm', 'cpu'] as const))
    .option('--config <file>', 'JSON config file (flags override it)')
    .option('--on-bad-row <mode>', 'fail | skip', choiceFlag(['fail', 'skip'] as const))
    .option('--resume', 'continue from the checkpoint in --out')
    .option('--no-eval', 'do not evaluate on the test split at the end')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const config = loadConfig({
        file: o.config,
        overrides: {
          backend: o.backend,
          seed: o.seed,
          data: { file: o.data, imagesDir: o.images, onBadRow: o.onBadRow },
          train: {
            preset: o.preset,
            method: o.method,
            epochs: o.epochs,
            batch: o.batch,
            captionsPerImage: o.captionsPerImage,
            lr: o.lr,
            weightDecay: o.weightDecay,
            checkpointEvery: o.checkpointEvery,
          },
        },
      });
      const { runTraining } = await import('../../../training/run.js');
      await runTraining({ config, out: o.out, resume: Boolean(o.resume), evaluate: o.eval !== false, quiet: Boolean(o.quiet) });
      process.stderr.write(`model written to ${join(o.out, 'model')}\n`);
    });
}
