/**
 * The demo's command line and the training configuration it implies, apart from scripts/demo.ts so both can be
 * tested without running the demo.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import { loadConfig, type ManyfoldConfig } from '../src/config.js';

/** Demo defaults, chosen so that `npm ci && npm run demo` finishes in under 10 minutes on 2 cores. */
export const DEMO_DEFAULTS = { train: 3000, val: 100, test: 200, epochs: 12, seed: 0 } as const;

export const demoFlagsSchema = z
  .object({
    data: z.string().default('data/scenes'),
    out: z.string().default('runs/demo'),
    // a training recipe (a config file such as training/recipes/scenes-shape.json); flags override it
    config: z.string().optional(),
    // no default here: without --config the demo trains DEMO_DEFAULTS.epochs, with one the recipe's epochs
    epochs: z.coerce.number().int().positive().optional(),
    train: z.coerce.number().int().positive().default(DEMO_DEFAULTS.train),
    seed: z.coerce.number().int().min(0).default(DEMO_DEFAULTS.seed),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    threads: z.coerce.number().int().min(1).max(64).default(Math.min(2, availableParallelism())),
    port: z.coerce.number().int().min(0).max(65535).default(8080),
    serve: z.boolean().default(Boolean(process.stdout.isTTY)),
  })
  .strict();

export type DemoFlags = z.output<typeof demoFlagsSchema>;

/** `--serve` / `--no-serve` is a switch; every other flag takes a value validated by the schema. */
export function parseDemoArgs(args: string[]): DemoFlags {
  return parseFlags(demoFlagsSchema, { args, booleans: ['serve'] });
}

/**
 * The training configuration of a demo run: the recipe file if one is given, then the demo's own settings
 * (backend, threads, seed, data), then --epochs (or the demo's 12 when there is no recipe). A recipe that does not
 * parse fails here, naming the file, before any data is generated.
 */
export function demoTrainingConfig(flags: DemoFlags, dataFile: string): ManyfoldConfig {
  const epochs = flags.epochs ?? (flags.config ? undefined : DEMO_DEFAULTS.epochs);
  return loadConfig({
    file: flags.config,
    overrides: {
      backend: flags.backend,
      threads: flags.threads,
      seed: flags.seed,
      data: { file: dataFile },
      train: epochs === undefined ? {} : { epochs },
    },
  });
}
