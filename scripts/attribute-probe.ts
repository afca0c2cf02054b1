/**
 * What a trained model's embeddings know about each object attribute of `scenes` (shape, colour, size): the
 * diagnosis behind the R@1 plateau in docs/results.md.
 *
 *   npx tsx scripts/attribute-probe.ts --model DIR --data data/scenes/dataset_scenes.json [--json OUT] [--backend wasm]
 *
 * On the single-object images (the only ones where an attribute has one value):
 * - image-only probe: nearest class centroid of the train images' embeddings, applied to the test images (and the
 *   1-nearest train neighbour). Chance is 1/6 for shape, 1/8 for colour, 1/3 for size.
 * - text-only probe: the same on the embeddings of those images' captions.
 * - zero-shot: each test image against the 48 prompts "a {colour} {shape}"; is the top prompt's shape / colour right.
 * A tower that ignores an attribute scores at chance on its probe, whatever its retrieval R@1.
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import { initBackend } from '../src/engine/backend.js';
import { loadArtifact } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { loadDataset } from '../src/data/load.js';
import type { DatasetSplit } from '../src/data/types.js';
import { COLORS, SHAPES } from '../src/data/scenes/vocab.js';

const flags = z
  .object({
    model: z.string({ error: '--model DIR is required' }),
    data: z.string({ error: '--data dataset_scenes.json is required' }),
    json: z.string().optional(),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('wasm'),
  })
  .strict();
const o = parseFlags(flags);

await initBackend(o.backend);
const { model, tokenizer, manifest } = await loadArtifact(o.model);
const enc = new Encoder(model, tokenizer, manifest);
const D = enc.dim;
const load = (split: string) => loadDataset(o.data, { split, size: enc.imageSize, onProgress: () => {} });
const [train, test] = await Promise.all([load('train'), load('test')]);
for (const s of [train, test]) {
  if (!s.scenes || s.scenes.some((g) => !g)) throw new Error(`${o.data}: split ${s.name} has images without a scene graph (not a scenes data set?)`);
}

type Attr = 'shape' | 'color' | 'size';
const singles = (s: DatasetSplit) => [...Array(s.count).keys()].filter((i) => s.scenes![i]!.objects.length === 1);
const attr = (s: DatasetSplit, i: number, a: Attr) => String(s.scenes![i]!.objects[0][a]);
const dot = (a: Float32Array, i: number, b: Float32Array | Float64Array, j: number) => {
  let s = 0;
  for (let d = 0; d < D; d++) s += a[i * D + d] * b[j * D + d];
  return s;
};

/** nearest-centroid (cosine) accuracy of rows of `te` against class centroids of rows of `tr` */
function centroidProbe(trRows: { row: number; label: string }[], trEmb: Float32Array, teRows: { row: number; label: string }[], teEmb: Float32Array) {
  const classes = [...new Set(trRows.map((r) => r.label))].sort();
  const cent = new Float64Array(classes.length * D);
  for (const r of trRows) {
    const c = classes.indexOf(r.label);
    for (let d = 0; d < D; d++) cent[c * D + d] += trEmb[r.row * D + d];
  }
  for (let c = 0; c < classes.length; c++) {
    let n = 0;
    for (let d = 0; d < D; d++) n += cent[c * D + d] ** 2;
    for (let d = 0; d < D; d++) cent[c * D + d] /= Math.sqrt(n) || 1;
  }
  let correct = 0;
  let nn = 0;
  for (const r of teRows) {
    let best = -Infinity;
    let arg = -1;
    for (let c = 0; c < classes.length; c++) {
      const s = dot(teEmb, r.row, cent, c);
      if (s > best) [best, arg] = [s, c];
    }
    if (classes[arg] === r.label) correct++;
    let bestNn = -Infinity;
    let labelNn = '';
    for (const t of trRows) {
      const s = dot(teEmb, r.row, trEmb, t.row);
      if (s > bestNn) [bestNn, labelNn] = [s, t.label];
    }
    if (labelNn === r.label) nn++;
  }
  return { centroid: correct, nearestNeighbour: nn, of: teRows.length, classes: classes.length };
}

const imgTr = await enc.embedImagesMatrix(train.images, train.count);
const imgTe = await enc.embedImagesMatrix(test.images, test.count);
const txtTr = await enc.embedTextsMatrix(train.captions);
const txtTe = await enc.embedTextsMatrix(test.captions);
const out: Record<string, unknown> = { model: o.model, data: o.data, singleObject: { train: singles(train).length, test: singles(test).length } };
for (const a of ['shape', 'color', 'size'] as const) {
  const imageRows = (s: DatasetSplit) => singles(s).map((i) => ({ row: i, label: attr(s, i, a) }));
  const captionRows = (s: DatasetSplit) => singles(s).flatMap((i) => s.imageToCaptions[i].map((c) => ({ row: c, label: attr(s, i, a) })));
  out[a] = {
    image: centroidProbe(imageRows(train), imgTr, imageRows(test), imgTe),
    text: centroidProbe(captionRows(train), txtTr, captionRows(test), txtTe),
  };
}
const prompts = SHAPES.flatMap((shape) => COLORS.map((color) => ({ text: `a ${color} ${shape}`, shape, color })));
const pEmb = await enc.embedTextsMatrix(prompts.map((p) => p.text));
const zero = { shape: 0, color: 0, both: 0, of: 0 };
for (const i of singles(test)) {
  let best = -Infinity;
  let arg = 0;
  for (let p = 0; p < prompts.length; p++) {
    const s = dot(imgTe, i, pEmb, p);
    if (s > best) [best, arg] = [s, p];
  }
  const shapeOk = prompts[arg].shape === attr(test, i, 'shape');
  const colorOk = prompts[arg].color === attr(test, i, 'color');
  zero.shape += +shapeOk;
  zero.color += +colorOk;
  zero.both += +(shapeOk && colorOk);
  zero.of++;
}
out.zeroShot = zero;
const pct = (k: number, n: number) => `${k}/${n} (${((100 * k) / n).toFixed(0)}%)`;
for (const a of ['shape', 'color', 'size'] as const) {
  const r = out[a] as { image: ReturnType<typeof centroidProbe>; text: ReturnType<typeof centroidProbe> };
  console.log(`${a.padEnd(6)} image probe centroid ${pct(r.image.centroid, r.image.of)}, 1-NN ${pct(r.image.nearestNeighbour, r.image.of)}; text probe centroid ${pct(r.text.centroid, r.text.of)} (chance 1/${r.image.classes})`);
}
console.log(`zero-shot "a {colour} {shape}": shape ${pct(zero.shape, zero.of)}, colour ${pct(zero.color, zero.of)}, both ${pct(zero.both, zero.of)}`);
if (o.json) writeFileSync(o.json, JSON.stringify(out, null, 2) + '\n');
model.dispose();
process.exit(0);
