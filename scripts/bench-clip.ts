/**
 * Benchmark of an imported pretrained-CLIP-shaped model (`npm run bench:clip`): a randomly initialised ViT-B/32
 * with the real shapes (224 px, patch 32, vision width 768 x 12 blocks, text width 512 x 12 blocks, 77-token
 * context, 49,408-token vocabulary, 512-d embeddings; 151 M parameters), written as a Hugging Face checkpoint
 * (model.safetensors, F32) and imported the way a user imports theirs. Latency does not depend on the weights'
 * values, so random weights measure what real ones would.
 *
 *   npm run bench:clip -- [--work DIR] [--threads 1|2] [--repeats 5] [--skip-train] [--skip-onnx]
 *                         [--train-batch 8] [--freeze-blocks 6] [--json OUT]
 *
 * Phases (the checkpoint and its import are cached in --work, default /tmp/manyfold-bench-clip):
 * 1. build (once): random weights, a synthetic full-size BPE vocabulary, saveArtifact, export to HF format;
 * 2. import: `importClipCheckpoint` of that HF directory (wall time; the sha256 of every source file included);
 * 3. in a fresh child process (so its RSS is a server's, not this builder's): loadArtifact, then
 *    image embedding ms/image at batch 1 and 32, text embedding ms/caption at batch 32 (14 tokens: SOT, 12, EOT,
 *    as the PyTorch reference), RSS after those (the serving figure, compared with the weights' bytes),
 *    one PGD step ms/image (gradient w.r.t. the pixels only, batch 8), and unless --skip-train MAT training steps
 *    at --train-batch with --freeze-blocks on 224 px `scenes` images (substitution text attack + 2 PGD steps +
 *    the update; defaults batch 8 with 6 of 12 blocks frozen: what the memory estimate admits in wasm's 4 GiB heap;
 *    a refusal, e.g. for --train-batch 32 --freeze-blocks 0, is reported as the result, not hidden).
 * 4. unless --skip-onnx, in another fresh child: serving on onnxruntime-node as `manyfold serve` does by default
 *    (model/load-encoder.ts, inference onnx, --threads intra-op threads): session start, image ms/image at batch 1
 *    and 32, text ms/caption (same inputs), RSS. The goals below are met (or not) by the engine that serves.
 * Every timing is the median of --repeats runs after one warm-up; each ends with a dataSync, so queued work counts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '../src/engine/tf.js';
import { initBackend } from '../src/engine/backend.js';
import { inputGrad } from '../src/engine/ops.js';
import { loadArtifact, saveArtifact } from '../src/model/artifact.js';
import { ClipBpeTokenizer, CLIP_EOT, CLIP_SOT, bytesToUnicode } from '../src/model/clip-tokenizer.js';
import { exportClipCheckpoint } from '../src/model/clip/export.js';
import { importClipCheckpoint } from '../src/model/clip/import.js';
import { createDualEncoder } from '../src/model/dual-encoder.js';
import { countParameters } from '../src/model/presets.js';
import type { ModelConfig } from '../src/model/types.js';
import { Rng } from '../src/util/rng.js';

const { values: args } = parseArgs({
  options: {
    work: { type: 'string', default: join(tmpdir(), 'manyfold-bench-clip') },
    threads: { type: 'string', default: '1' },
    repeats: { type: 'string', default: '5' },
    'skip-train': { type: 'boolean', default: false },
    'train-batch': { type: 'string', default: '8' },
    'freeze-blocks': { type: 'string', default: '6' },
    json: { type: 'string' },
    child: { type: 'string' }, // internal: run phase 3 on this artifact and print JSON
    'child-onnx': { type: 'string' }, // internal: phase 4 (serving on onnxruntime) on this artifact
    'skip-onnx': { type: 'boolean', default: false },
  },
});

function intFlag(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}
const threads = intFlag('threads', args.threads, 1);
const repeats = intFlag('repeats', args.repeats, 1);
const trainBatch = intFlag('train-batch', args['train-batch'], 1);
const freezeBlocks = intFlag('freeze-blocks', args['freeze-blocks'], 0);

const VOCAB = 49408;
/** ViT-B/32 as openai/clip-vit-base-patch32 ships it */
export const B32: ModelConfig = {
  preset: 'clip',
  family: 'clip',
  embedDim: 512,
  image: { size: 224, patch: 32, width: 768, depth: 12, heads: 12, mlpRatio: 4 },
  text: { width: 512, depth: 12, heads: 8, mlpRatio: 4, maxLen: 77, vocabSize: VOCAB },
  initLogitScale: Math.log(1 / 0.07),
  clip: {
    activation: 'quick_gelu',
    textPooling: 'argmax',
    eosTokenId: VOCAB - 1,
    pixelMean: [0.48145466, 0.4578275, 0.40821073],
    pixelStd: [0.26862954, 0.26130258, 0.27577711],
    lnEps: 1e-5,
    resizeShortestEdge: 224,
  },
};

