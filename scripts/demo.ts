/**
 * `npm run demo`: the product end to end on one machine, from the bundled pretrained base to a robust model.
 *   1. generate the `scenes` benchmark (deterministic by seed; reused when already there)
 *   2. check the bundled tiny base (models/tiny-scenes-base: SHA256SUMS and the manifest's hashes), or with
 *      --from-scratch train that base here by its recipe (clean, 12 epochs)
 *   3. robustify it: MAT + N:N fine-tune from the base (training/recipes/demo-robust.json; resumable)
 *   4. serve the base and the robust model side by side (two Hono servers, embedded LanceDB each: the API probes the
 *      model it serves), index the test split into both over HTTP, and probe both through `POST /v1/probes` with
 *      the same sampled queries, seed and attacks (PGD on images, one-word swaps in captions)
 *   5. print clean and robust R@1 of both models with bootstrap intervals side by side, and the dashboards
 * Flags: --data DIR (default data/scenes), --out DIR (default runs/demo), --base DIR (default the bundled base),
 *        --from-scratch, --config FILE (the fine-tune recipe; flags override it), --epochs N (the fine-tune's;
 *        default the recipe's), --train N, --seed S, --probe-sample N (default 200: every test item),
 *        --backend auto|tensorflow|wasm|cpu, --threads N (wasm XNNPACK threads; default min(2, cores): the demo
 *        has the machine to itself), --port N (the base's server; the robust model's is N+1; 0 = any free ports),
 *        --serve (keep serving after the demo; the default on a terminal), --no-serve (exit after the demo; the
 *        default on a pipe)
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEMO_DEFAULTS, DEMO_PROBE_ATTACKS, baseTrainingConfig, demoBaseDir, parseDemoArgs, robustTrainingConfig, type DemoFlags } from './demo-flags.js';
import { ensureScenes } from './demo-data.js';
import { verifyBundledBase } from './bundled-base.js';
import { SCENES_JSON } from '../src/data/scenes/generate.js';
import { readManifest } from '../src/model/artifact.js';
import { createProgress } from '../src/util/progress.js';
import { CHECKPOINT_FILE } from '../training/trainer.js';
import { runTraining } from '../training/run.js';
import { startServer, installSignalHandlers, type RunningServer } from '../src/node/server.js';
import type { DirectionFigures, RobustProbeReport } from '../src/eval/robust/index.js';
import type { ConfidenceInterval } from '../src/eval/bootstrap.js';

/** seconds per stage, for the summary */
const timings: Record<string, number> = {};
async function timed<T>(stage: string, work: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await work();
  } finally {
    timings[stage] = Math.round((Date.now() - t) / 100) / 10;
  }
}

async function main(): Promise<void> {
  const flags = parseDemoArgs(process.argv.slice(2));
  const t0 = Date.now();
  const dataFile = join(flags.data, SCENES_JSON);
  const scratchOut = join(flags.out, 'base');
  const baseDir = demoBaseDir(flags, join(scratchOut, 'model'));
  // parsed before any work, so a bad recipe fails at once naming its file
  const robustConfig = robustTrainingConfig(flags, dataFile, baseDir);

  // 1. data
  await timed('data', () => ensureScenes(flags.data, { train: flags.train, val: DEMO_DEFAULTS.val, test: DEMO_DEFAULTS.test, seed: flags.seed }));

  // 2. the base: the bundled one, checked, or one trained here
  await timed('base', async () => {
    if (flags['from-scratch']) {
      const config = baseTrainingConfig(flags, dataFile);
      const r = await runTraining({ config, out: scratchOut, resume: existsSync(join(scratchOut, CHECKPOINT_FILE)), evaluate: true, quiet: false });
      if (!r.finished) throw new Error(`the base's training in ${scratchOut} did not finish`);
    } else {
      const m = await verifyBundledBase(baseDir);
      process.stderr.write(`base ${m.id} (${baseDir}): SHA256SUMS and manifest hashes verified\n`);
    }
  });
  const baseManifest = await readManifest(baseDir);

  // 3. robustify: MAT + N:N fine-tune from the base (resuming whatever is there)
  const robustOut = join(flags.out, 'robust');
  const robust = await timed('robustify', () =>
    runTraining({ config: robustConfig, out: robustOut, resume: existsSync(join(robustOut, CHECKPOINT_FILE)), evaluate: false, quiet: false }),
  );
  if (!robust.finished || !robust.manifest) throw new Error(`the fine-tune in ${robustOut} did not finish`);
  process.stdout.write(
    `\nrobustified ${baseManifest.id} -> ${robust.manifest.id} (${robustConfig.train.method} + ${robustConfig.train.augment.join(', ') || 'no augmentation'}, ` +
      `${robustConfig.train.epochs} epochs, train eps ${robustConfig.train.trainEps}/255; ${timings.robustify.toFixed(0)} s)\n`,
  );

  // 4 + 5. the product: serve both, index, probe both
  await serveAndProbe(flags, dataFile, [
    { label: 'base', modelDir: baseDir, id: baseManifest.id },
    { label: 'robust', modelDir: robust.modelDir, id: robust.manifest.id },
  ], t0);
}

