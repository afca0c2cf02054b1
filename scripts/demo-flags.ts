/**
 * The demo's command line and the training configurations it implies, apart from scripts/demo.ts so both can be
 * tested without running the demo.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import { loadConfig, type ManyfoldConfig } from '../src/config.js';
import { BUNDLED_BASE_DIR, BASE_RECIPE } from './bundled-base.js';

/**
 * Demo defaults, chosen so that `npm ci && npm run demo` finishes in under 10 minutes on 2 cores. The data counts
 * and the seed are those the bundled base was trained with (BASE_RECIPE).
 */
export const DEMO_DEFAULTS = {
  train: BASE_RECIPE.data.train,
  val: BASE_RECIPE.data.val,
  test: BASE_RECIPE.data.test,
  seed: BASE_RECIPE.seed,
  /** the MAT + N:N fine-tune of the base (its epochs come from here unless --epochs) */
  recipe: 'training/recipes/demo-robust.json',
  /** test items each probe samples: the whole default test split, so both models answer the same queries */
  probeSample: 200,
} as const;

/**
 * The probe suite both models face: 10-step PGD on the image queries at 2/255 (the nightly gate's budget) and at
 * 4/255 (the fine-tune's training budget), and one-word swaps in the captions.
 */
export const DEMO_PROBE_ATTACKS = [
  { name: 'pgd', eps: 2, steps: 10 },
  { name: 'pgd', eps: 4, steps: 10 },
  { name: 'text', maxWordsChanged: 1 },
] as const;

export const demoFlagsSchema = z
  .object({
    data: z.string().default('data/scenes'),
    out: z.string().default('runs/demo'),
    // the pretrained model the demo robustifies; --from-scratch trains one into <out>/base instead
    base: z.string().optional(),
    'from-scratch': z.boolean().default(false),
    // the fine-tune recipe (a config file); flags override it
    config: z.string().default(DEMO_DEFAULTS.recipe),
    // the fine-tune's epochs; no default here: the recipe's unless given
    epochs: z.coerce.number().int().positive().optional(),
    train: z.coerce.number().int().positive().default(DEMO_DEFAULTS.train),
    seed: z.coerce.number().int().min(0).default(DEMO_DEFAULTS.seed),
    'probe-sample': z.coerce.number().int().min(1).max(1000).default(DEMO_DEFAULTS.probeSample),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    threads: z.coerce.number().int().min(1).max(64).default(Math.min(2, availableParallelism())),
    // the base model's server; the robust model's listens on the next port (0 = any free port for both)
    port: z.coerce.number().int().min(0).max(65534).default(8080),
    serve: z.boolean().default(Boolean(process.stdout.isTTY)),
  })
  .strict()
  .refine((f) => !(f.base !== undefined && f['from-scratch']), {
    message: 'give --base DIR (a pretrained model) or --from-scratch (train the base here), not both',
    path: ['base'],
  });

export type DemoFlags = z.output<typeof demoFlagsSchema>;

/** `--serve` / `--no-serve` and `--from-scratch` are switches; every other flag takes a value validated by the schema. */
export function parseDemoArgs(args: string[]): DemoFlags {
  return parseFlags(demoFlagsSchema, { args, booleans: ['serve', 'from-scratch'] });
}

/** the directory of the base model the demo robustifies */
export function demoBaseDir(flags: DemoFlags, fromScratchModelDir: string): string {
  return flags['from-scratch'] ? fromScratchModelDir : (flags.base ?? BUNDLED_BASE_DIR);
}

/**
 * The base's clean training configuration (the bundled base's recipe, BASE_RECIPE): the project defaults with
 * BASE_RECIPE.epochs, this seed and data. `--from-scratch` and `npm run demo:base` both train with it.
 */
export function baseTrainingConfig(opts: { backend: DemoFlags['backend']; threads: number; seed: number }, dataFile: string): ManyfoldConfig {
  return loadConfig({
    overrides: { backend: opts.backend, threads: opts.threads, seed: opts.seed, data: { file: dataFile }, train: { epochs: BASE_RECIPE.epochs } },
  });
}

/**
 * The fine-tune that robustifies the base: the recipe file (MAT + N:N by default), then the demo's own settings
 * (backend, threads, seed, data, the base as `init`), then --epochs. A recipe that does not parse fails here,
 * naming the file, before any data is generated.
 */
export function robustTrainingConfig(flags: DemoFlags, dataFile: string, baseDir: string): ManyfoldConfig {
  return loadConfig({
    file: flags.config,
    overrides: {
      backend: flags.backend,
      threads: flags.threads,
      seed: flags.seed,
      data: { file: dataFile },
      train: { init: baseDir, ...(flags.epochs === undefined ? {} : { epochs: flags.epochs }) },
    },
  });
}
