/**
 * Engine benchmark: the dual encoder's image tower, and the full dual-encoder training step, on one backend.
 *
 *   npm run bench:engine -- [--backend auto|webgpu|wasm|cpu|tensorflow] [--preset tiny] [--batch 64] [--repeats 10]
 *                           [--warmup 3] [--threads 1] [--captions-per-image 2] [--text-buckets 4] [--json OUT] [--skip-full]
 *                           [--profile [--profile-top 25] [--profile-runs 3]]
 *
 * Cases (each run ends with one batched async download of every output, so queued work is included; async
 * because webgpu in Node has no synchronous read; on wasm/cpu/tensorflow the download is a copy):
 * - forward:    imageTower(x) for x [B,S,S,3]
 * - inputGrad:  d/dx of sum(imageTower(x) * t) for fixed unit vectors t: one PGD step's gradient, w.r.t. the
 *               pixels only (withoutWeightGrads, as the attacks do)
 * - trainStep:  loss and gradients of every image-tower weight for a CLIP-style loss against fixed text
 *               embeddings (cross-entropy of logitScale * zi t^T with the diagonal as targets)
 * - fullStep:   the dual-encoder step with every caption padded to the batch's longest: loss
 *               (training/losses/clip.ts multiPositiveInfoNce) and gradients of every variable for B images and
 *               captionsPerImage * B captions of 8-28 tokens (uniform; scenes captions: mean 16.5, max 32)
 * - fullStepBuckets: the same step as training/trainer.ts runs it: the captions in --text-buckets length
 *               buckets (default 4), each padded to its own longest (training/batches.ts stackIdsBucketed)
 * Reported per case: median wall ms and median process CPU ms (user+sys; on a shared, loaded machine CPU time
 * is the steadier figure, wall time is what a user waits), GFLOP/s = executed matmul FLOPs (src/model/flops.ts:
 * 2*M*N*K per product, backward 2x forward; the last image block runs for the class token only) / median wall
 * time, and gflopsDense = the standard-ViT FLOP count (every block on every token, the figure of earlier runs)
 * / median wall time. Elementwise work is not counted. The 1-minute load average is printed before and after.
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as tf from '../src/engine/tf.js';
import { initBackend, type BackendKind } from '../src/engine/backend.js';
import { webgpuDeviceErrors } from '../src/engine/webgpu.js';
import { withoutWeightGrads } from '../src/engine/ops.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
import type { PresetName } from '../src/model/presets.js';
import { imageTowerFlops, textTowerFlops } from '../src/model/flops.js';
import { multiPositiveInfoNce } from '../training/losses/clip.js';
import { stackIdsBucketed, textTowerBucketed } from '../training/batches.js';
import { Rng } from '../src/util/rng.js';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    preset: { type: 'string', default: 'tiny' },
    batch: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    'captions-per-image': { type: 'string', default: '2' },
    'text-buckets': { type: 'string', default: '4' },
    json: { type: 'string' },
    'skip-full': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-top': { type: 'string', default: '25' },
    'profile-runs': { type: 'string', default: '3' },
  },
});

const batch = Number(args.batch);
const repeats = Number(args.repeats);
const warmup = Number(args.warmup);
const loadBefore = loadavg()[0];
const info = await initBackend(args.backend as BackendKind, { threads: Number(args.threads) });
const config = modelConfigFromPreset(args.preset as PresetName, 1000);
const model = createDualEncoder(config, 0);
const rng = new Rng(1);
const s = config.image.size;

const px = new Float32Array(batch * s * s * 3).map(() => rng.next());
const x = tf.tensor4d(px, [batch, s, s, 3]);
// captionsPerImage captions per image, 8-28 tokens, padded to the longest (fullStep) or bucketed (fullStepBuckets)
const nCaptions = batch * Number(args['captions-per-image']);
const lens = Array.from({ length: nCaptions }, () => Math.min(config.text.maxLen, 8 + rng.int(21)));
const L = Math.max(...lens);
const ids = new Int32Array(nCaptions * L);
lens.forEach((len, r) => {
  for (let j = 0; j < len; j++) ids[r * L + j] = 1 + rng.int(999);
});
const idsT = tf.tensor2d(ids, [nCaptions, L], 'int32');
const owner = Int32Array.from({ length: nCaptions }, (_, i) => Math.floor(i / Number(args['captions-per-image'])));
const tokenized = lens.map((len, r) => Array.from(ids.subarray(r * L, r * L + len)));
const bucketed = stackIdsBucketed(tokenized, tokenized.map((_, i) => i), owner, Number(args['text-buckets']));
const bucketIds = bucketed.parts.map((p) => tf.tensor2d(p.ids, [p.rows, p.length], 'int32'));
const textEmb = tf.tidy(() => {
  const t = tf.randomNormal([batch, config.embedDim], 0, 1, 'float32', 7);
  return tf.div(t, tf.norm(t, 'euclidean', 1, true)) as tf.Tensor2D;
});
const eye = tf.oneHot(tf.range(0, batch, 1, 'int32'), batch);
const imageVars = [...model.variables.entries()].filter(([n]) => n.startsWith('image.')).map(([, v]) => v);
const allVars = [...model.variables.values()];

async function syncAll(ts: tf.Tensor[]): Promise<void> {
  await Promise.all(ts.map((t) => t.data()));
}

/** run f, download its outputs, dispose them */
async function runAndSync(f: () => tf.Tensor[]): Promise<void> {
  const ts = f();
  try {
    await syncAll(ts);
  } finally {
    tf.dispose(ts);
  }
}

