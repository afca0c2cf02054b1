/**
 * Minimal-edit discrimination of a trained model on a `scenes` split (src/eval/edits.ts): does a caption prefer
 * its scene over the same scene with one object's shape (or colour) changed, and the image its caption over the
 * edited scene's caption? Chance is 50%; a model blind to shape scores ~50% on the shape rows.
 *
 *   npx tsx scripts/edit-probe.ts --model DIR --data data/scenes/dataset_scenes.json [--split test] [--limit N]
 *     [--edits 2] [--seed 0] [--json OUT] [--backend wasm]
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import { initBackend } from '../src/engine/backend.js';
import { loadArtifact } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { loadDataset } from '../src/data/load.js';
import { editDiscrimination, formatEditReport } from '../src/eval/edits.js';

const flags = z
  .object({
    model: z.string({ error: '--model DIR is required' }),
    data: z.string({ error: '--data dataset_scenes.json is required' }),
    split: z.string().default('test'),
    limit: z.coerce.number().int().min(1).optional(),
    edits: z.coerce.number().int().min(1).max(16).default(2),
    seed: z.coerce.number().int().min(0).default(0),
    json: z.string().optional(),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('wasm'),
  })
  .strict();
const o = parseFlags(flags);

await initBackend(o.backend);
const { model, tokenizer, manifest } = await loadArtifact(o.model);
const enc = new Encoder(model, tokenizer, manifest);
const split = await loadDataset(o.data, { split: o.split, size: enc.imageSize, onProgress: () => {} });
const report = await editDiscrimination(enc, split, { edits: o.edits, seed: o.seed, limit: o.limit });
console.log(formatEditReport(report));
if (o.json) writeFileSync(o.json, JSON.stringify({ model: o.model, data: o.data, split: o.split, ...report }, null, 2) + '\n');
model.dispose();
process.exit(0);
