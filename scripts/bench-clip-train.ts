/**
 * The training part of `npm run bench:clip`: MAT training steps of an imported CLIP-shaped model, run in a child
 * process of its own (a fresh wasm heap) through the trainer users run (`trainModel`, method mat: a substitution
 * text attack, then PGD on the images against the adversarial captions, then the update). Data: `scenes` images
 * rendered at the model's input size (timing does not depend on the content). The trainer prints its memory
 * estimate first and refuses a run that cannot fit the backend; the refusal is reported as the result.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface TrainStepOptions {
  model: string;
  work: string;
  batch: number;
  freezeBlocks: number;
  threads: number;
}

/** Runs 3 optimizer steps (the first is warm-up) and returns the step times, or the trainer's refusal. */
export async function measureTrainStep(o: TrainStepOptions): Promise<Record<string, unknown>> {
  const data = join(o.work, `scenes-224-${o.batch}`);
  if (!existsSync(join(data, 'dataset_scenes.json'))) {
    const { generateScenes } = await import('../src/data/scenes/generate.js');
    await generateScenes({ out: data, train: 3 * o.batch, val: 1, test: 1, size: 224, seed: 0 });
  }
  const out = join(o.work, `train-b${o.batch}-f${o.freezeBlocks}`);
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      '--import', 'tsx', 'src/cli/main.ts', 'train',
      '--data', join(data, 'dataset_scenes.json'), '--out', out, '--init', o.model,
      '--method', 'mat', '--batch', String(o.batch), '--epochs', '1', '--freeze-blocks', String(o.freezeBlocks),
      '--threads', String(o.threads), '--seed', '0', '--overwrite', '--log-steps', '--max-steps', '3',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 },
  );
  const wallSeconds = (performance.now() - t0) / 1000;
  const text = `${r.stdout}\n${r.stderr}`;
  const estimate = text.split('\n').find((l) => /^memory estimate/i.test(l.trim()))?.trim();
  if (r.status !== 0) {
    return { ran: false, batch: o.batch, freezeBlocks: o.freezeBlocks, exit: r.status, estimate, refusal: text.trim().split('\n').slice(-4).join(' | ') };
  }
  // --log-steps: one JSON object per optimizer step on stderr
  const steps: { ms: number; innerMs?: number }[] = [];
  for (const line of r.stderr.split('\n')) {
    if (!line.startsWith('{"step"')) continue;
    const info = JSON.parse(line) as { ms: number; innerMs?: number };
    steps.push({ ms: Math.round(info.ms), innerMs: info.innerMs === undefined ? undefined : Math.round(info.innerMs) });
  }
  const timed = steps.slice(1).map((s) => s.ms).sort((a, b) => a - b);
  return {
    ran: true,
    batch: o.batch,
    freezeBlocks: o.freezeBlocks,
    estimate,
    steps,
    // the middle value, or the mean of the two middle values (with two timed steps: their mean, not the faster one)
    medianStepMsAfterWarmup: timed.length ? (timed[Math.floor((timed.length - 1) / 2)] + timed[Math.floor(timed.length / 2)]) / 2 : null,
    wallSeconds: Math.round(wallSeconds),
  };
}
