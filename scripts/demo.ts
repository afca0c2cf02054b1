/**
 * `npm run demo`: the main job on the embedded default, end to end on one machine.
 *   1. generate the `scenes` benchmark (deterministic by seed; reused when already there)
 *   2. train the tiny dual encoder on it (resumable: rerunning continues or reuses the finished run)
 *   3. evaluate clean retrieval on the test split and print R@1/5/10 for both directions
 * Flags: --data DIR (default data/scenes), --out DIR (default runs/demo), --epochs N, --train N, --seed S,
 *        --backend auto|tensorflow|wasm|cpu
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfig } from '../src/config.js';
import { generateScenes, SCENES_JSON } from '../src/data/scenes/generate.js';
import { formatCleanSummary } from '../src/eval/evaluate.js';
import { createProgress } from '../src/util/progress.js';
import { CHECKPOINT_FILE } from '../training/trainer.js';
import { runTraining } from '../training/run.js';

/** Demo defaults, chosen so that `npm ci && npm run demo` finishes in under 10 minutes on 2 cores. */
export const DEMO_DEFAULTS = { train: 3000, val: 100, test: 200, epochs: 12, seed: 0 } as const;

const flagsSchema = z
  .object({
    data: z.string().default('data/scenes'),
    out: z.string().default('runs/demo'),
    epochs: z.coerce.number().int().positive().default(DEMO_DEFAULTS.epochs),
    train: z.coerce.number().int().positive().default(DEMO_DEFAULTS.train),
    seed: z.coerce.number().int().min(0).default(DEMO_DEFAULTS.seed),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  })
  .strict();

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      epochs: { type: 'string' },
      train: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
    },
    strict: true,
  });
  const parsed = flagsSchema.safeParse(values);
  if (!parsed.success) {
    throw new Error(`bad flag: ${parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const flags = parsed.data;
  const t0 = Date.now();

  // 1. data
  const dataFile = join(flags.data, SCENES_JSON);
  const wanted = { train: flags.train, val: DEMO_DEFAULTS.val, test: DEMO_DEFAULTS.test, seed: flags.seed };
  if (!existsSync(dataFile) || !sameScenes(dataFile, wanted)) {
    const bar = createProgress('scenes', wanted.train + wanted.val + wanted.test);
    const g = await generateScenes({ out: flags.data, ...wanted, onProgress: (done) => bar.update(done) });
    bar.stop();
    process.stderr.write(`generated ${g.counts.train}/${g.counts.val}/${g.counts.test} scenes in ${(g.ms / 1000).toFixed(1)} s -> ${g.file}\n`);
  } else {
    process.stderr.write(`reusing ${dataFile}\n`);
  }

  // 2 + 3. train (resuming whatever is there) and evaluate on test
  const config = loadConfig({ overrides: { backend: flags.backend, seed: flags.seed, data: { file: dataFile }, train: { epochs: flags.epochs } } });
  const resume = existsSync(join(flags.out, CHECKPOINT_FILE));
  const result = await runTraining({ config, out: flags.out, resume, evaluate: true, quiet: false });
  if (!result.test) throw new Error('no test split to evaluate');
  process.stdout.write(`\n${formatCleanSummary(result.test)}\n`);
  process.stdout.write(
    `\nManyfold demo: test R@1 image->text ${result.test.tr.r1.toFixed(1)}  text->image ${result.test.ir.r1.toFixed(1)}` +
      `  (${result.test.nImages} images, ${result.test.nTexts} captions; model ${result.manifest?.id} in ${result.modelDir}; ` +
      `${result.secondsPerEpoch.toFixed(1)} s/epoch; total ${((Date.now() - t0) / 1000).toFixed(0)} s)\n`,
  );
}

/** The generated JSON records its generator settings; regenerate when they differ from what the demo wants. */
function sameScenes(file: string, wanted: { train: number; val: number; test: number; seed: number }): boolean {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { generator?: { seed?: number; counts?: Record<string, number> } };
    const g = j.generator;
    return !!g && g.seed === wanted.seed && g.counts?.train === wanted.train && g.counts?.val === wanted.val && g.counts?.test === wanted.test;
  } catch {
    return false;
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