interface DemoModel {
  label: 'base' | 'robust';
  modelDir: string;
  id: string;
}

interface Served extends DemoModel {
  running: RunningServer;
  api: <T>(method: string, path: string, body?: unknown) => Promise<T>;
}

interface SearchResult {
  results: { id: string; score: number }[];
  model: string;
}

type ProbeStatus = { id: string; status: string; progress: { done: number; total: number; stage: string }; report?: unknown; error?: string };

/** true once the demo hands over to the servers (which then run until a signal) */
let serving = false;

async function serveAndProbe(flags: DemoFlags, dataFile: string, models: DemoModel[], t0: number): Promise<void> {
  const key = `demo-${flags.seed}-admin-key`;
  const env = { ...process.env, MANYFOLD_API_KEYS: `${key}=admin+search+write+probe`, MANYFOLD_LOG_LEVEL: process.env.MANYFOLD_LOG_LEVEL ?? 'warn' };
  const served: Served[] = [];
  try {
    for (const [i, m] of models.entries()) {
      // a fresh store per run: an earlier run's items, probes and active model would otherwise come back
      const dataDir = join(flags.out, `serve-${m.label}`);
      rmSync(dataDir, { recursive: true, force: true });
      const running = await startServer({ modelDir: m.modelDir, dataDir, port: flags.port === 0 ? 0 : flags.port + i, host: '127.0.0.1', env });
      served.push({ ...m, running, api: client(running.url, key) });
    }

    // index the test split into both: image + captions per item, metadata from the scene graph
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
    await timed('index', async () => {
      for (const s of served) for (let k = 0; k < items.length; k += 100) await s.api('POST', '/v1/items', { items: items.slice(k, k + 100) });
    });
    process.stdout.write(`\nindexed ${items.length} test items into each model's LanceDB in ${timings.index.toFixed(1)} s\n`);

    const query = test[1].sentences[0].raw;
    process.stdout.write(`\ntext search "${query}" -> images (gold ${items[1].id}):\n`);
    for (const s of served) {
      const hits = await s.api<SearchResult>('POST', '/v1/search', { text: query, target: 'images', topK: 3 });
      const shown = hits.results.map((r) => `${r.id} ${r.score.toFixed(3)}${r.id === items[1].id ? ' <- gold' : ''}`).join(', ');
      process.stdout.write(`  ${s.label.padEnd(6)} ${hits.model}: ${shown}\n`);
    }

    // the same probe request to both: same sampled items (seeded), same attacks, same bootstrap seed
    const request = { sample: Math.min(flags['probe-sample'], items.length), seed: flags.seed, attacks: DEMO_PROBE_ATTACKS };
    const reports: { model: Served; probeId: string; report: RobustProbeReport }[] = [];
    await timed('probes', async () => {
      for (const s of served) reports.push({ model: s, ...(await probe(s, request)) });
    });
    process.stdout.write(`\n${sideBySide(reports)}\n`);
    const seconds = (Date.now() - t0) / 1000;
    process.stdout.write(`\ndemo took ${seconds.toFixed(0)} s (${Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')})\n`);
    await writeFile(join(flags.out, 'demo-summary.json'), JSON.stringify(summaryJson(flags, request, reports, seconds), null, 2));
    process.stdout.write(`figures: ${join(flags.out, 'demo-summary.json')}\n`);
    for (const r of reports) {
      process.stdout.write(`\n${r.model.label} (${r.model.id}): dashboard ${r.model.running.url}/dashboard  probe report ${r.model.running.url}/v1/probes/${r.probeId}?format=html  API ${r.model.running.url}/docs\n`);
    }
    process.stdout.write(`API key for both: ${key}\n`);
    if (flags.serve) {
      process.stdout.write('serving both; Ctrl-C to stop\n');
      // one handler for both servers: a signal closes both gracefully, then exits
      installSignalHandlers({ ...served[0].running, close: async () => void (await Promise.all(served.map((s) => s.running.close()))) });
      serving = true;
      return;
    }
  } catch (e) {
    await Promise.all(served.map((s) => s.running.close()));
    throw e;
  }
  await Promise.all(served.map((s) => s.running.close()));
}

