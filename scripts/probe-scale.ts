/**
 * Issue 22's scale figure (a measurement, not a test): a probe of a production gallery of --gallery items.
 *
 *   npx tsx scripts/probe-scale.ts --data DATASET.json --model DIR [--split train] [--gallery 10000] [--sample 200] [--json OUT]
 *
 * Starts `manyfold serve` with --model (a child process, as a user runs it), indexes the first --gallery images of
 * --split with their captions through POST /v1/items, then runs POST /v1/probes {sample} with the default attack
 * suite against that production namespace (read-only) and reports the probe's wall time, and from /metrics the
 * time spent searching the index and embedding (the "target" share: what a probe costs the serving system).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { readDatasetFile } from '../src/data/readers.js';
import { startServeChild } from './serve-child.js';

const { values: a } = parseArgs({
  options: {
    data: { type: 'string' },
    model: { type: 'string' },
    split: { type: 'string', default: 'train' },
    gallery: { type: 'string', default: '10000' },
    sample: { type: 'string', default: '200' },
    json: { type: 'string' },
  },
});
if (!a.data || !a.model) throw new Error('--data and --model are required');
const KEY = 'probe-scale-admin-key';
const records = (await readDatasetFile(a.data, { split: a.split })).records.slice(0, Number(a.gallery));
const work = mkdtempSync(join(tmpdir(), 'mf-probe-scale-'));
const server = await startServeChild({ model: a.model, workDir: work, adminKey: KEY });
const url = server.url;
const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
/** a Prometheus histogram's _sum, over the label sets whose text contains `labels` */
const metricSum = async (name: string, labels = ''): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}_sum`) && l.includes(labels))
    .reduce((s, l) => s + Number(l.trim().split(/\s+/).pop()), 0);
};
const sums = async () => ({
  index: await metricSum('manyfold_index_query_seconds'),
  embedText: await metricSum('manyfold_encoder_seconds', 'kind="text"'),
  embedImage: await metricSum('manyfold_encoder_seconds', 'kind="image"'),
  attackChunks: await metricSum('manyfold_encoder_seconds', 'kind="task"'),
});
const out: Record<string, unknown> = { date: new Date().toISOString(), model: a.model, gallery: records.length, sample: Number(a.sample) };
try {
  let t0 = performance.now();
  for (let s = 0; s < records.length; s += 200) {
    const items = records.slice(s, s + 200).map((r) => ({ id: basename(r.imageId, extname(r.imageId)), image: readFileSync(r.imagePaths[0]).toString('base64'), captions: r.captions }));
    const res = await fetch(`${url}/v1/items`, { method: 'POST', headers, body: JSON.stringify({ items }) });
    if (!res.ok) throw new Error(`POST /v1/items: ${res.status} ${await res.text()}`);
    if ((s / 200) % 10 === 0) process.stderr.write(`indexed ${s + items.length}/${records.length}\n`);
  }
  out.indexSeconds = Math.round(performance.now() - t0) / 1000;
  const metricsBefore = await sums();
  t0 = performance.now();
  const created = await fetch(`${url}/v1/probes`, { method: 'POST', headers, body: JSON.stringify({ sample: Number(a.sample) }) });
  const { probe } = (await created.json()) as { probe: { id: string } };
  if (!created.ok) throw new Error(`POST /v1/probes: ${created.status} ${JSON.stringify(probe)}`);
  let doc: { status: string; progress: { done: number; total: number; stage: string; etaSeconds?: number }; report?: Record<string, unknown>; error?: string };
  for (;;) {
    await new Promise((r) => setTimeout(r, 2000));
    doc = ((await (await fetch(`${url}/v1/probes/${probe.id}`, { headers })).json()) as { probe: typeof doc }).probe;
    process.stderr.write(`${doc.status} ${doc.progress.stage} ${doc.progress.done}/${doc.progress.total} eta ${doc.progress.etaSeconds ?? '-'} s\n`);
    if (doc.status !== 'queued' && doc.status !== 'running') break;
  }
  const wall = (performance.now() - t0) / 1000;
  const metricsAfter = await sums();
  out.probeSeconds = Math.round(wall * 10) / 10;
  out.status = doc.status;
  // where the probe's time went, from the server's own histograms: searching the production index, embedding the
  // evaluation queries (the serving path a client's search takes), and the white-box attack chunks
  out.secondsBy = Object.fromEntries(Object.keys(metricsAfter).map((k) => [k, Math.round((metricsAfter[k as keyof typeof metricsAfter] - metricsBefore[k as keyof typeof metricsBefore]) * 10) / 10]));
  out.report = doc.report ?? doc.error;
  console.log(JSON.stringify(out, null, 2));
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
if (a.json) writeFileSync(a.json, `${JSON.stringify(out, null, 2)}\n`);
process.exit(0);