const cases: Record<string, () => Promise<void>> = {
  forward: () => runAndSync(() => [tf.tidy(() => model.imageTower(x))]),
  inputGrad: () =>
    runAndSync(() => [
      tf.tidy(() =>
        withoutWeightGrads(() => tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(model.imageTower(xi as tf.Tensor4D), textEmb)))(x)),
      ),
    ]),
  trainStep: async () => {
    const { value, grads } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const logits = tf.mul(tf.matMul(model.imageTower(x), textEmb, false, true), model.logitScale());
          return tf.losses.softmaxCrossEntropy(eye, logits) as tf.Scalar;
        }),
      imageVars,
    );
    await syncAll([value, ...Object.values(grads)]);
    tf.dispose([value, ...Object.values(grads)]);
  },
  fullStep: async () => {
    const { value, grads } = tf.variableGrads(
      () => multiPositiveInfoNce(model.imageTower(x), model.textTower(idsT), owner, model.logitScale()),
      allVars,
    );
    await syncAll([value, ...Object.values(grads)]);
    tf.dispose([value, ...Object.values(grads)]);
  },
  fullStepBuckets: async () => {
    const { value, grads } = tf.variableGrads(
      () => multiPositiveInfoNce(model.imageTower(x), textTowerBucketed(model, bucketIds), bucketed.owner, model.logitScale()),
      allVars,
    );
    await syncAll([value, ...Object.values(grads)]);
    tf.dispose([value, ...Object.values(grads)]);
  },
};

const imgF = imageTowerFlops(config, batch);
const imgD = imageTowerFlops(config, batch, { dense: true });
const txtF = textTowerFlops(config, nCaptions, L);
const flops: Record<string, [number, number]> = {
  forward: [imgF.forward, imgD.forward],
  inputGrad: [imgF.inputGrad, imgD.inputGrad],
  trainStep: [imgF.trainStep, imgD.trainStep],
  fullStep: [imgF.trainStep + txtF.trainStep, imgD.trainStep + txtF.trainStep],
  // useful work only: the bucketed step's FLOPs over its own (shorter) padded lengths
  fullStepBuckets: (() => {
    const t = bucketed.parts.reduce((a, p) => a + textTowerFlops(config, p.rows, p.length).trainStep, 0);
    return [imgF.trainStep + t, imgD.trainStep + t] as [number, number];
  })(),
};

function median(a: number[]): number {
  const b = [...a].sort((p, q) => p - q);
  const m = b.length >> 1;
  return b.length % 2 ? b[m] : (b[m - 1] + b[m]) / 2;
}

interface Result {
  ms: number;
  cpuMs: number;
  gflop: number;
  gflops: number;
  gflopDense: number;
  gflopsDense: number;
  runsMs: number[];
}
const results: Record<string, Result> = {};
const order = args['skip-full'] ? ['forward', 'inputGrad', 'trainStep'] : ['forward', 'inputGrad', 'trainStep', 'fullStep', 'fullStepBuckets'];
// warm up every case first (first calls compile kernels, grow the wasm heap and create cached constants)
for (const name of order) for (let i = 0; i < warmup; i++) await cases[name]();
const tensorsBefore = tf.memory().numTensors;
for (const name of order) {
  const f = cases[name];
  const runs: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await f();
    runs.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const ms = median(runs);
  const [fe, fd] = flops[name];
  results[name] = {
    ms,
    cpuMs: median(cpu),
    gflop: fe / 1e9,
    gflops: fe / 1e9 / (ms / 1e3),
    gflopDense: fd / 1e9,
    gflopsDense: fd / 1e9 / (ms / 1e3),
    runsMs: runs.map((r) => +r.toFixed(2)),
  };
}
const tensorsAfter = tf.memory().numTensors;
const loadAfter = loadavg()[0];

const r2 = (v: number) => +v.toFixed(2);
const out = {
  backend: info.name,
  reason: info.reason,
  preset: config.preset,
  batch,
  imageSize: s,
  captions: nCaptions,
  textLen: L,
  repeats,
  warmup,
  node: process.version,
  date: new Date().toISOString(),
  loadavg1: { before: r2(loadBefore), after: r2(loadAfter) },
  flopFormula: 'matmul FLOPs 2*M*N*K; backward of each product 2x forward; see src/model/flops.ts',
  ...Object.fromEntries(
    Object.entries(results).map(([k, v]) => [
      k,
      {
        ms: r2(v.ms),
        cpuMs: r2(v.cpuMs),
        gflop: +v.gflop.toFixed(3),
        gflops: r2(v.gflops),
        gflopDense: +v.gflopDense.toFixed(3),
        gflopsDense: r2(v.gflopsDense),
        runsMs: v.runsMs,
      },
    ]),
  ),
  tensorLeak: tensorsAfter - tensorsBefore,
  /** WebGPU validation / OOM errors (a failed kernel leaves garbage instead of throwing); always [] elsewhere */
  deviceErrors: webgpuDeviceErrors(),
};

