/**
 * `npm run demo`: the main job on the embedded default, end to end on one machine.
 *   1. generate the `scenes` benchmark (deterministic by seed; reused when already there)
 *   2. train the tiny dual encoder on it (resumable: rerunning continues or reuses the finished run)
 *   3. evaluate clean retrieval on the test split and print R@1/5/10 for both directions
 *   4. serve the model (Hono API, embedded LanceDB), index the test split over HTTP, run one text search, one
 *      image search and a small attack probe against the live index, print the results and the dashboard URL
 * Flags: --data DIR (default data/scenes), --out DIR (default runs/demo), --config FILE (a training recipe, e.g.
 *        training/recipes/scenes-shape.json; flags override it), --epochs N (default 12, or the recipe's), --train N,
 *        --seed S,
 *        --backend auto|tensorflow|wasm|cpu, --threads N (wasm XNNPACK threads; default min(2, cores): the demo
 *        has the machine to itself, where 2 threads make a training step ~1.5x faster), --port N (default 8080;
 *        0 = any), --serve (keep serving after the demo; the default on a terminal), --no-serve (exit after the
 *        demo; the default on a pipe)
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEMO_DEFAULTS, parseDemoArgs, demoTrainingConfig, type DemoFlags } from './demo-flags.js';
import { generateScenes, SCENES_JSON } from '../src/data/scenes/generate.js';
import { createProgress } from '../src/util/progress.js';
import { CHECKPOINT_FILE } from '../training/trainer.js';
import { runTraining } from '../training/run.js';
import { startServer, installSignalHandlers } from '../src/api/server.js';
import { renderRobustMarkdown, type RobustProbeReport } from '../src/eval/robust/index.js';

async function main(): Promise<void> {
  const flags = parseDemoArgs(process.argv.slice(2));
  const t0 = Date.now();
  const dataFile = join(flags.data, SCENES_JSON);
  const config = demoTrainingConfig(flags, dataFile);

  // 1. data
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
  const resume = existsSync(join(flags.out, CHECKPOINT_FILE));
  const result = await runTraining({ config, out: flags.out, resume, evaluate: true, quiet: false });
  if (!result.test) throw new Error('no test split to evaluate');
  process.stdout.write(
    `\nManyfold demo: test R@1 image->text ${result.test.tr.r1.toFixed(1)}  text->image ${result.test.ir.r1.toFixed(1)}` +
      `  (${result.test.nImages} images, ${result.test.nTexts} captions; model ${result.manifest?.id} in ${result.modelDir}; ` +
      `${Number.isFinite(result.secondsPerEpoch) ? `${result.secondsPerEpoch.toFixed(1)} s/epoch; ` : ''}total ${((Date.now() - t0) / 1000).toFixed(0)} s)\n`,
  );

  // 4. the product: serve, index, search, probe
  await serveAndProbe(flags, dataFile, result.modelDir);
}

interface SearchResult {
  results: { id: string; score: number; metadata?: Record<string, unknown>; caption?: string }[];
  model: string;
}

/** true once the demo hands over to the server (which then runs until a signal) */
let serving = false;

