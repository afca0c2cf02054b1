/**
 * Worker benchmark (npm run bench:worker): builds the test assets (tiny model + snapshot,
 * test/workers/fixture.ts), starts `wrangler dev -e test` (local workerd), measures
 *   - cold start: process spawn -> first answer (wrangler + workerd startup + isolate boot), and the isolate's own
 *     boot time (tfjs wasm from the bundled module, model load + sha256 verification, app) from /edge/info
 *   - text search latency: N sequential POST /v1/search from Node over HTTP (p50/p99), real timers
 * and the bundle size (`wrangler deploy --dry-run --outdir`). Prints one JSON object.
 */
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildTestAssets } from '../test/workers/fixture.js';

const N = Number(process.env.BENCH_N ?? 200);
const PORT = Number(process.env.BENCH_PORT ?? 8799);
const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' };

await buildTestAssets();
const OUT = resolve('dist/worker-bundle'); // wrangler resolves a relative --outdir against the config's folder
execFileSync('npx', ['wrangler', 'deploy', '--dry-run', '-c', 'infra/wrangler.jsonc', '-e', 'test', '--outdir', OUT], { env, stdio: 'ignore' });
const bundle: Record<string, number> = {};
for (const f of readdirSync(OUT)) if (!f.endsWith('.map')) bundle[f] = statSync(join(OUT, f)).size;
const workerJs = readFileSync(join(OUT, 'worker.js'));
const total = Object.values(bundle).reduce((a, b) => a + b, 0);

const t0 = performance.now();
const child = spawn('npx', ['wrangler', 'dev', '-c', 'infra/wrangler.jsonc', '-e', 'test', '--port', String(PORT), '--ip', '127.0.0.1', '--log-level', 'error', '--var', `MANYFOLD_CONFIG:${JSON.stringify({ limits: { ratePerSecond: 10000, rateBurst: 10000 } })}`], { env, stdio: ['ignore', 'ignore', 'inherit'], detached: true });
const base = `http://127.0.0.1:${PORT}`;
const headers = { authorization: 'Bearer search-key-0123456789', 'content-type': 'application/json' };
try {
  let info: any;
  for (;;) {
    try {
      const r = await fetch(`${base}/edge/info`);
      if (r.ok) {
        info = await r.json();
        break;
      }
    } catch {
      /* not up yet */
    }
    if (performance.now() - t0 > 120_000) throw new Error('wrangler dev did not answer within 120 s');
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const coldMs = performance.now() - t0;
  const ms: number[] = [];
  for (let i = 0; i < N + 10; i++) {
    const s = performance.now();
    const r = await fetch(`${base}/v1/search`, { method: 'POST', headers, body: JSON.stringify({ text: `a large red star number ${i}`, target: 'texts', topK: 5, namespace: 'snap' }) });
    if (r.status !== 200) throw new Error(`search: HTTP ${r.status}`);
    await r.arrayBuffer();
    if (i >= 10) ms.push(performance.now() - s);
  }
  ms.sort((a, b) => a - b);
  const q = (p: number) => Math.round(ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] * 100) / 100;
  process.stdout.write(
    `${JSON.stringify(
      {
        measured: `wrangler dev -e test (local workerd ${process.platform}), tiny preset model, memory-index snapshot of 6 captions; ${N} sequential text searches after 10 warm-ups, HTTP from Node on 127.0.0.1`,
        backend: info.backend,
        coldStart: { spawnToFirstAnswerMs: Math.round(coldMs), isolateBootMs: info.coldStartMs, backendInitMs: info.backend.initMs, appStartMs: info.appStartMs },
        textSearch: { p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99) },
        bundle: { files: bundle, totalBytes: total, workerJsGzipBytes: gzipSync(workerJs).length },
      },
      null,
      2,
    )}\n`,
  );
} finally {
  if (child.pid) process.kill(-child.pid, 'SIGTERM');
}
