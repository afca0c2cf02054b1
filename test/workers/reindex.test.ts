/**
 * The queue-driven re-index inside workerd (project workerd-pinecone): Cloudflare Queues simulated by miniflare
 * deliver the producer's batches to the Worker's queue() consumer; a poisoned batch goes through retries to the
 * dead-letter queue. The Worker runs with MANYFOLD_INDEX=pinecone against the local Pinecone emulator
 * (test/index/pinecone-emulator.ts, started by test/workers/vitest.config.ts and reached over 127.0.0.1: a
 * stand-in for the service, which is not reachable here): the edge's memory snapshot takes no writes.
 */
import { env } from 'cloudflare:test';
import { call } from './call.js';
import { encode as encodePng } from 'fast-png';
import { describe, expect, it } from 'vitest';

const ADMIN = 'admin-key-0123456789';
const WRITE = 'write-key-0123456789';

function png(seed: number): string {
  const S = 32;
  const data = new Uint8Array(S * S * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + seed * 131) % 256;
  let s = '';
  for (const b of encodePng({ width: S, height: S, data, channels: 3, depth: 8 })) s += String.fromCharCode(b);
  return btoa(s);
}

async function waitFor(runId: string, until: (s: any) => boolean, timeoutMs = 90_000): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const r = await call('GET', `/v1/reindex/${runId}`, ADMIN);
    expect(r.status).toBe(200);
    if (until(r.body.status)) return r.body.status;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out: ${JSON.stringify(r.body.status)}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

/** the emulator's own counts, read over its HTTP API as any Pinecone client would */
async function pineconeCounts(): Promise<Record<string, number>> {
  const r = await fetch(`${env.PINECONE_HOST}/describe_index_stats`, { method: 'POST', headers: { 'api-key': env.PINECONE_API_KEY, 'content-type': 'application/json' }, body: '{}' });
  expect(r.status).toBe(200);
  const body = (await r.json()) as { namespaces: Record<string, { vectorCount: number }> };
  return Object.fromEntries(Object.entries(body.namespaces).map(([k, v]) => [k, v.vectorCount]));
}

describe('re-index through Cloudflare Queues (miniflare) into Pinecone (local emulator over HTTP, not the live service)', () => {
  it('producer -> consumers -> verified namespace -> activate; throughput reported', async () => {
    const N = 120;
    for (let at = 0; at < N; at += 40) {
      const items = Array.from({ length: 40 }, (_, k) => ({ id: `it${at + k}`, image: png(at + k), captions: [`item number ${at + k}`, `a picture ${(at + k) % 7}`], metadata: { n: at + k } }));
      expect((await call('POST', '/v1/items', WRITE, { items, namespace: 'bulk' })).status).toBe(200);
    }
    const before = await call('GET', '/v1/models', ADMIN);
    const candidate = before.body.models.find((m: any) => !m.active).id;
    // ingest wrote to the shared index (every isolate sees it), not to a per-isolate memory copy: the active
    // model's two namespaces (bulk--<tag>--img / --txt) hold every image and caption
    const bulk = (counts: Record<string, number>) => Object.entries(counts).filter(([k]) => k.startsWith('bulk--'));
    const ingested = bulk(await pineconeCounts());
    expect(ingested.map(([k, n]) => [k.slice(k.lastIndexOf('--')), n]).sort()).toEqual([['--img', N], ['--txt', 2 * N]]);
    expect((await call('POST', '/v1/reindex', ADMIN, { model: before.body.active })).status).toBe(409);
    const started = await call('POST', '/v1/reindex', ADMIN, { model: candidate, batchSize: 16 });
    expect(started.status).toBe(202);
    const plan = started.body.plan;
    expect(plan.totalItems).toBeGreaterThanOrEqual(N);
    // not complete yet: activation refused
    const early = await call('POST', `/v1/reindex/${plan.runId}/activate`, ADMIN, {});
    expect([200, 409]).toContain(early.status);
    const status = await waitFor(plan.runId, (s) => s.state !== 'running');
    expect(status.state).toBe('complete');
    expect(status.batches).toEqual({ total: plan.totalBatches, done: plan.totalBatches, dead: 0 });
    for (const v of status.verification) expect(v.actual).toEqual(v.expected);
    // the candidate's own namespaces, next to the active model's, hold the re-embedded records
    const added = bulk(await pineconeCounts()).filter(([k]) => !ingested.some(([old]) => old === k));
    expect(added.map(([k, n]) => [k.slice(k.lastIndexOf('--')), n]).sort()).toEqual([['--img', N], ['--txt', 2 * N]]);
    console.log(`[workerd] re-index: ${status.items.done} items in ${plan.totalBatches} batches of ${plan.batchSize}, ${status.elapsedSeconds} s -> ${status.itemsPerSecond} items/s (1M items: ~${(1e6 / status.itemsPerSecond / 3600).toFixed(1)} h on one consumer)`);
    const act = await call('POST', `/v1/reindex/${plan.runId}/activate`, ADMIN, {});
    expect(act.status).toBe(200);
    expect(act.body.active).toBe(candidate);
    const s = await call('POST', '/v1/search', ADMIN, { text: 'item number 7', target: 'texts', topK: 1, namespace: 'bulk' });
    expect(s.body.model).toBe(candidate);
    expect(s.body.results).toHaveLength(1);
  });

  it('a batch that keeps failing is retried, then dead-lettered: the run is failed, never complete', async () => {
    const runId = 'ri_poisoned';
    const plan = { runId, model: 'no-such-model', tag: 'nosuch', batchSize: 1, totalBatches: 1, totalItems: 1, namespaces: [{ ns: 'bulk', batches: 1, items: 1, expected: { images: 1, texts: 1 } }], createdAt: new Date().toISOString() };
    await env.DATA.put(`reindex/${runId}/plan.json`, JSON.stringify(plan));
    await env.REINDEX_QUEUE.send({ runId, model: 'no-such-model', ns: 'bulk', batch: 0, ids: ['it1'] });
    const status = await waitFor(runId, (s) => s.state !== 'running');
    expect(status.state).toBe('failed');
    expect(status.batches.dead).toBe(1);
    expect((await call('POST', `/v1/reindex/${runId}/activate`, ADMIN, {})).status).toBe(409);
  });
});
