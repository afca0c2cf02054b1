/**
 * The demo's data: the procedural `scenes` benchmark at the counts and seed asked for, generated once and reused
 * while the generated file records the same settings (scripts/demo.ts and scripts/demo-base.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateScenes, SCENES_JSON } from '../src/data/scenes/generate.js';
import { createProgress } from '../src/util/progress.js';

export interface SceneCounts {
  train: number;
  val: number;
  test: number;
  seed: number;
}

/** Generates `scenes` into `dir` unless it already holds exactly these counts and seed; returns the JSON file. */
export async function ensureScenes(dir: string, wanted: SceneCounts): Promise<string> {
  const dataFile = join(dir, SCENES_JSON);
  if (existsSync(dataFile) && sameScenes(dataFile, wanted)) {
    process.stderr.write(`reusing ${dataFile}\n`);
    return dataFile;
  }
  const bar = createProgress('scenes', wanted.train + wanted.val + wanted.test);
  const g = await generateScenes({ out: dir, ...wanted, onProgress: (done) => bar.update(done) });
  bar.stop();
  process.stderr.write(`generated ${g.counts.train}/${g.counts.val}/${g.counts.test} scenes in ${(g.ms / 1000).toFixed(1)} s -> ${g.file}\n`);
  return dataFile;
}

/** The generated JSON records its generator settings; regenerate when they differ from what is wanted. */
function sameScenes(file: string, wanted: SceneCounts): boolean {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { generator?: { seed?: number; counts?: Record<string, number> } };
    const g = j.generator;
    return !!g && g.seed === wanted.seed && g.counts?.train === wanted.train && g.counts?.val === wanted.val && g.counts?.test === wanted.test;
  } catch {
    return false;
  }
}
