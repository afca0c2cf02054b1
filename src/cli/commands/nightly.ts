/**
 * `manyfold nightly`: retrain -> robust eval gate -> publish -> blue/green re-index -> activate -> smoke, with
 * automatic rollback; idempotent per run id (state file). Prints the machine-readable summary (JSON) on stdout
 * and exits with the documented code (docs/operations.md): 0 deployed / already active / dry run, 10 rejected by
 * the gate, 11 rolled back, 12 rollback failed, 1 failed (rerun resumes), 2 usage or configuration error.
 */
import type { Command } from 'commander';
import { BACKEND_KINDS, ConfigError, loadConfig } from '../../config.js';
import { EXIT, NightlyUsageError, runNightly } from '../../nightly/job.js';
import { choiceFlag, intFlag, numberFlag } from '../flags.js';
import { destinationFlag, endpointFlag } from './publish.js';

export function registerNightlyCommand(program: Command): void {
  program
    .command('nightly')
    .description('retrain, gate on robust recall against the active model, deploy with blue/green re-index, smoke, roll back on failure')
    .option('--data <file>', 'data set (Karpathy JSON or JSONL manifest): training and the held-out gate split')
    .option('--images <dir>', 'image directory (default: relative to the data file)')
    .option('--config <file>', 'JSON config file (train.*, nightly.* sections)')
    .option('--server <url>', 'the running API (nightly.serverUrl)')
    .option('--key <key>', 'admin API key (nightly.adminKey; or env MANYFOLD_ADMIN_KEY)')
    .option('--publish-dir <dir>', "directory the server scans for artifacts, e.g. its <data>/models (nightly.publishDir)")
    .option('--publish-to <s3-url>', 'also upload the artifact to S3 / R2 and list it in the bucket catalogue that Lambda and the Worker serve (as manyfold publish)', destinationFlag('--publish-to'))
    .option('--publish-endpoint <url>', 'S3 API endpoint of --publish-to (R2, MinIO)', endpointFlag('--publish-endpoint'))
    .option('--publish-region <name>', 'region of --publish-to (R2: auto)')
    .option('--models <dirs>', 'comma-separated extra directories holding the active model artifact')
    .option('--state-dir <dir>', 'run state directory (nightly.stateDir, default runs/nightly)')
    .option('--run-id <id>', 'run id (default: today, UTC): a rerun with the same id resumes')
    .option('--candidate <dir>', 'promote this artifact instead of training')
    .option('--preset <name>', 'model preset for training', choiceFlag(['tiny', 'small', 'base'] as const))
    .option('--epochs <n>', 'training epochs', intFlag(1))
    .option('--batch <n>', 'training batch', intFlag(1))
    .option('--init <model>', 'fine-tune from this artifact')
    .option('--method <name>', 'clean | tecoa | fare | mat', choiceFlag(['clean', 'tecoa', 'fare', 'mat'] as const))
    .option('--eval-limit <n>', 'held-out images in the gate (nightly.evalLimit)', intFlag(1))
    .option('--robust-tolerance <x>', 'the paired interval of the robust R@1 change must lie above -x and be at most +-x wide, points (nightly.robustR1Tolerance)', numberFlag({ min: 0, exclusiveMin: true }))
    .option('--init-from <what>', 'active (fine-tune the production model, default) | none (nightly.initFrom)', choiceFlag(['active', 'none'] as const))
    .option('--clean-max-drop <x>', 'allowed clean R@1 drop, points (nightly.cleanR1MaxDrop)', numberFlag({ min: 0 }))
    .option('--backend <name>', `${BACKEND_KINDS.join(' | ')} (docs/gpu.md)`, choiceFlag(BACKEND_KINDS))
    .option('--seed <n>', 'training seed', intFlag(0))
    .option('--dry-run', 'train, evaluate and gate only: never publish or touch the server')
    .action(async (o) => {
      let code: number;
      try {
        const config = loadConfig({
          file: o.config,
          env: process.env,
          overrides: {
            backend: o.backend,
            seed: o.seed,
            data: { file: o.data, imagesDir: o.images },
            train: { preset: o.preset, epochs: o.epochs, batch: o.batch, init: o.init, method: o.method },
            nightly: {
              serverUrl: o.server,
              adminKey: o.key ?? process.env.MANYFOLD_ADMIN_KEY,
              publishDir: o.publishDir,
              stateDir: o.stateDir,
              evalLimit: o.evalLimit,
              initFrom: o.initFrom,
              robustR1Tolerance: o.robustTolerance,
              cleanR1MaxDrop: o.cleanMaxDrop,
            },
          },
        });
        const training = await import('../../../training/run.js');
        const crash = process.env.MANYFOLD_NIGHTLY_CRASH_AFTER as never;
        const summary = await runNightly({
          config,
          training,
          ...(o.runId ? { runId: o.runId } : {}),
          ...(o.candidate ? { candidateDir: o.candidate } : {}),
          ...(o.models ? { modelDirs: String(o.models).split(',') } : {}),
          ...(o.publishTo ? { publishTo: { to: o.publishTo as string, ...(o.publishEndpoint ? { endpoint: o.publishEndpoint as string } : {}), ...(o.publishRegion ? { region: o.publishRegion as string } : {}) } } : {}),
          ...(crash ? { crashAfter: crash } : {}),
          dryRun: Boolean(o.dryRun),
        });
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        code = summary.exitCode;
      } catch (e) {
        if (e instanceof ConfigError || e instanceof NightlyUsageError) {
          process.stderr.write(`manyfold nightly: ${(e as Error).message}\n`);
          code = EXIT.usage;
        } else if ((e as Error).name === 'CrashInjected') {
          process.stderr.write(`manyfold nightly: ${(e as Error).message}\n`);
          code = EXIT.crashInjected;
        } else throw e;
      }
      process.exit(code);
    });
}