/**
 * A full-size (49,408-id) BPE vocabulary with CLIP's layout: 256 byte symbols, the same with </w>, 48,894 merges,
 * SOT, EOT. The merges spell lower-case letter strings (every pair, then triples, ...) so the vocabulary is valid
 * BPE; which strings they spell does not matter for timing.
 */
function syntheticClipTokenizer(): ClipBpeTokenizer {
  const { ordered } = bytesToUnicode();
  const vocab = [...ordered, ...ordered.map((s) => `${s}</w>`)];
  const known = new Set(vocab);
  const merges: [string, string][] = [];
  const want = VOCAB - 512 - 2;
  const letters = 'abcdefghijklmnopqrstuvwxyz'.split('');
  let frontier = [...letters];
  while (merges.length < want) {
    const next: string[] = [];
    for (const stem of frontier) {
      for (const l of letters) {
        for (const [right, out] of [
          [l, stem + l],
          [`${l}</w>`, `${stem}${l}</w>`],
        ] as const) {
          if (merges.length >= want || known.has(out)) continue;
          merges.push([stem, right]);
          vocab.push(out);
          known.add(out);
          if (!out.endsWith('</w>')) next.push(out);
        }
      }
    }
    frontier = next;
  }
  vocab.push(CLIP_SOT, CLIP_EOT);
  return new ClipBpeTokenizer({
    vocab,
    merges,
    addedTokens: [
      { id: VOCAB - 2, content: CLIP_SOT, normalized: false, special: true },
      { id: VOCAB - 1, content: CLIP_EOT, normalized: false, special: true },
    ],
    sot: CLIP_SOT,
    eot: CLIP_EOT,
    maxLen: 77,
  });
}

