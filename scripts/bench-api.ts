/**
 * API benchmark (`npm run bench:api`): autocannon against a real `functions/node.ts` server on 127.0.0.1 (a
 * child process, so the load generator does not share the server's event loop).
 *
 * For each index size (default 10k and 100k records per target namespace; synthetic unit vectors, since only
 * the index size matters for latency), it measures in the same run:
 *   - text search and image search through HTTP: latency p50/p99 at 1 connection, throughput at --connections;
 *   - the raw index query time (LanceDB query, top-10, same data, from this process);
 *   - the raw encoder time (one text, one 32x32 image) in this process;
 *   overhead = API p50 - index p50 - encoder p50 (HTTP, auth, validation, JSON, queueing).
 * --load: a bounded 60 s run at 32 connections (text search, two keys, rate limits set high so that any non-2xx
 * is an error) reporting non-2xx answers, RSS and tf.memory().numTensors before/after (from /metrics).
 *
 *   npm run bench:api -- [--sizes 10000,100000] [--duration 5] [--connections 16] [--load] [--model DIR]
 *                        [--inference auto|tfjs|onnx] [--json out.json]
 * --inference is the server's engine for embeddings (default auto, as `manyfold serve`); the in-process encoder
 * time is measured on the same engine.
 * The model is an untrained `tiny` preset (latency does not depend on training), or the artifact --model names
 * (e.g. an imported CLIP: its images are decoded by CLIPImageProcessor's rule, its texts by CLIP's tokenizer).
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { initBackend } from '../src/engine/backend.js';
import { createIndex } from '../src/node/indexes.js';
import { readManifest, saveArtifact, type ArtifactManifest } from '../src/model/artifact.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
import { loadEncoder } from '../src/model/load-encoder.js';
import { inferenceSchema } from '../src/config.js';
import { buildTokenizer } from '../src/model/tokenizer.js';
import { modelTag } from '../src/api/registry.js';
import { physicalNamespace } from '../src/api/service.js';
import { decodeImage, decodeSpecForModel } from '../src/data/imageCache.js';
import { Rng } from '../src/util/rng.js';
import { SAMPLE_CAPTIONS } from '../test/fixtures/captions.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    load: { type: 'boolean', default: false },
    inference: { type: 'string', default: 'auto' },
    'load-seconds': { type: 'string', default: '60' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    model: { type: 'string' },
  },
});
const sizes = args.sizes!.split(',').map(Number);
const duration = Number(args.duration);
const connections = Number(args.connections);
const KEY = 'bench-key-0123456789';
const LIMITED = 'second-key-0123456789';

const CAPS = [...SAMPLE_CAPTIONS];

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function unitVectors(n: number, dim: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const out: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const v = new Float32Array(dim);
    let s = 0;
    for (let j = 0; j < dim; j++) s += (v[j] = rng.normal()) ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) v[j] *= inv;
    out.push(v);
  }
  return out;
}

async function startChild(modelDir: string, dataDir: string, configFile: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'functions/node.ts', '--model', modelDir, '--data', dataDir, '--port', '0', '--config', configFile], {
    env: { ...process.env, MANYFOLD_API_KEYS: `${KEY}=admin,${LIMITED}=search`, MANYFOLD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((ok, fail) => {
    let buf = '';
    proc.stdout!.on('data', (d) => {
      buf += d;
      const m = /manyfold API on (http:\/\/\S+)/.exec(buf);
      if (m) ok(m[1]);
    });
    proc.once('exit', (c) => fail(new Error(`server exited with ${c}`)));
  });
  return { proc, url };
}

async function stopChild(proc: ChildProcess): Promise<number | null> {
  const t0 = Date.now();
  proc.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  console.error(`  server stopped on SIGTERM in ${Date.now() - t0} ms (exit ${code})`);
  return code;
}

function cannon(url: string, bodies: string[], conns: number, seconds: number, key = KEY): Promise<autocannon.Result> {
  let i = 0;
  return new Promise((ok, fail) => {
    autocannon(
      {
        url: `${url}/v1/search`,
        method: 'POST',
        connections: conns,
        duration: seconds,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        requests: [{ setupRequest: (req: any) => ({ ...req, body: bodies[i++ % bodies.length] }) }],
      },
      (err, res) => (err ? fail(err) : ok(res)),
    );
  });
}

async function metricsOf(url: string): Promise<{ rssMB: number; tensors: number; heapMB: number }> {
  const t = await (await fetch(`${url}/metrics`)).text();
  const get = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(t)?.[1] ?? NaN);
  return { rssMB: r3(get('manyfold_process_resident_memory_bytes') / 2 ** 20), heapMB: r3(get('manyfold_nodejs_heap_size_used_bytes') / 2 ** 20), tensors: get('manyfold_tf_tensors') };
}

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const load0 = loadavg();
  console.error(`bench:api on ${cpus().length} cores, load average ${load0.map((x) => x.toFixed(2)).join(' ')} (the machine may be shared)`);
  const backend = await initBackend('wasm');
  const root = mkdtempSync(join(tmpdir(), 'manyfold-bench-api-'));
  const parsedInference = inferenceSchema.safeParse(args.inference);
  if (!parsedInference.success) throw new Error(`--inference must be one of ${inferenceSchema.options.join(', ')}, got ${args.inference}`);
  const inference = parsedInference.data;
  let modelDir = join(root, 'model');
  let manifest: ArtifactManifest;
  if (args.model) {
    // only the manifest here: the encoder below loads (and verifies) the model once, on the server's engine
    modelDir = args.model;
    manifest = await readManifest(modelDir);
  } else {
    const tok = buildTokenizer(CAPS, { maxLen: 32 });
    const model = createDualEncoder(modelConfigFromPreset('tiny', tok.vocabSize), 1);
    manifest = await saveArtifact(modelDir, { model, tokenizer: tok, training: { seed: 1, method: 'untrained (bench)' } });
    model.dispose();
  }
  // the engine the server will use (same rule, same artifact): the in-process encoder times what the server runs
  const enc = await loadEncoder(modelDir, { inference });
  const decodeSpec = decodeSpecForModel(enc.config);
  const tag = modelTag(manifest.id);
  const dim = enc.dim;

  // query bodies: texts, and PNG images (64x48, decoded and resized to 32x32 by the server)
  const texts = Array.from({ length: 64 }, (_, i) => `${CAPS[i % 6]} ${i}`);
  const pngs: Buffer[] = [];
  for (let i = 0; i < 16; i++) {
    const px = Buffer.alloc(64 * 48 * 3);
    const rng = new Rng(100 + i);
    for (let j = 0; j < px.length; j++) px[j] = Math.floor(rng.next() * 256);
    pngs.push(await sharp(px, { raw: { width: 64, height: 48, channels: 3 } }).png().toBuffer());
  }
  const textBodies = texts.map((t) => JSON.stringify({ text: t, target: 'images', topK: 10 }));
  const imageBodies = pngs.map((b) => JSON.stringify({ image: b.toString('base64'), target: 'images', topK: 10 }));

  // raw encoder time in this process
  const encText: number[] = [];
  const encImage: number[] = [];
  const decodeMs: number[] = [];
  for (let i = 0; i < 200; i++) {
    let t0 = performance.now();
    await enc.embedTextsMatrixAsync([texts[i % texts.length]]);
    encText.push(performance.now() - t0);
    t0 = performance.now();
    const px = await decodeImage(pngs[i % pngs.length], decodeSpec);
    decodeMs.push(performance.now() - t0);
    t0 = performance.now();
    await enc.embedImagesMatrixAsync(px, 1);
    encImage.push(performance.now() - t0);
  }
  const encoder = { textP50: r3(pct(encText.slice(20), 50)), imageP50: r3(pct(encImage.slice(20), 50)), decodeP50: r3(pct(decodeMs.slice(20), 50)), backend: backend.name, engine: enc.engine };
  console.error(`encoder (in-process, ${enc.engine}): text p50 ${encoder.textP50} ms, image p50 ${encoder.imageP50} ms (+ PNG decode/resize ${encoder.decodeP50} ms)`);

  const configFile = join(root, 'config.json');
  writeFileSync(configFile, JSON.stringify({ backend: 'wasm', inference, limits: { ratePerSecond: 1e6, rateBurst: 1e6 } }));
  const results: Record<string, unknown>[] = [];
  let loadResult: Record<string, unknown> | undefined;
  for (const n of sizes) {
    const dataDir = join(root, `data-${n}`);
    console.error(`\n== ${n} records per namespace: building the LanceDB index ...`);
    const t0 = performance.now();
    const idx = await createIndex({ kind: 'lancedb', dir: join(dataDir, 'index') });
    for (const target of ['images', 'texts'] as const) {
      const vecs = unitVectors(n, dim, target === 'images' ? 1 : 2);
      await idx.upsert(physicalNamespace('default', tag, target), vecs.map((v, i) => ({ id: `${target}-${i}`, values: v, metadata: { i, ...(target === 'texts' ? { _item: `images-${i}`, _caption: 0, _text: CAPS[i % 6] } : {}) } })));
    }
    console.error(`   indexed 2 x ${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // raw index query time (same data, same machine, this run)
    const qv = unitVectors(300, dim, 9);
    const raw: number[] = [];
    for (let i = 0; i < qv.length; i++) {
      const t = performance.now();
      await idx.query(physicalNamespace('default', tag, 'images'), qv[i], { topK: 10, includeMetadata: true });
      raw.push(performance.now() - t);
    }
    await idx.close?.();
    const rawIndex = { p50: r3(pct(raw.slice(50), 50)), p99: r3(pct(raw.slice(50), 99)) };
    console.error(`   raw index query (top-10 + metadata): p50 ${rawIndex.p50} ms, p99 ${rawIndex.p99} ms`);

    const { proc, url } = await startChild(modelDir, dataDir, configFile);
    try {
      const row: Record<string, unknown> = { records: n, rawIndex };
      for (const [kind, bodies] of [['text', textBodies], ['image', imageBodies]] as const) {
        await cannon(url, bodies, 1, 1); // warm-up
        const lat = await cannon(url, bodies, 1, duration);
        const thr = await cannon(url, bodies, connections, duration);
        const encP50 = kind === 'text' ? encoder.textP50 : encoder.imageP50 + encoder.decodeP50;
        const overhead = r3(lat.latency.p50 - rawIndex.p50 - encP50);
        row[kind] = {
          p50: lat.latency.p50,
          p99: lat.latency.p99,
          mean: r3(lat.latency.average),
          rpsAt1: r3(lat.requests.average),
          throughput: { connections, rps: r3(thr.requests.average), p50: thr.latency.p50, p99: thr.latency.p99, non2xx: thr.non2xx, errors: thr.errors },
          overheadMs: overhead,
          overheadVsIndex: r3(overhead / rawIndex.p50),
        };
        console.error(
          `   ${kind} search: p50 ${lat.latency.p50} ms, p99 ${lat.latency.p99} ms (1 conn, ${r3(lat.requests.average)} req/s); ${r3(thr.requests.average)} req/s at ${connections} conns (p50 ${thr.latency.p50}, p99 ${thr.latency.p99}); overhead ${overhead} ms = ${r3(overhead / rawIndex.p50)}x raw index`,
        );
      }
      results.push(row);
      if (args.load && n === sizes[sizes.length - 1]) {
        const secs = Number(args['load-seconds']);
        console.error(`   load test: ${secs} s at 32 connections (text search; 28 connections on one key, 4 on a second key) ...`);
        const before = await metricsOf(url);
        const [main, limited] = await Promise.all([cannon(url, textBodies, 28, secs), cannon(url, textBodies, 4, secs, LIMITED)]);
        await new Promise((r) => setTimeout(r, 500));
        const after = await metricsOf(url);
        loadResult = {
          seconds: secs,
          connections: 32,
          requests: main.requests.total + limited.requests.total,
          rps: r3(main.requests.average + limited.requests.average),
          p50: main.latency.p50,
          p99: main.latency.p99,
          firstKey: { non2xx: main.non2xx, errors: main.errors, timeouts: main.timeouts },
          secondKey: { '2xx': limited['2xx'], non2xx: limited.non2xx, errors: limited.errors },
          before,
          after,
        };
        console.error(`   load: ${JSON.stringify(loadResult)}`);
      }
    } finally {
      await stopChild(proc);
    }
  }
  const out = { started, machine: { cores: cpus().length, loadAvgStart: load0, loadAvgEnd: loadavg() }, model: { id: manifest.id, preset: manifest.config.preset, family: manifest.config.family ?? 'manyfold', dir: args.model ?? null, dim }, encoder, results, ...(loadResult ? { load: loadResult } : {}), notes: 'server log level warn; latency at 1 connection; raw index timed in the bench process on the same data; encoder timed in the bench process' };
  if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
  await enc.dispose();
  if (!args.keep) rmSync(root, { recursive: true, force: true });
}

await main();
