/**
 * Where a model's image->text top-1 errors on `scenes` come from: for each image of a split, the owner of its
 * top-1 caption, classified by comparing scene graphs (the breakdown quoted in docs/results.md).
 *
 *   manyfold eval --model MODEL --data data/scenes/dataset_scenes.json --export-sims OUT/sims
 *   npx tsx scripts/scene-errors.ts --sims OUT/sims --data data/scenes/dataset_scenes.json [--split test] [--json FILE]
 *
 * Classes: correct; the same objects (colour + shape multiset: a twin); the same colours with other shapes; the
 * same shapes with other colours; anything else. Also image->text R@1 by number of objects, and for single-object
 * images by size class.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { readSims } from '../src/eval/export-sims.js';

const { values: args } = parseArgs({ options: { sims: { type: 'string' }, data: { type: 'string' }, split: { type: 'string', default: 'test' }, json: { type: 'string' } } });
if (!args.sims || !args.data) throw new Error('usage: scene-errors.ts --sims PREFIX --data dataset_scenes.json [--split test] [--json FILE]');

const objectSchema = z.object({ shape: z.string(), color: z.string(), size: z.string().optional() }).loose();
const docSchema = z.object({ images: z.array(z.object({ split: z.string(), scene: z.object({ objects: z.array(objectSchema) }).loose().optional() }).loose()) }).loose();
const parsed = docSchema.safeParse(JSON.parse(readFileSync(args.data, 'utf8')));
if (!parsed.success) throw new Error(`${args.data}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
const scenes = parsed.data.images.filter((im) => im.split === args.split).map((im, k) => {
  if (!im.scene) throw new Error(`${args.data}: image ${k} of split ${args.split} has no scene graph`);
  return im.scene;
});
const sims = await readSims(args.sims);
const { nImages: nI, nTexts: nT } = sims;
if (nI !== scenes.length) throw new Error(`${args.sims}: ${nI} images, but split ${args.split} of ${args.data} has ${scenes.length}`);

const key = (s: (typeof scenes)[number], f: (o: z.infer<typeof objectSchema>) => string) => s.objects.map(f).sort().join(',');
const counts = { correct: 0, sameObjects: 0, sameColoursOtherShapes: 0, sameShapesOtherColours: 0, other: 0 };
const byObjects: Record<number, { correct: number; images: number }> = {};
// single-object images by size class: if errors were a resolution limit, small objects would fail far more often
const singleBySize: Record<string, { correct: number; images: number }> = {};
for (let i = 0; i < nI; i++) {
  let best = -Infinity;
  let top = -1;
  for (let t = 0; t < nT; t++) if (sims.sims[i * nT + t] > best) [best, top] = [sims.sims[i * nT + t], t];
  const owner = sims.captionToImage[top];
  const n = scenes[i].objects.length;
  byObjects[n] ??= { correct: 0, images: 0 };
  byObjects[n].images++;
  const single = n === 1 ? (singleBySize[scenes[i].objects[0].size ?? 'unknown'] ??= { correct: 0, images: 0 }) : undefined;
  if (single) single.images++;
  if (owner === i) {
    counts.correct++;
    byObjects[n].correct++;
    if (single) single.correct++;
    continue;
  }
  const [a, b] = [scenes[i], scenes[owner]];
  if (key(a, (o) => `${o.color} ${o.shape}`) === key(b, (o) => `${o.color} ${o.shape}`)) counts.sameObjects++;
  else if (key(a, (o) => o.color) === key(b, (o) => o.color)) counts.sameColoursOtherShapes++;
  else if (key(a, (o) => o.shape) === key(b, (o) => o.shape)) counts.sameShapesOtherColours++;
  else counts.other++;
}
const out = { sims: args.sims, split: args.split, images: nI, texts: nT, top1: counts, byObjects, singleObjectBySize: singleBySize };
console.log(JSON.stringify(out, null, 2));
if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2) + '\n');
