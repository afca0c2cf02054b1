/**
 * Attack throughput on the tiny dual encoder (32x32 images, D=128), untrained weights (throughput does not
 * depend on training).
 *
 *   tsx scripts/bench-attacks.ts [--json OUT] [--backend auto|wasm|cpu] [--images 64] [--captions 256]
 *
 * Measures: image PGD steps/s at batch 64 (L-inf and L2, 10 steps, input-only gradients), the SGA image stage
 * (5 replicas per image through resizeBilinear), and text-attack candidates scored per second (WordNet PWWS
 * with cold and warm synonym caches, char edits). Prints a table and optionally writes JSON.
 */
import { writeFileSync } from 'node:fs';
import { tf } from '../src/engine/tf.js';
import { initBackend, type BackendKind } from '../src/engine/backend.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
import { buildTokenizer } from '../src/model/tokenizer.js';
import { attackByName, type AttackName } from '../src/attacks/index.js';
import { Rng } from '../src/util/rng.js';

function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const SIZES = ['small', 'large', 'tiny', 'big'];
const COLORS = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'white', 'black'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'heart', 'cross'];
const RELS = ['left of', 'right of', 'above', 'below', 'next to', 'near'];

function captionsFor(n: number, rng: Rng): string[] {
  return Array.from({ length: n }, () => `a ${rng.pick(SIZES)} ${rng.pick(COLORS)} ${rng.pick(SHAPES)} ${rng.pick(RELS)} a ${rng.pick(SIZES)} ${rng.pick(COLORS)} ${rng.pick(SHAPES)}`);
}

async function main(): Promise<void> {
  const backend = await initBackend((arg('backend', 'auto') as BackendKind) ?? 'auto');
  const nImages = Number(arg('images', '64'));
  const nCaptions = Number(arg('captions', '256'));
  const rng = new Rng(0);
  const captions = captionsFor(Math.max(nCaptions, nImages), rng);
  const tokenizer = buildTokenizer(captions, { maxLen: 32 });
  const config = modelConfigFromPreset('tiny', tokenizer.vocabSize);
  const encoder = createDualEncoder(config, 0);
  const S = config.image.size;
  const images = Float32Array.from({ length: nImages * S * S * 3 }, () => rng.next());
  const imgCaps = captions.slice(0, nImages);
  const pairing = imgCaps.map((_, i) => i);
  const env = { encoder, tokenizer };
  const rows: Record<string, unknown>[] = [];

  const time = async (name: AttackName, opts: Record<string, unknown>, batch: Parameters<ReturnType<typeof attackByName>['run']>[0]) => {
    const t0 = performance.now();
    const r = await attackByName(name, opts).run(batch, env);
    return { ms: performance.now() - t0, r };
  };

  // warm-up (kernels, op caches, WordNet files)
  await time('pgd', { steps: 1 }, { images: images.subarray(0, 8 * S * S * 3), size: S, captions: imgCaps.slice(0, 8), captionToImage: pairing.slice(0, 8) });
  const tensors0 = tf.memory().numTensors;

  for (const norm of ['linf', 'l2'] as const) {
    const steps = 10;
    const eps = norm === 'linf' ? 2 / 255 : 0.5;
    const stepSize = norm === 'linf' ? 0.5 / 255 : 0.1;
    const { ms } = await time('pgd', { steps, norm, eps, stepSize, batchSize: nImages }, { images, size: S, captions: imgCaps, captionToImage: pairing });
    // steps gradient passes + 1 final forward + clean/caption embeddings; report whole-attack throughput
    rows.push({ bench: `pgd-${norm}`, batch: nImages, steps, ms: round(ms), 'steps/s': round((steps / ms) * 1000, 2), 'image-steps/s': round(((steps * nImages) / ms) * 1000, 1) });
  }
  {
    const steps = 10;
    const { ms, r } = await time('sga', { steps, batchSize: nImages }, { images, size: S, captions: imgCaps, captionToImage: pairing });
    rows.push({ bench: 'sga (image+text, 5 replicas)', batch: nImages, steps, ms: round(ms), 'steps/s': round((steps / ms) * 1000, 2), 'image-steps/s': round(((steps * nImages) / ms) * 1000, 1), candidates: r.captions!.queries.reduce((a, b) => a + b, 0) });
  }
  for (const [label, name, opts] of [
    ['text-pwws (cold WordNet cache)', 'text', {}],
    ['text-pwws (warm WordNet cache)', 'text', {}],
    ['text-charedit', 'charedit', {}],
  ] as const) {
    const attack = attackByName(name, { ...opts, seed: 1 });
    if (label.includes('warm')) await attack.run({ captions: captions.slice(0, nCaptions), images: undefined }, env);
    const t0 = performance.now();
    const r = await attack.run({ captions: captions.slice(0, nCaptions) }, env);
    const ms = performance.now() - t0;
    const cands = r.captions!.queries.reduce((a, b) => a + b, 0);
    rows.push({ bench: label, captions: nCaptions, ms: round(ms), candidates: cands, 'candidates/s': round((cands / ms) * 1000, 0) });
  }
  const leaked = tf.memory().numTensors - tensors0;
  encoder.dispose();

  console.log(`backend: ${backend.name} (${backend.reason})`);
  console.table(rows);
  console.log(`tensors leaked across the benchmark: ${leaked}`);
  const out = arg('json');
  if (out) {
    const report = { date: new Date().toISOString(), backend, model: 'tiny (32x32, D=128, untrained)', node: process.version, rows, leakedTensors: leaked };
    writeFileSync(out, JSON.stringify(report, null, 2));
    console.log(`wrote ${out}`);
  }
}

function round(x: number, d = 0): number {
  const p = 10 ** d;
  return Math.round(x * p) / p;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