/** 32 captions of BENCH_TEXT_LEN tokens (SOT, 12 ids, EOT), as the PyTorch reference measured */
const BENCH_TEXT_LEN = 14;
function benchTextIds(): Int32Array {
  const L = BENCH_TEXT_LEN;
  const ids = new Int32Array(32 * L);
  for (let i = 0; i < 32; i++) {
    ids[i * L] = VOCAB - 2;
    for (let j = 1; j < L - 1; j++) ids[i * L + j] = 300 + ((i * 131 + j * 977) % 40000);
    ids[i * L + L - 1] = VOCAB - 1;
  }
  return ids;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** warm-up once, then the median of `repeats` timed runs */
function timeMedian(run: () => void): number {
  run();
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    run();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// ------------------------------------------------------------------------------------------------ phase 3 (child)
if (args.child) {
  const info = await initBackend('wasm', { threads });
  const rssBefore = process.memoryUsage().rss;
  let t0 = performance.now();
  const { model, manifest } = await loadArtifact(args.child);
  const loadMs = performance.now() - t0;
  /** the wasm heap (weights, XNNPACK's packed copies of them, activations' high-water mark: it never shrinks) */
  const wasmHeap = () => (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.length ?? null;
  const rssAfterLoad = process.memoryUsage().rss;
  const heapAfterLoad = wasmHeap();
  const weightBytes = manifest.files.filter((f) => f.path.startsWith('weights')).reduce((a, f) => a + f.bytes, 0);
  const rng = new Rng(1);
  const S = model.config.image.size;
  const pixels = (b: number) => tf.tensor4d(Float32Array.from({ length: b * S * S * 3 }, () => rng.next()), [b, S, S, 3]);
  const out: Record<string, unknown> = { backend: info.name, backendReason: info.reason, loadMs: round(loadMs), weightBytes };
  for (const b of [1, 32]) {
    const x = pixels(b);
    const ms = timeMedian(() => tf.tidy(() => void model.imageTower(x).dataSync()));
    out[`imageMsPerImageBatch${b}`] = round(ms / b);
    x.dispose();
    console.error(`image batch ${b}: ${round(ms / b)} ms/image`);
  }
  const L = BENCH_TEXT_LEN;
  const ids = benchTextIds();
  const idsT = tf.tensor2d(ids, [32, L], 'int32');
  const textMs = timeMedian(() => tf.tidy(() => void model.textTower(idsT).dataSync()));
  out.textMsPerCaptionBatch32Len14 = round(textMs / 32, 2);
  console.error(`text batch 32 x ${L} tokens: ${round(textMs / 32, 2)} ms/caption`);
  const rss = process.memoryUsage().rss;
  out.servingRssBytes = rss;
  out.servingRssOverWeights = round(rss / weightBytes, 2);
  out.rssBeforeLoadBytes = rssBefore;
  out.rssAfterLoadBytes = rssAfterLoad;
  out.wasmHeapAfterLoadBytes = heapAfterLoad;
  out.wasmHeapServingBytes = wasmHeap();
  console.error(`serving RSS ${(rss / 2 ** 20).toFixed(0)} MiB = ${round(rss / weightBytes, 2)} x the weights (${(weightBytes / 2 ** 20).toFixed(0)} MiB)`);

  const pgdBatch = 8;
  const xg = pixels(pgdBatch);
  const target = tf.tidy(() => model.textTower(tf.slice(idsT, [0, 0], [pgdBatch, L])));
  const pgdMs = timeMedian(() =>
    tf.tidy(() => {
      const { value, grad } = inputGrad((x: tf.Tensor4D) => tf.sum(tf.mul(model.imageTower(x), target)) as tf.Scalar, xg);
      value.dataSync();
      grad.dataSync();
    }),
  );
  out.pgdStepMsPerImageBatch8 = round(pgdMs / pgdBatch);
  console.error(`PGD step (input gradient), batch ${pgdBatch}: ${round(pgdMs / pgdBatch)} ms/image`);
  xg.dispose();
  target.dispose();
  idsT.dispose();
  out.peakRssBytes = process.memoryUsage().rss;
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

// ------------------------------------------------------------------------------------------------ phase 4 (child)
if (args['child-onnx']) {
  // serving as `manyfold serve` does with inference onnx (the default where onnxruntime-node loads): the verified
  // artifact's shards mapped by onnxruntime, embeddings through the Encoder's async methods; no tfjs model
  const { loadEncoder } = await import('../src/model/load-encoder.js');
  const rssBefore = process.memoryUsage().rss;
  let t0 = performance.now();
  const enc = await loadEncoder(args['child-onnx'], { inference: 'onnx', threads });
  const loadMs = performance.now() - t0;
  const weightBytes = (enc.manifest as { files?: { path: string; bytes: number }[] } | undefined)?.files?.filter((f) => f.path.startsWith('weights')).reduce((a, f) => a + f.bytes, 0) ?? 0;
  const rng = new Rng(1);
  const S = enc.imageSize;
  const out: Record<string, unknown> = { engine: enc.engine, loadMs: round(loadMs), weightBytes };
  const timeAsync = async (run: () => Promise<unknown>): Promise<number> => {
    await run();
    const ms: number[] = [];
    for (let r = 0; r < repeats; r++) {
      t0 = performance.now();
      await run();
      ms.push(performance.now() - t0);
    }
    return median(ms);
  };
  for (const b of [1, 32]) {
    const x = Float32Array.from({ length: b * S * S * 3 }, () => rng.next());
    const ms = await timeAsync(() => enc.embedImagesMatrixAsync(x, b, 64));
    out[`imageMsPerImageBatch${b}`] = round(ms / b);
    console.error(`onnx image batch ${b}: ${round(ms / b)} ms/image`);
  }
  const L = BENCH_TEXT_LEN;
  const ids = benchTextIds();
  const textMs = await timeAsync(() => enc.towers!.textRows(ids, 32, L));
  out.textMsPerCaptionBatch32Len14 = round(textMs / 32, 2);
  console.error(`onnx text batch 32 x ${L} tokens: ${round(textMs / 32, 2)} ms/caption`);
  const rss = process.memoryUsage().rss;
  Object.assign(out, { servingRssBytes: rss, servingRssOverWeights: round(rss / weightBytes, 2), rssBeforeLoadBytes: rssBefore });
  console.error(`onnx serving RSS ${(rss / 2 ** 20).toFixed(0)} MiB = ${round(rss / weightBytes, 2)} x the weights (${(weightBytes / 2 ** 20).toFixed(0)} MiB; the process before loading: ${(rssBefore / 2 ** 20).toFixed(0)} MiB)`);
  await enc.dispose();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

// ------------------------------------------------------------------------------------------------ parent
const work = args.work!;
mkdirSync(work, { recursive: true });
const hfDir = join(work, 'hf-b32');
const importedDir = join(work, 'imported-b32');
const loadBefore = loadavg()[0];
await initBackend('wasm', { threads: 1 });
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, load1Before: round(loadBefore, 2) },
  model: 'random ViT-B/32 (openai/clip-vit-base-patch32 shapes), HF format, F32',
  parameters: countParameters(B32),
  threads,
  repeats,
};

if (!existsSync(join(hfDir, 'model.safetensors'))) {
  console.error(`building a random ViT-B/32 checkpoint in ${hfDir} (once; cached) ...`);
  const t0 = performance.now();
  const tok = syntheticClipTokenizer();
  const model = createDualEncoder(B32, 0);
  const src = join(work, 'random-artifact');
  rmSync(src, { recursive: true, force: true });
  await saveArtifact(src, { model, tokenizer: tok, training: { method: 'random init (benchmark)', seed: 0 } });
  model.dispose();
  rmSync(hfDir, { recursive: true, force: true });
  await exportClipCheckpoint({ model: src, out: hfDir, format: 'hf', log: () => undefined });
  rmSync(src, { recursive: true, force: true });
  console.error(`built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

rmSync(importedDir, { recursive: true, force: true });
let t0 = performance.now();
const imp = await importClipCheckpoint({ from: hfDir, out: importedDir, log: () => undefined });
result.importSeconds = round((performance.now() - t0) / 1000, 2);
result.importedId = imp.manifest.id;
console.error(`import: ${result.importSeconds} s (${imp.summary})`);

const child = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench-clip.ts', '--child', importedDir, '--threads', String(threads), '--repeats', String(repeats)], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
  maxBuffer: 1 << 20,
});
if (child.status !== 0) throw new Error(`measurement process failed (exit ${child.status})`);
Object.assign(result, JSON.parse(child.stdout.trim().split('\n').pop()!));

if (!args['skip-onnx']) {
  const onnxChild = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench-clip.ts', '--child-onnx', importedDir, '--threads', String(threads), '--repeats', String(repeats)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  if (onnxChild.status !== 0) throw new Error(`onnx measurement process failed (exit ${onnxChild.status}); --skip-onnx skips it`);
  result.onnx = JSON.parse(onnxChild.stdout.trim().split('\n').pop()!);
}

if (!args['skip-train']) {
  const { measureTrainStep } = await import('./bench-clip-train.js');
  result.train = await measureTrainStep({ model: importedDir, work, batch: trainBatch, freezeBlocks, threads });
}
result.load1After = round(loadavg()[0], 2);
result.goals = {
  imageMsPerImageBatch32: { goal: 100, pytorch2Threads: 52 },
  textMsPerCaption: { goal: 15, pytorch2Threads: 7.7 },
  pgdMsPerImage: { pytorch2Threads: 137 },
  servingRssOverWeights: { goal: 2 },
};
console.log(JSON.stringify(result, null, 2));
if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
process.exit(0);
