/**
 * Probe lifecycle: async job with progress, report (robust recall per attack, ASR, worst case, CIs, query
 * counts, protocol) as JSON and HTML, concurrency limit (queued), cancellation, restart persistence
 * (finished reports survive; interrupted probes are re-queued and finish), supplied pairs (scratch namespace).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/node/server.js';
import { CAPTIONS, KEYS, client, makeModels, png, rmrf, start, tmp, waitFor } from './helpers.js';

let root: string;
let modelDir: string;
const FAST = [
  { name: 'pgd', eps: 4, steps: 2 },
  { name: 'charedit', maxWordsChanged: 1 },
  { name: 'blackbox-text', maxQueries: 8 },
  { name: 'blackbox-image', eps: 8, maxQueries: 6 },
];

beforeAll(async () => {
  root = tmp('probe');
  modelDir = (await makeModels(`${root}/models`, [4]))[0].dir;
});
afterAll(() => rmrf(root));

async function seed(call: ReturnType<typeof client>) {
  const items = [];
  for (let i = 0; i < 8; i++) {
    items.push({ id: `p${i}`, image: (await png(20, 20, [(i * 53) % 255, (i * 29) % 255, (i * 101) % 255], i)).toString('base64'), captions: [CAPTIONS[i % 6], `${CAPTIONS[(i + 2) % 6]} number ${i}`] });
  }
  expect((await call('POST', '/v1/items', { key: KEYS.admin, json: { items } })).status).toBe(200);
}

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

describe('probes', () => {
  it('runs a probe to a full report (JSON + HTML); finished reports survive a restart; delete', async () => {
    const data = `${root}/d1`;
    let srv: RunningServer = await start({ modelDir, dataDir: data });
    let call = client(srv.url);
    await seed(call);
    const r = await call('POST', '/v1/probes', { key: KEYS.probe, json: { sample: 4, attacks: FAST, seed: 3, resamples: 200 } });
    expect(r.status, r.text).toBe(202);
    const id = r.body.probe.id;
    expect(['queued', 'running']).toContain(r.body.probe.status);
    const seen = new Set<string>();
    const done = await waitFor(async () => {
      const p = (await call('GET', `/v1/probes/${id}`, { key: KEYS.probe })).body.probe;
      seen.add(p.status);
      return p.status === 'succeeded' || p.status === 'failed' ? p : undefined;
    }, 90_000, 100);
    expect(done.status, done.error).toBe('succeeded');
    expect(done.progress.done).toBe(done.progress.total);
    const rep = done.report;
    expect(rep).toMatchObject({ format: 'manyfold-robust/1', source: { kind: 'live-index', namespace: 'default', index: 'lancedb' }, queries: { images: 4, captions: 8 }, goalK: 1, seed: 3, partial: false });
    expect(rep.queries.origin).toMatch(/sampled with seed 3 from namespace "default"/);
    for (const d of [rep.clean.tr, rep.clean.ir]) {
      expect(d.recall.r1.mean).toBeGreaterThanOrEqual(0);
      expect(d.recall.r10.mean).toBeGreaterThanOrEqual(d.recall.r5.mean);
      expect(d.recall.r1.lo).toBeLessThanOrEqual(d.recall.r1.mean);
      expect(d.recall.r1.hi).toBeGreaterThanOrEqual(d.recall.r1.mean);
    }
    expect(rep.attacks.map((a: any) => a.name)).toEqual(['pgd', 'charedit', 'blackbox-text', 'blackbox-image']);
    const byName = Object.fromEntries(rep.attacks.map((a: any) => [a.name, a]));
    expect(byName.pgd).toMatchObject({ threatModel: 'white-box' });
    expect(byName.pgd.tr).toBeDefined();
    expect(byName.pgd.ir).toBeUndefined();
    expect(byName.pgd.modelQueries, 'white-box work is counted apart from system queries').toBeGreaterThan(0);
    expect(byName.pgd.attackQueries).toBe(0);
    expect(byName.charedit.ir).toBeDefined();
    expect(byName['blackbox-text']).toMatchObject({ threatModel: 'black-box' });
    expect(byName['blackbox-text'].attackQueries).toBeGreaterThan(0);
    expect(byName['blackbox-text'].attackQueries).toBeLessThanOrEqual(8 * 8);
    expect(byName['blackbox-image'].attackQueries).toBeLessThanOrEqual(4 * 6);
    for (const a of rep.attacks) {
      expect(a.evalQueries).toBeGreaterThan(0);
      for (const d of [a.tr, a.ir].filter(Boolean)) {
        expect(d.asr.asr).toBeGreaterThanOrEqual(0);
        expect(d.asr.asr).toBeLessThanOrEqual(100);
        expect(d.n).toBeGreaterThan(0);
      }
    }
    // worst case never beats any single attack in its direction
    const minTr = Math.min(...rep.attacks.filter((a: any) => a.tr).map((a: any) => a.tr.recall.r10.mean));
    expect(rep.robust.tr.recall.r10.mean).toBeLessThanOrEqual(minTr);
    expect(rep.protocol).toMatch(/bootstrap/);
    expect(rep.protocol).toContain(rep.source.name);
    const html = await call('GET', `/v1/probes/${id}?format=html`, { key: KEYS.probe });
    expect(html.headers.get('content-type')).toMatch(/text\/html/);
    expect(html.text).toContain('<svg');
    expect(html.text).toContain('worst case');
    expect(html.text).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    const list = await call('GET', '/v1/probes', { key: KEYS.probe });
    expect(list.body.probes[0]).toMatchObject({ id, status: 'succeeded' });

    await srv.close();
    srv = await start({ modelDir, dataDir: data });
    call = client(srv.url);
    try {
      const again = await call('GET', `/v1/probes/${id}`, { key: KEYS.probe });
      expect(again.body.probe.report).toEqual(rep);
      expect((await call('DELETE', `/v1/probes/${id}`, { key: KEYS.probe })).body).toEqual({ id, status: 'deleted' });
      expect((await call('GET', `/v1/probes/${id}`, { key: KEYS.probe })).status).toBe(404);
    } finally {
      await srv.close();
    }
  });

  it('concurrency limit, cancellation of running and queued probes, re-queue after a restart', async () => {
    const data = `${root}/d2`;
    const g = gate();
    let pausedId: string | undefined;
    const srv = await start({
      modelDir,
      dataDir: data,
      overrides: { limits: { probeConcurrency: 1, maxProbesPending: 3 } },
      hooks: { probes: { beforeChunk: async (p) => { pausedId = p.id; await g.p; } } },
    });
    const call = client(srv.url);
    await seed(call);
    const body = { sample: 2, attacks: [{ name: 'blackbox-text', maxQueries: 3 }], resamples: 100 };
    const a = (await call('POST', '/v1/probes', { key: KEYS.probe, json: body })).body.probe.id;
    const b = (await call('POST', '/v1/probes', { key: KEYS.probe, json: body })).body.probe.id;
    const c = (await call('POST', '/v1/probes', { key: KEYS.probe, json: body })).body.probe.id;
    const d = await call('POST', '/v1/probes', { key: KEYS.probe, json: body });
    expect(d.status).toBe(429); // maxProbesPending
    await waitFor(async () => pausedId === a);
    expect((await call('GET', `/v1/probes/${a}`, { key: KEYS.probe })).body.probe.status).toBe('running');
    expect((await call('GET', `/v1/probes/${b}`, { key: KEYS.probe })).body.probe.status).toBe('queued');
    // cancel the queued one, then the running one
    expect((await call('DELETE', `/v1/probes/${b}`, { key: KEYS.probe })).body).toEqual({ id: b, status: 'canceled' });
    const cancelRunning = call('DELETE', `/v1/probes/${a}`, { key: KEYS.probe });
    await new Promise((r) => setTimeout(r, 50));
    // stop the server while c waits behind the gate: c must be re-queued at the next start
    const cancelRes = await Promise.race([cancelRunning, new Promise((r) => setTimeout(() => r('pending'), 200))]);
    expect(cancelRes).toBe('pending'); // cancel waits for the running chunk to notice
    const closing = srv.close();
    g.open();
    expect((await cancelRunning).body).toEqual({ id: a, status: 'canceled' });
    await closing;
    const stA = (await srv.api.probes.get(a))!.status;
    expect(stA).toBe('canceled');
    expect((await srv.api.probes.get(b))!.status).toBe('canceled');

    const srv2 = await start({ modelDir, dataDir: data });
    try {
      const call2 = client(srv2.url);
      const pc = await waitFor(async () => {
        const p = (await call2('GET', `/v1/probes/${c}`, { key: KEYS.probe })).body.probe;
        return p.status === 'succeeded' || p.status === 'failed' ? p : undefined;
      }, 60_000, 100);
      expect(pc.status).toBe('succeeded');
      expect((await call2('GET', `/v1/probes/${a}`, { key: KEYS.probe })).body.probe.status).toBe('canceled');
    } finally {
      await srv2.close();
    }
  });

  it('supplied pairs are probed in a scratch namespace that is dropped afterwards', async () => {
    const srv = await start({ modelDir, dataDir: `${root}/d3` });
    try {
      const call = client(srv.url);
      const pairs = [];
      for (let i = 0; i < 3; i++) pairs.push({ image: (await png(12, 12, [i * 80, 100, 200 - i * 60], i)).toString('base64'), captions: [CAPTIONS[i]] });
      const r = await call('POST', '/v1/probes', { key: KEYS.admin, json: { pairs, attacks: [{ name: 'pgd', eps: 2, steps: 1 }], resamples: 100 } });
      expect(r.status, r.text).toBe(202);
      await srv.api.probes.idle();
      const p = (await call('GET', `/v1/probes/${r.body.probe.id}`, { key: KEYS.admin })).body.probe;
      expect(p.status, p.error).toBe('succeeded');
      expect(p.report.queries).toMatchObject({ images: 3, captions: 3 });
      expect(p.report.queries.origin).toMatch(/supplied pairs/);
      expect(p.request.pairs[0].image).toMatch(/^[0-9a-f]{64}$/); // stored as a blob reference, not base64
      const nss = await srv.index.listNamespaces();
      expect(nss.filter((n) => n.startsWith('probe'))).toEqual([]);
      // empty namespace: clear 422 as a failed probe
      const e = await call('POST', '/v1/probes', { key: KEYS.admin, json: { namespace: 'empty', attacks: [{ name: 'pgd', steps: 1 }] } });
      await srv.api.probes.idle();
      const pe = (await call('GET', `/v1/probes/${e.body.probe.id}`, { key: KEYS.admin })).body.probe;
      expect(pe.status).toBe('failed');
      expect(pe.error).toMatch(/no items/);
    } finally {
      await srv.close();
    }
  });

  it('a sampled probe searches the production index read-only: namespaces, counts, records and items unchanged', async () => {
    const srv = await start({ modelDir, dataDir: `${root}/d-readonly` });
    try {
      const call = client(srv.url);
      await seed(call);
      const { index, store } = srv.api.service;
      const snapshot = async () => {
        const names = (await index.listNamespaces()).sort();
        const stats = await Promise.all(names.map(async (n) => [n, (await index.stats(n)).count]));
        const items = (await store.listItems('default')).map((i) => ({ id: i.id, hash: i.contentHash, at: i.updatedAt }));
        const imageNs = names.find((n) => n.endsWith('--img'))!;
        const vectors = (await index.fetch!(imageNs, items.map((i) => i.id))).map((r) => [r.id, Array.from(r.values).slice(0, 8)]);
        return { names, stats, items, vectors };
      };
      const before = await snapshot();
      expect(before.names.length).toBe(2); // the model's image and text namespaces
      const indexQueries = async () => Number(/^manyfold_index_query_seconds_count (\d+)/m.exec((await call('GET', '/metrics', { key: KEYS.admin })).text)![1]);
      const queriesBefore = await indexQueries();
      const r = await call('POST', '/v1/probes', { key: KEYS.probe, json: { sample: 6, attacks: [{ name: 'pgd', eps: 8, steps: 2 }, { name: 'blackbox-text', maxQueries: 4 }], resamples: 100 } });
      expect(r.status, r.text).toBe(202);
      const etas: number[] = [];
      const done = await waitFor(async () => {
        const p = (await call('GET', `/v1/probes/${r.body.probe.id}`, { key: KEYS.probe })).body.probe;
        if (p.progress.etaSeconds !== undefined) etas.push(p.progress.etaSeconds);
        return p.status === 'succeeded' || p.status === 'failed' ? p : undefined;
      }, 90_000, 20);
      expect(done.status, done.error).toBe('succeeded');
      expect(done.report.queries.origin).toMatch(/sampled/);
      expect(done.progress.etaSeconds, 'no ETA once done').toBeUndefined();
      expect(etas.length, 'an ETA while running').toBeGreaterThan(0);
      expect(etas.every((e) => Number.isFinite(e) && e >= 0)).toBe(true);
      expect(await snapshot()).toEqual(before);
      // the probe's searches are the production index's queries too (the metrics histogram observes them)
      const evalSearches = done.report.attacks.reduce((n: number, a: { evalQueries: number }) => n + a.evalQueries, 0);
      expect((await indexQueries()) - queriesBefore).toBeGreaterThanOrEqual(evalSearches);
    } finally {
      await srv.close();
    }
  });

  it('halfWidth picks the sample size for the wanted interval, bounded by the namespace and limits.maxProbeSample', async () => {
    const srv = await start({ modelDir, dataDir: `${root}/d-halfwidth`, overrides: { limits: { maxProbeSample: 500 } } });
    try {
      const call = client(srv.url);
      await seed(call);
      const ok = await call('POST', '/v1/probes', { key: KEYS.probe, json: { halfWidth: 5, attacks: [{ name: 'blackbox-text', maxQueries: 2 }], resamples: 100 } });
      expect(ok.status, ok.text).toBe(202);
      expect(ok.body.probe.request.sample).toBe(385); // ceil(1.96^2 * 0.25 / 0.05^2)
      await srv.api.probes.idle();
      const done = (await call('GET', `/v1/probes/${ok.body.probe.id}`, { key: KEYS.probe })).body.probe;
      expect(done.status, done.error).toBe('succeeded');
      expect(done.report.queries.images, 'capped by the 8 items the namespace holds').toBe(8);
      const tooMany = await call('POST', '/v1/probes', { key: KEYS.probe, json: { halfWidth: 2, resamples: 100 } });
      expect(tooMany.status).toBe(422);
      expect(tooMany.body.error.message).toMatch(/needs 2401 items, above limits.maxProbeSample 500/);
      const both = await call('POST', '/v1/probes', { key: KEYS.probe, json: { halfWidth: 5, sample: 3 } });
      expect(both.status).toBe(422);
      expect(JSON.stringify(both.body)).toMatch(/halfWidth/);
    } finally {
      await srv.close();
    }
  });
});