async function serveAndProbe(flags: DemoFlags, dataFile: string, modelDir: string): Promise<void> {
  const key = `demo-${flags.seed}-admin-key`;
  const running = await startServer({
    modelDir,
    dataDir: join(flags.out, 'serve'),
    port: flags.port,
    host: '127.0.0.1',
    env: { ...process.env, MANYFOLD_API_KEYS: `${key}=admin+search+write+probe`, MANYFOLD_LOG_LEVEL: process.env.MANYFOLD_LOG_LEVEL ?? 'warn' },
  });
  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${running.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} -> ${res.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  };
  try {
    // index the test split: image + captions per item, metadata from the scene graph
    const json = JSON.parse(readFileSync(dataFile, 'utf8')) as {
      images: { filename: string; split: string; sentences: { raw: string }[]; scene?: { objects: { shape: string; color: string }[] } }[];
    };
    const test = json.images.filter((i) => i.split === 'test');
    const items = await Promise.all(
      test.map(async (i) => ({
        id: i.filename.replace(/\.png$/, ''),
        image: (await readFile(join(flags.data, 'images', i.filename))).toString('base64'),
        captions: i.sentences.map((s) => s.raw),
        metadata: { split: 'test', objects: i.scene?.objects.length ?? 0, colors: [...new Set(i.scene?.objects.map((o) => o.color) ?? [])] },
      })),
    );
    const t0 = Date.now();
    for (let k = 0; k < items.length; k += 100) await api('POST', '/v1/items', { items: items.slice(k, k + 100) });
    process.stdout.write(`\nindexed ${items.length} test items into LanceDB in ${((Date.now() - t0) / 1000).toFixed(1)} s (${running.url})\n`);

    const query = test[1].sentences[0].raw;
    const textHits = await api<SearchResult>('POST', '/v1/search', { text: query, target: 'images', topK: 5 });
    process.stdout.write(`\ntext search "${query}" -> images (model ${textHits.model}):\n`);
    for (const r of textHits.results) process.stdout.write(`  ${r.id.padEnd(16)} ${r.score.toFixed(3)}${r.id === items[1].id ? '  <- gold' : ''}\n`);

    const imageHits = await api<SearchResult>('POST', '/v1/search', { image: items[2].image, target: 'texts', topK: 5 });
    process.stdout.write(`\nimage search ${items[2].id} -> captions:\n`);
    for (const r of imageHits.results) {
      process.stdout.write(`  ${r.id.padEnd(16)} ${r.score.toFixed(3)}  ${r.caption ?? ''}${r.id === items[2].id ? '  <- gold' : ''}\n`);
    }

    const { probe } = await api<{ probe: { id: string } }>('POST', '/v1/probes', {
      sample: 16,
      seed: flags.seed,
      attacks: [{ name: 'pgd', eps: 2, steps: 10 }, { name: 'text' }, { name: 'coattack', eps: 2, steps: 10 }],
    });
    const bar = createProgress('probe %', 100);
    let status: { status: string; progress: { done: number; total: number; stage: string }; report?: unknown; error?: string };
    for (;;) {
      status = (await api<{ probe: typeof status }>('GET', `/v1/probes/${probe.id}`)).probe;
      bar.update(status.progress.total ? Math.round((100 * status.progress.done) / status.progress.total) : 0, { stage: status.progress.stage });
      if (!['queued', 'running'].includes(status.status)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    bar.stop();
    if (status.status !== 'succeeded') throw new Error(`probe ${probe.id} ${status.status}: ${status.error ?? ''}`);
    process.stdout.write(`\nprobe ${probe.id} (16 sampled items, queries attacked, gallery clean):\n${summarizeProbe(status.report)}\n`);
    process.stdout.write(`  report: ${running.url}/v1/probes/${probe.id}?format=html\n`);
    process.stdout.write(`\ndashboard: ${running.url}/dashboard   (API key: ${key})\nAPI reference: ${running.url}/docs\n`);
    if (flags.serve) {
      process.stdout.write('serving; Ctrl-C to stop\n');
      installSignalHandlers(running);
      serving = true;
      return;
    }
  } catch (e) {
    await running.close();
    throw e;
  }
  await running.close();
}

/** The probe report as the release gate shows it: R@1/5/10 with intervals per attack and direction, robust worst case. */
function summarizeProbe(report: unknown): string {
  const r = report as RobustProbeReport | undefined;
  if (r?.format !== 'manyfold-robust/1') return JSON.stringify(report).slice(0, 2000);
  return renderRobustMarkdown(r);
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

main()
  .then(() => {
    // XNNPACK worker threads keep the event loop alive: end the process unless it is serving
    if (!serving) process.exit(0);
  })
  .catch((e: unknown) => {
    process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
