/**
 * The nightly job end to end on this machine with the shipped recipe (training/recipes/nightly.json), as issue 23
 * asks it measured (a measurement, not a test):
 *
 *   node --import tsx scripts/nightly-e2e.ts --active MODEL_DIR [--data DATASET.json] [--work DIR] [--json OUT]
 *     [--candidate DIR: skip training, gate this artifact (e.g. the recipe's candidate of an earlier run)]
 *
 * 1. `scenes` with the generator's default counts (4,000 train, 200 val, 500 test; seed 0) unless --data is given;
 * 2. a Manyfold server on 127.0.0.1 serving --active (the production model) with the test split indexed through
 *    POST /v1/items (the gallery the smoke probe samples);
 * 3. `runNightly` with the recipe as is (only the server URL, key, data file and directories come from here, as the
 *    workflow's flags give them): MAT + N:N fine-tune of the active model, paired gate, publish, blue/green
 *    re-index, activation, the smoke probe. Its wall time, the gate's paired intervals and decision;
 * 4. a deliberately weakened candidate (the active model with Gaussian noise of 0.5 x each tensor's std added)
 *    through the same gate: expected rejected, with production untouched (checked through the API).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { startServer } from '../src/node/server.js';
import { loadConfig } from '../src/config.js';
import { generateScenes } from '../src/data/scenes/generate.js';
import { readDatasetFile } from '../src/data/readers.js';
import { initBackend } from '../src/engine/backend.js';
import { tf } from '../src/engine/tf.js';
import { loadArtifact, saveArtifact } from '../src/model/artifact.js';
import { runNightly } from '../src/nightly/job.js';
import { Rng } from '../src/util/rng.js';
import * as training from '../training/run.js';
import { readFileSync } from 'node:fs';

const { values: a } = parseArgs({ options: { active: { type: 'string' }, data: { type: 'string' }, work: { type: 'string' }, json: { type: 'string' }, candidate: { type: 'string' }, 'run-id': { type: 'string' } } });
if (!a.active) throw new Error('--active MODEL_DIR is required (the production model the recipe fine-tunes)');
const work = resolve(a.work ?? 'runs/nightly-e2e');
mkdirSync(work, { recursive: true });
const KEY = 'nightly-e2e-admin-key';
await initBackend('wasm');
const results: Record<string, unknown> = { date: new Date().toISOString(), recipe: 'training/recipes/nightly.json' };

const dataFile = a.data ?? (await generateScenes({ out: join(work, 'scenes'), seed: 0 })).file;
results.data = dataFile;

// production: the active model's artifact in the server's model directory
const active = await loadArtifact(a.active);
const publishDir = join(work, 'server', 'models');
await cp(a.active, join(publishDir, active.manifest.id), { recursive: true });
const server = await startServer({ modelDir: publishDir, dataDir: join(work, 'server'), port: 0, host: '127.0.0.1', env: { MANYFOLD_API_KEYS: `${KEY}=admin` }, logger: pino({ level: 'warn' }), overrides: { limits: { ratePerSecond: 1e6, rateBurst: 1e6 } } });
const call = async (method: string, path: string, json?: unknown) => {
  const r = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, ...(json ? { body: JSON.stringify(json) } : {}) });
  return { status: r.status, body: (await r.json()) as any };
};
try {
  const test = (await readDatasetFile(dataFile, { split: 'test' })).records;
  for (let s = 0; s < test.length; s += 100) {
    const items = test.slice(s, s + 100).map((r, k) => ({ id: `t${s + k}`, image: readFileSync(r.imagePaths[0]).toString('base64'), captions: r.captions }));
    const res = await call('POST', '/v1/items', { items });
    if (res.status !== 200) throw new Error(`POST /v1/items: ${res.status} ${JSON.stringify(res.body)}`);
  }
  const recipe = JSON.parse(readFileSync('training/recipes/nightly.json', 'utf8'));
  const config = (runs: string) =>
    loadConfig({ file: 'training/recipes/nightly.json', env: {}, overrides: { data: { file: dataFile }, nightly: { serverUrl: server.url, adminKey: KEY, publishDir, stateDir: join(work, runs) } } });
  const before = (await call('GET', '/v1/models')).body.active;

  // the recipe end to end
  const t0 = performance.now();
  const s = await runNightly({ config: config('state'), training, runId: a['run-id'] ?? 'recipe', ...(a.candidate ? { candidateDir: a.candidate } : {}), log: (l) => console.error(l) });
  results.recipeRun = { seconds: Math.round((performance.now() - t0) / 100) / 10, summary: s };
  console.error(`recipe run: ${s.outcome} in ${(results.recipeRun as { seconds: number }).seconds} s; gate: ${s.gate?.reasons.join('; ')}`);
  const afterRecipe = (await call('GET', '/v1/models')).body.active;

  // a deliberately weakened candidate: the production model with noise
  const rng = new Rng(7);
  const weakDir = join(work, 'weakened');
  for (const v of active.model.variables.values()) {
    {
      const x = v.dataSync() as Float32Array;
      let m = 0;
      for (const e of x) m += e;
      m /= x.length;
      let sd = 0;
      for (const e of x) sd += (e - m) ** 2;
      sd = Math.sqrt(sd / x.length);
      const y = Float32Array.from(x, (e) => e + 0.5 * sd * rng.normal());
      const t = tf.tensor(y, v.shape);
      v.assign(t);
      t.dispose();
    }
  }
  await saveArtifact(weakDir, { overwrite: true, model: active.model, tokenizer: active.tokenizer, training: { seed: 7, method: 'weakened on purpose: production + N(0, (0.5 sd)^2) noise per tensor' } });
  const t1 = performance.now();
  const w = await runNightly({ config: config('state'), training, runId: `${a['run-id'] ?? 'recipe'}-weakened`, candidateDir: weakDir, log: (l) => console.error(l) });
  const afterWeak = (await call('GET', '/v1/models')).body.active;
  results.weakenedRun = { seconds: Math.round((performance.now() - t1) / 100) / 10, summary: w, activeBefore: afterRecipe, activeAfter: afterWeak, productionUntouched: afterWeak === afterRecipe };
  results.activeBeforeRecipe = before;
  results.recipeConfig = recipe;
  console.error(`weakened: ${w.outcome} (exit ${w.exitCode}); production ${afterRecipe} -> ${afterWeak}; gate: ${w.gate?.reasons.join('; ')}`);
} finally {
  await server.close();
  active.model.dispose();
}
if (a.json) writeFileSync(a.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
