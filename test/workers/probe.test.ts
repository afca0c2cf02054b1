/**
 * Background jobs inside workerd (project workerd-jobs): POST /v1/probes and POST /v1/models/{id}/activate answer
 * 202 once the job's message {kind, id} is on the JOBS_QUEUE (Cloudflare Queues simulated by Miniflare), and the
 * Worker's queue() consumer runs the job to completion from the store (R2, Miniflare's local R2); the report is read
 * back through the API afterwards. The gallery lives in Pinecone — the local emulator (test/index/pinecone-emulator.ts)
 * reached over 127.0.0.1, a stand-in for the service — since the edge's memory snapshot takes no writes; the probe
 * samples it read-only.
 */
import { env, SELF } from 'cloudflare:test';
import { call } from './call.js';
import { encode as encodePng } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { GALLERY } from '../fixtures/gallery.js';

const KEYS = { admin: 'admin-key-0123456789', write: 'write-key-0123456789', search: 'search-key-0123456789' };

function png(rgb: [number, number, number], seed: number): string {
  const S = 32;
  const data = new Uint8Array(S * S * 3);
  for (let i = 0; i < S * S; i++) data.set(rgb.map((c, k) => (k === 0 && (i + seed) % 7 < 3 ? Math.min(255, c + 40) : c)), i * 3);
  let s = '';
  for (const b of encodePng({ width: S, height: S, data, channels: 3, depth: 8 })) s += String.fromCharCode(b);
  return btoa(s);
}

/** polls a GET until `done` says the document is final; the queue consumer runs meanwhile */
async function until(path: string, pick: (body: any) => any, done: (doc: any) => boolean, timeoutMs = 90_000): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const r = await call('GET', path, KEYS.admin);
    expect(r.status).toBe(200);
    const doc = pick(r.body);
    if (done(doc)) return doc;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out: ${JSON.stringify(doc).slice(0, 400)}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

const final = (d: { status: string }) => !['queued', 'running'].includes(d.status);

describe('probes and activations through Cloudflare Queues (miniflare) with the gallery in Pinecone (local emulator, not the live service)', () => {
  it('a probe started through the API is run by the queue consumer; its report is readable afterwards', async () => {
    const info = (await (await SELF.fetch('https://manyfold.test/edge/info')).json()) as { jobs: string; index: string };
    expect(info).toMatchObject({ jobs: 'cloudflare-queues', index: 'pinecone' });
    const items = GALLERY.map((g, i) => ({ id: `g${i}`, image: png(g.rgb, i), captions: [g.caption] }));
    expect((await call('POST', '/v1/items', KEYS.write, { items, namespace: 'gallery' })).status).toBe(200);

    const started = await call('POST', '/v1/probes', KEYS.admin, { namespace: 'gallery', sample: 3, seed: 5, attacks: [{ name: 'blackbox-text', maxQueries: 3 }] });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.probe.status).toBe('queued');
    const t0 = Date.now();
    const probe = await until(`/v1/probes/${started.body.probe.id}`, (b) => b.probe, final);
    expect(probe.status, probe.error).toBe('succeeded');
    expect(probe.report.queries.images).toBe(3);
    expect(probe.report.attacks.map((a: { name: string }) => a.name)).toEqual(['blackbox-text']);
    expect(probe.report.attacks[0].attackQueries).toBeGreaterThan(0);
    // the stored document is what the API served: the consumer wrote it to R2
    const stored = JSON.parse(await (await env.DATA.get(`probes/${probe.id}.json`)).text());
    expect(stored.status).toBe('succeeded');
    expect(stored.report.queries.images).toBe(3);
    console.log(`[workerd] probe via JOBS_QUEUE: 3 items, blackbox-text x3 queries, ${Date.now() - t0} ms from 202 to a readable report`);
  });

  it('an activation started through the API is run by the queue consumer; search then answers with the new model', async () => {
    const models = await call('GET', '/v1/models', KEYS.admin);
    const candidate = models.body.models.find((m: { active: boolean }) => !m.active).id;
    const act = await call('POST', `/v1/models/${candidate}/activate`, KEYS.admin);
    expect(act.status, JSON.stringify(act.body)).toBe(202);
    const job = await until(`/v1/jobs/${act.body.job.id}`, (b) => b.job, (j) => j.status !== 'running');
    expect(job.status, job.error).toBe('succeeded');
    for (const v of job.verification) expect(v.actual).toEqual(v.expected);
    const s = await call('POST', '/v1/search', KEYS.search, { text: 'a blue car parked on the street', target: 'texts', topK: 1, namespace: 'gallery' });
    expect(s.body.model).toBe(candidate);
    expect(s.body.results[0].id).toBe('g2');
  });
});
