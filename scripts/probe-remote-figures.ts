/**
 * Issue 22's remote-probe figures on this machine (a measurement, not a test):
 *
 *   npx tsx scripts/probe-remote-figures.ts --data DATASET.json --target-model DIR --surrogate DIR
 *     [--limit 100] [--eps 4] [--steps 10] [--bb-queries 100] [--json OUT]
 *
 * Starts `manyfold serve` (a child process, the bin a user runs) with --target-model, indexes the data set's test
 * split through POST /v1/items (item id = the image's file stem), then probes it over HTTP with
 * `runRemoteProbe` exactly as `manyfold probe --target` does:
 *   1. transfer from --surrogate (another seed's model) + black-box on the target, PNG on the wire;
 *   2. the target's own model as the "surrogate" (white-box through the wire), PNG, beside the same adversarial
 *      images ranked in memory by the same model (float pixels, and quantised to 8 bits): the rank sources agree?
 *   3. the same through JPEG q=85 (4:4:4) without and with expectation over the encoding: what survives the wire.
 * The server runs with rate limits lifted (its default 50 req/s per key would turn the probe's bursts into 429s).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { initBackend } from '../src/engine/backend.js';
import { readDatasetFile } from '../src/data/readers.js';
import { decodeImage, decodeSpecForModel } from '../src/data/imageCache.js';
import { loadArtifact } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { quantize } from '../src/probe/wire.js';
import { bootstrapMeanCI } from '../src/eval/bootstrap.js';
import { startServeChild } from './serve-child.js';
import { renderRemoteMarkdown, runRemoteProbe, type RemoteProbeReport } from '../src/probe/remote.js';
import { parseTargetSpec, TargetClient } from '../src/probe/target/index.js';

const { values: a } = parseArgs({
  options: {
    data: { type: 'string' },
    'target-model': { type: 'string' },
    surrogate: { type: 'string' },
    limit: { type: 'string', default: '100' },
    eps: { type: 'string', default: '4' },
    steps: { type: 'string', default: '10' },
    'bb-queries': { type: 'string', default: '100' },
    json: { type: 'string' },
  },
});
if (!a.data || !a['target-model'] || !a.surrogate) throw new Error('--data, --target-model and --surrogate are required');
const limit = Number(a.limit);
const eps = Number(a.eps);
const steps = Number(a.steps);
const bbQueries = Number(a['bb-queries']);
const KEY = 'probe-figures-admin-key';

await initBackend('wasm');
const work = mkdtempSync(join(tmpdir(), 'mf-probe-figures-'));
const data = await readDatasetFile(a.data, { split: 'test' });
const stem = (p: string) => basename(p, extname(p));
const records = data.records;

// the server under test (rate limits lifted: its default 50 requests/s per key would turn the probe's bursts into 429s)
const server = await startServeChild({ model: a['target-model'], workDir: work, adminKey: KEY, config: { limits: { ratePerSecond: 1e6, rateBurst: 1e6 } } });
const url = server.url;
console.error(`target: ${url}`);
const results: Record<string, unknown> = { date: new Date().toISOString(), data: a.data, targetModel: a['target-model'], surrogate: a.surrogate, limit, eps, steps, bbQueries };
try {
  // index the whole test split (the gallery), as a user would: image files + captions over HTTP
  const t0 = performance.now();
  for (let s = 0; s < records.length; s += 100) {
    const items = records.slice(s, s + 100).map((r) => ({ id: stem(r.imageId), image: readFileSync(r.imagePaths[0]).toString('base64'), captions: r.captions }));
    const res = await fetch(`${url}/v1/items`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ items }) });
    if (!res.ok) throw new Error(`POST /v1/items: ${res.status} ${await res.text()}`);
  }
  results.indexSeconds = Math.round(performance.now() - t0) / 1000;
  results.gallery = { items: records.length, captions: records.reduce((n, r) => n + r.captions.length, 0) };

  const spec = parseTargetSpec(
    {
      name: 'manyfold serve (other seed)',
      request: { url: `${url}/v1/search`, method: 'POST', headers: { authorization: 'Bearer ${KEY}' } },
      text: { body: { text: '{{text}}', target: 'images', topK: '{{topK}}' } },
      image: { encoding: 'json', body: { image: '{{imageBase64}}', target: 'texts', topK: '{{topK}}' } },
      response: { results: 'results', id: 'id', score: 'score' },
      limits: { concurrency: 2, retries: 2 },
    },
    'figures target',
    { KEY },
  );

  const queriesFor = async (size: number, cfg: Parameters<typeof decodeSpecForModel>[0]) => {
    const sel = records.slice(0, limit);
    const spec2 = decodeSpecForModel(cfg);
    const images = new Uint8Array(sel.length * size * size * 3);
    for (const [i, r] of sel.entries()) images.set(await decodeImage(readFileSync(r.imagePaths[0]), spec2), i * size * size * 3);
    const captions: string[] = [];
    const captionToImage: number[] = [];
    sel.forEach((r, i) => r.captions.forEach((c) => (captions.push(c), captionToImage.push(i))));
    return { size, images, targetIds: sel.map((r) => stem(r.imageId)), labels: sel.map((r) => r.where), captions, captionToImage };
  };

  const run = async (
    label: string,
    surrogateDir: string,
    attacks: Parameters<typeof runRemoteProbe>[0]['attacks'],
    encoding: Parameters<typeof runRemoteProbe>[0]['encoding'],
    onAttackOutput?: Parameters<typeof runRemoteProbe>[0]['onAttackOutput'],
  ): Promise<RemoteProbeReport> => {
    const s = await loadArtifact(surrogateDir);
    try {
      const q = await queriesFor(s.model.config.image.size, s.model.config);
      const report = await runRemoteProbe({ client: new TargetClient(spec), queries: q, attacks, surrogate: { encoder: s.model, tokenizer: s.tokenizer, id: s.manifest.id }, encoding, topK: 10, seed: 0, ...(onAttackOutput ? { onAttackOutput } : {}) });
      console.log(`\n## ${label}\n${renderRemoteMarkdown(report)}`);
      return report;
    } finally {
      s.model.dispose();
    }
  };
  results.transfer = await run(
    'transfer from another seed + black-box, PNG',
    a.surrogate,
    [
      { name: 'transfer-pgd', eps, steps },
      { name: 'transfer-text' },
      { name: 'blackbox-image', eps, maxQueries: bbQueries },
      { name: 'blackbox-text', maxQueries: Math.max(10, Math.round(bbQueries / 2)) },
    ],
    { format: 'png' },
  );
  // the in-memory rank source: the target's model in this process, the gallery = every caption of the split (the
  // server's texts namespace), rank = position of the item's first caption, cut at 10 as the server's top-10
  const target = await loadArtifact(a['target-model']);
  const enc = new Encoder(target.model, target.tokenizer, target.manifest);
  const galleryCaps = records.flatMap((r) => r.captions);
  const galleryOwner = records.flatMap((r, i) => r.captions.map(() => i));
  const gallery = enc.embedTextsMatrix(galleryCaps);
  const E = enc.dim;
  const inMemoryRanks = (pixels: Float32Array | Uint8Array, n: number): number[] => {
    const emb = enc.embedImagesMatrix(pixels, n);
    return Array.from({ length: n }, (_, i) => {
      const scores = Array.from({ length: galleryCaps.length }, (_, c) => {
        let d = 0;
        for (let k = 0; k < E; k++) d += emb[i * E + k] * gallery[c * E + k];
        return d;
      });
      const order = scores.map((v, c) => [v, c] as const).sort((x, y) => y[0] - x[0]);
      const r = order.findIndex(([, c]) => galleryOwner[c] === i);
      return Math.min(r, 10);
    });
  };
  const r1 = (ranks: number[]) => bootstrapMeanCI(ranks.map((r) => (r < 1 ? 1 : 0)), { scale: 100, seed: 0 });
  const inMemory: Record<string, unknown> = {};
  const cleanQ = await queriesFor(enc.imageSize, enc.config);
  inMemory.cleanR1 = r1(inMemoryRanks(cleanQ.images, limit));
  results.whiteboxPng = await run('the target model as surrogate (white-box through the wire), PNG', a['target-model'], [{ name: 'transfer-pgd', eps, steps }], { format: 'png' }, (_name, res) => {
    const adv = res.images!.data;
    inMemory.pgdFloatR1 = r1(inMemoryRanks(adv, limit));
    inMemory.pgdUint8R1 = r1(inMemoryRanks(quantize(adv), limit));
  });
  results.inMemory = inMemory;
  console.log(`\nin memory (tfjs, same model and items): clean R@1 ${JSON.stringify(inMemory.cleanR1)}\n  PGD float ${JSON.stringify(inMemory.pgdFloatR1)}\n  PGD 8-bit ${JSON.stringify(inMemory.pgdUint8R1)}`);
  target.model.dispose();
  results.whiteboxJpeg85 = await run('the target model as surrogate, JPEG q=85 (no expectation over encoding)', a['target-model'], [{ name: 'transfer-pgd', eps, steps }], { format: 'jpeg', quality: 85 });
  results.whiteboxJpeg85Eot = await run('the target model as surrogate, JPEG q=85 with expectation over the encoding', a['target-model'], [{ name: 'transfer-pgd', eps, steps, eot: true }], { format: 'jpeg', quality: 85 });
  results.transferJpeg85Eot = await run('transfer from another seed, JPEG q=85 with expectation over the encoding', a.surrogate, [{ name: 'transfer-pgd', eps, steps, eot: true }], { format: 'jpeg', quality: 85 });
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
if (a.json) writeFileSync(a.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