function client(url: string, key: string): Served['api'] {
  return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${url}${path} -> ${res.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  };
}

async function probe(s: Served, request: unknown): Promise<{ probeId: string; report: RobustProbeReport }> {
  const { probe: started } = await s.api<{ probe: { id: string } }>('POST', '/v1/probes', request);
  const bar = createProgress(`probe ${s.label} %`, 100);
  let status: ProbeStatus;
  for (;;) {
    status = (await s.api<{ probe: ProbeStatus }>('GET', `/v1/probes/${started.id}`)).probe;
    bar.update(status.progress.total ? Math.round((100 * status.progress.done) / status.progress.total) : 0, { stage: status.progress.stage });
    if (!['queued', 'running'].includes(status.status)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  bar.stop();
  const report = status.report as RobustProbeReport | undefined;
  if (status.status !== 'succeeded' || report?.format !== 'manyfold-robust/1') throw new Error(`probe ${started.id} of the ${s.label} model ${status.status}: ${status.error ?? 'no manyfold-robust/1 report'}`);
  if (report.partial) throw new Error(`probe ${started.id} of the ${s.label} model is partial: ${report.error ?? ''}`);
  return { probeId: started.id, report };
}

const r1 = (d: DirectionFigures | undefined): ConfidenceInterval | undefined => d?.recall.r1;
const fmtCi = (c: ConfidenceInterval | undefined) => (c ? `${c.mean.toFixed(1)} [${c.lo.toFixed(1)}, ${c.hi.toFixed(1)}]` : '-');

function attackLabel(a: RobustProbeReport['attacks'][number]): string {
  const eps = a.config.eps as number | undefined;
  const words = a.config.maxWordsChanged as number | undefined;
  return `${a.name}${eps !== undefined ? ` eps ${Math.round(eps * 255 * 100) / 100}/255` : ''}${words !== undefined ? ` ${words} word` : ''}`;
}

/** R@1 of both models, row by row: clean, each attack, worst case, with 95% bootstrap intervals */
function sideBySide(reports: { model: Served; report: RobustProbeReport }[]): string {
  const first = reports[0].report;
  const rows: [string, (r: RobustProbeReport) => ConfidenceInterval | undefined][] = [
    [`clean TR (image->text, ${first.clean.tr.n} images)`, (r) => r1(r.clean.tr)],
    [`clean IR (text->image, ${first.clean.ir.n} captions)`, (r) => r1(r.clean.ir)],
    ...first.attacks.flatMap((a, i) => (['tr', 'ir'] as const).filter((d) => a[d]).map((d) => [`${attackLabel(a)} ${d.toUpperCase()}`, (r: RobustProbeReport) => r1(r.attacks[i][d])] as [string, (r: RobustProbeReport) => ConfidenceInterval | undefined])),
    ['robust TR (worst case over attacks)', (r) => r1(r.robust.tr)],
    ['robust IR (worst case over attacks)', (r) => r1(r.robust.ir)],
  ];
  const w = Math.max(...rows.map(([l]) => l.length)) + 2;
  const col = 26;
  const head = `${'R@1, % [95% CI]'.padEnd(w)}${reports.map((r) => `${r.model.label} ${r.model.id}`.padEnd(col)).join('')}`;
  const lines = rows.map(([label, get]) => `${label.padEnd(w)}${reports.map((r) => fmtCi(get(r.report)).padEnd(col)).join('')}`);
  return [
    `probe through the API (POST /v1/probes on each server): ${first.queries.images} sampled test items, gallery = every indexed test item and caption, seed ${first.seed}, bootstrap ${first.resamples} resamples`,
    head,
    ...lines,
    'robust = a query counts only if it is a hit clean and under every attack of its direction; intervals are per model (percentile bootstrap over queries)',
  ].join('\n');
}

function summaryJson(flags: DemoFlags, request: unknown, reports: { model: Served; probeId: string; report: RobustProbeReport }[], seconds: number): unknown {
  const pick = (d: DirectionFigures | undefined) => (d ? { n: d.n, r1: d.recall.r1 } : null);
  return {
    date: new Date().toISOString(),
    flags,
    seconds,
    timings,
    probeRequest: request,
    models: reports.map((r) => ({
      label: r.model.label,
      id: r.model.id,
      dir: r.model.modelDir,
      probe: r.probeId,
      clean: { tr: pick(r.report.clean.tr), ir: pick(r.report.clean.ir) },
      attacks: r.report.attacks.map((a) => ({ attack: attackLabel(a), tr: pick(a.tr), ir: pick(a.ir) })),
      robust: { tr: pick(r.report.robust.tr), ir: pick(r.report.robust.ir) },
      wallMs: r.report.wallMs,
    })),
  };
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