console.log(`backend: ${info.name} (${info.reason})`);
console.log(
  `preset ${config.preset}, batch ${batch}, ${s}x${s} images, ${nCaptions} captions of <= ${L} tokens; ` +
    `median of ${repeats} after ${warmup} warm-up; load average ${loadBefore.toFixed(2)} -> ${loadAfter.toFixed(2)}`,
);
console.log('case             GFLOP   median ms   cpu ms   GFLOP/s  (dense GFLOP/s)   min ms   max ms');
for (const name of order) {
  const r = results[name];
  console.log(
    `${name.padEnd(15)} ${r.gflop.toFixed(3).padStart(6)} ${r.ms.toFixed(1).padStart(11)} ${r.cpuMs.toFixed(1).padStart(8)} ` +
      `${r.gflops.toFixed(1).padStart(9)} ${`(${r.gflopsDense.toFixed(1)})`.padStart(17)} ` +
      `${Math.min(...r.runsMs).toFixed(1).padStart(8)} ${Math.max(...r.runsMs).toFixed(1).padStart(8)}`,
  );
}
if (out.tensorLeak !== 0) console.log(`WARNING: tensor count changed by ${out.tensorLeak} across the benchmark`);
if (out.deviceErrors.length) console.log(`WARNING: ${out.deviceErrors.length} WebGPU device errors: results are invalid`);
if (args.profile) await profileCases();
if (args.json) {
  writeFileSync(args.json, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${args.json}`);
}
model.dispose();
// the threaded wasm build's pthread workers keep the event loop alive: exit explicitly
process.exit(0);

/**
 * --profile: `profile-runs` extra runs of each case under tf.profile; per case the kernel count, the kernel time
 * per run and the top kernels by time grouped by (kernel, input shapes). Wasm kernels run synchronously, so
 * kernel times are wall times (inflated when the machine is loaded); custom ops (scopes) are left out, their
 * kernels are counted.
 */
async function profileCases(): Promise<void> {
  const top = Number(args['profile-top']);
  const profiles: Record<string, unknown> = {};
  const runs = Math.max(1, Number(args['profile-runs']));
  for (const name of order) {
    const kernelsAll: { name: string; inputShapes: (number[] | null)[]; kernelTimeMs: unknown }[] = [];
    for (let r = 0; r < runs; r++) {
      const p = await tf.profile(async () => {
        await cases[name]();
      });
      kernelsAll.push(...(p.kernels as unknown as typeof kernelsAll));
    }
    const info = { kernels: kernelsAll };
    const groups = new Map<string, { n: number; ms: number }>();
    const byKernel = new Map<string, { n: number; ms: number }>();
    let total = 0;
    for (const k of info.kernels) {
      // custom ops (customOp/customGrad) appear as scopes whose time includes their kernels: skip them
      if (tf.getKernel(k.name, tf.getBackend()) == null) continue;
      const ms = (Number(k.kernelTimeMs) || 0) / runs;
      total += ms;
      const key = `${k.name} ${k.inputShapes.map((sh) => `[${sh ?? ''}]`).join(' ')}`;
      const g = groups.get(key) ?? { n: 0, ms: 0 };
      g.n += 1 / runs;
      g.ms += ms;
      groups.set(key, g);
      const bk = byKernel.get(k.name) ?? { n: 0, ms: 0 };
      bk.n += 1 / runs;
      bk.ms += ms;
      byKernel.set(k.name, bk);
    }
    const sorted = [...groups.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, top);
    const kernels = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms);
    const nKernels = Math.round([...byKernel.values()].reduce((a, v) => a + v.n, 0));
    console.log(`\n== profile ${name} (mean of ${runs} runs): ${nKernels} kernels, ${total.toFixed(1)} ms in kernels (median ${results[name].ms.toFixed(1)} ms)`);
    for (const [k, v] of kernels) console.log(`  ${k.padEnd(24)} n=${String(Math.round(v.n)).padStart(4)} ${v.ms.toFixed(1).padStart(7)} ms`);
    console.log('  -- top (kernel, input shapes):');
    for (const [k, v] of sorted) console.log(`  ${v.ms.toFixed(2).padStart(7)} ms  n=${String(Math.round(v.n)).padStart(3)}  ${k}`);
    profiles[name] = {
      kernelCount: nKernels,
      kernelMs: +total.toFixed(2),
      byKernel: Object.fromEntries(kernels.map(([k, v]) => [k, { n: Math.round(v.n), ms: +v.ms.toFixed(2) }])),
    };
  }
  (out as Record<string, unknown>).profile = profiles;
}
