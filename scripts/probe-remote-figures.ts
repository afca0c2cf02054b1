/**
 * Issue 22's probe figures on this machine (a measurement, not a test):
 *
 *   npx tsx scripts/probe-remote-figures.ts --data DATASET.json --target-model DIR --surrogate DIR
 *     [--limit 100] [--eps 4] [--steps 10] [--bb-queries 100] [--json OUT]
 *
 * Starts a Manyfold server on 127.0.0.1 with --target-model, indexes the data set's test split through
 * POST /v1/items (item id = the image's file stem), then runs the one robust-recall runner (src/eval/robust):
 *   1. consistency: the same model and items through the three rank sources: in memory (the whole test split as
 *      the gallery), the server's live index (in process, read-only), and the server over HTTP as a remote target
 *      (PNG on the wire; the attacks crafted on the target's own model as the "surrogate", so the perturbations are
 *      the same seeds on the same model as the white-box ones);
 *   2. transfer from --surrogate (another seed's model) + black-box on the target, PNG;
 *   3. the target's own model through JPEG q=85 (4:4:4) without and with expectation over the encoding, and the
 *      transfer from the other seed with it: what survives the wire.
 * The server runs with rate limits lifted (its default 50 req/s per key would turn the probe's bursts into 429s).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { readDatasetFile } from '../src/data/readers.js';
import { decodeImage, decodeSpecForModel } from '../src/data/imageCache.js';
import { loadArtifact } from '../src/model/artifact.js';
import { startServer } from '../src/node/server.js';
import { LiveIndexRankSource } from '../src/api/probe-source.js';
import { MemoryRankSource, renderRobustMarkdown, runRobustProbe, type ProbeAttackSpec, type ProbeQuerySet, type RankSource, type RobustProbeReport, type Surrogate } from '../src/eval/robust/index.js';
import { RemoteRankSource } from '../src/probe/remote.js';
import { TargetClient } from '../src/probe/target/index.js';
import { manyfoldTarget } from '../test/probe/manyfold-target.js';
import type { WireEncoding } from '../src/probe/wire.js';

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

const work = mkdtempSync(join(tmpdir(), 'mf-probe-figures-'));
const data = await readDatasetFile(a.data, { split: 'test' });
const stem = (p: string) => basename(p, extname(p));
const records = data.records;

const server = await startServer({
  modelDir: a['target-model'],
  dataDir: join(work, 'data'),
  port: 0,
  host: '127.0.0.1',
  env: { MANYFOLD_API_KEYS: `${KEY}=admin` },
  logger: pino({ level: 'warn' }),
  overrides: { limits: { ratePerSecond: 1e6, rateBurst: 1e6 } },
});
const url = server.url;
console.error(`target: ${url} (engine ${server.api.service.active.encoder.engine})`);
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

  const spec = manyfoldTarget(url, { name: 'manyfold serve (the target model)', key: KEY, limits: { concurrency: 2, retries: 2 } });

  const model = server.api.service.active;
  const S = model.encoder.imageSize;
  const per = S * S * 3;
  const decode = decodeSpecForModel(model.encoder.config);
  const all = new Uint8Array(records.length * per);
  for (const [i, r] of records.entries()) all.set(await decodeImage(readFileSync(r.imagePaths[0]), decode), i * per);
  const sel = records.slice(0, limit);
  const captionsOf = (rs: typeof records) => ({ captions: rs.flatMap((r) => r.captions), captionToImage: rs.flatMap((r, i) => r.captions.map(() => i)) });
  const queries: ProbeQuerySet = { size: S, images: all.subarray(0, sel.length * per), ids: sel.map((r) => stem(r.imageId)), labels: sel.map((r) => r.where), ...captionsOf(sel), origin: `the first ${sel.length} test images of ${basename(a.data!)}` };

  const probe = async (label: string, source: RankSource, attacks: ProbeAttackSpec[], surrogate?: Surrogate): Promise<RobustProbeReport> => {
    const report = await runRobustProbe({ source, queries, attacks, ...(surrogate ? { surrogate } : {}), topK: 10, seed: 0 });
    console.log(`\n## ${label}\n${renderRobustMarkdown(report)}`);
    return report;
  };
  const remote = (encoding: WireEncoding) => new RemoteRankSource(new TargetClient(spec), encoding);
  const withSurrogate = async <T>(dir: string, fn: (s: Surrogate) => Promise<T>): Promise<T> => {
    const m = await loadArtifact(dir);
    try {
      return await fn({ encoder: m.model, tokenizer: m.tokenizer, id: m.manifest.id });
    } finally {
      m.model.dispose();
    }
  };

  // 1. consistency: one model, one gallery, three rank sources; the same seeds craft the same perturbations
  const whiteBox: ProbeAttackSpec[] = [
    { name: 'pgd', eps, steps },
    { name: 'text', maxWordsChanged: 1 },
  ];
  const memory = await MemoryRankSource.create(model.encoder, { size: S, images: all, ids: records.map((r) => stem(r.imageId)), ...captionsOf(records) });
  const consistency: Record<string, RobustProbeReport> = {};
  consistency.inMemory = await probe('in memory (white-box)', memory, whiteBox);
  consistency.liveIndex = await probe('live index, in process (white-box)', new LiveIndexRankSource(server.api.service, model, 'default'), whiteBox);
  consistency.remotePng = await withSurrogate(a['target-model']!, (s) =>
    probe('own server over HTTP, PNG (the target model as the surrogate)', remote({ format: 'png' }), [{ name: 'transfer-pgd', eps, steps }, { name: 'transfer-text', maxWordsChanged: 1 }], s),
  );
  results.consistency = consistency;

  // 2. transfer from another seed + black-box, PNG
  results.transfer = await withSurrogate(a.surrogate!, (s) =>
    probe('transfer from another seed + black-box, PNG', remote({ format: 'png' }), [
      { name: 'transfer-pgd', eps, steps },
      { name: 'transfer-text', maxWordsChanged: 1 },
      { name: 'blackbox-image', eps, maxQueries: bbQueries },
      { name: 'blackbox-text', maxQueries: Math.max(10, Math.round(bbQueries / 2)) },
    ], s),
  );

  // 3. what survives JPEG q=85
  const jpeg: WireEncoding = { format: 'jpeg', quality: 85 };
  results.whiteboxJpeg85 = await withSurrogate(a['target-model']!, (s) => probe('the target model as surrogate, JPEG q=85 (no expectation over encoding)', remote(jpeg), [{ name: 'transfer-pgd', eps, steps }], s));
  results.whiteboxJpeg85Eot = await withSurrogate(a['target-model']!, (s) => probe('the target model as surrogate, JPEG q=85 with expectation over the encoding', remote(jpeg), [{ name: 'transfer-pgd', eps, steps, eot: true }], s));
  results.transferJpeg85Eot = await withSurrogate(a.surrogate!, (s) => probe('transfer from another seed, JPEG q=85 with expectation over the encoding', remote(jpeg), [{ name: 'transfer-pgd', eps, steps, eot: true }], s));
} finally {
  await server.close();
  rmSync(work, { recursive: true, force: true });
}
if (a.json) writeFileSync(a.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
