import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import type { RunningServer } from '../../src/node/server.js';
import { CAPTIONS, KEYS, client, makeModels, png, rmrf, start, tmp } from './helpers.js';

let root: string;
let srv: RunningServer;
let call: ReturnType<typeof client>;
let modelId: string;
const imgs: Record<string, string> = {};

beforeAll(async () => {
  root = tmp('core');
  const [m] = await makeModels(`${root}/models`, [1]);
  modelId = m.id;
  srv = await start({ modelDir: m.dir, dataDir: `${root}/data` });
  call = client(srv.url);
  imgs.red = (await png(40, 30, [220, 20, 20])).toString('base64');
  imgs.green = (await png(32, 32, [20, 200, 40], 2)).toString('base64');
  imgs.blue = (await png(64, 48, [20, 40, 230], 4)).toString('base64');
});

afterAll(async () => {
  await srv?.close();
  rmrf(root);
});

describe('operational routes', () => {
  it('health, ready, metrics, openapi, docs (no CDN)', async () => {
    expect((await call('GET', '/health')).body).toEqual({ status: 'ok' });
    const ready = await call('GET', '/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ ready: true, model: modelId, index: 'lancedb' });
    const metrics = await call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('manyfold_http_requests_total');
    expect(metrics.text).toContain('manyfold_tf_tensors');
    const spec = await call('GET', '/openapi.json');
    expect(spec.body.openapi).toBe('3.1.0');
    for (const p of ['/v1/search', '/v1/items', '/v1/items/{id}', '/v1/embed', '/v1/models', '/v1/models/{id}/activate', '/v1/probes', '/v1/probes/{id}']) {
      expect(spec.body.paths[p], p).toBeDefined();
    }
    expect(spec.body.components.schemas.SearchRequest.properties.target.enum).toEqual(['images', 'texts']);
    const docs = await call('GET', '/docs');
    expect(docs.status).toBe(200);
    expect(docs.text).not.toMatch(/https?:\/\//);
    expect(docs.text).toContain('/docs/scalar.js');
    const js = await fetch(`${srv.url}/docs/scalar.js`);
    expect(js.status).toBe(200);
    expect((await js.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    expect(docs.headers.get('x-request-id')).toBeTruthy();
  });
});

describe('auth and scopes', () => {
  it('401 without or with a wrong key, 403 without the scope', async () => {
    const none = await call('POST', '/v1/search', { json: { text: 'x' } });
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('unauthorized');
    expect(none.headers.get('www-authenticate')).toMatch(/Bearer/);
    expect((await call('POST', '/v1/search', { key: 'not-a-key-at-all', json: { text: 'x' } })).status).toBe(401);
    expect((await call('POST', '/v1/search', { json: { text: 'x' }, headers: { authorization: `Basic ${KEYS.admin}` } })).status).toBe(401);
    const forb = await call('POST', '/v1/items', { key: KEYS.search, json: { items: [{ id: 'a', captions: ['x'] }] } });
    expect(forb.status).toBe(403);
    expect(forb.body.error).toMatchObject({ code: 'forbidden' });
    expect((await call('POST', '/v1/search', { key: KEYS.write, json: { text: 'x' } })).status).toBe(403);
    expect((await call('POST', '/v1/probes', { key: KEYS.search, json: {} })).status).toBe(403);
    expect((await call('POST', `/v1/models/${modelId}/activate`, { key: KEYS.both })).status).toBe(403);
    // admin implies every scope; search+write key can do both
    expect((await call('POST', '/v1/search', { key: KEYS.admin, json: { text: 'x' } })).status).toBe(200);
    expect((await call('POST', '/v1/search', { key: KEYS.both, json: { text: 'x' } })).status).toBe(200);
  });
});

describe('items, search, embed', () => {
  it('upserts items (idempotent by id), searches both targets, returns the model version', async () => {
    const items = [
      { id: 'red', image: imgs.red, captions: [CAPTIONS[0], CAPTIONS[5]], metadata: { color: 'red', n: 1, tags: ['warm'] } },
      { id: 'green', image: imgs.green, captions: [CAPTIONS[1]], metadata: { color: 'green', n: 2, tags: ['cool'] } },
      { id: 'blue', image: imgs.blue, captions: [CAPTIONS[4]], metadata: { color: 'blue', n: 3 } },
      { id: 'textonly', captions: [CAPTIONS[3]], metadata: { color: 'none', n: 4 } },
    ];
    const r = await call('POST', '/v1/items', { key: KEYS.write, json: { items } });
    expect(r.status).toBe(200);
    expect(r.body.model).toBe(modelId);
    expect(r.body.items.map((i: any) => i.status)).toEqual(['created', 'created', 'created', 'created']);
    const again = await call('POST', '/v1/items', { key: KEYS.write, json: { items } });
    expect(again.body.items.map((i: any) => i.status)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);

    const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[0], target: 'images', topK: 10 } });
    expect(s.status).toBe(200);
    expect(s.body.model).toBe(modelId);
    expect(s.body.results.map((x: any) => x.id).sort()).toEqual(['blue', 'green', 'red']);
    for (const x of s.body.results) {
      expect(typeof x.score).toBe('number');
      expect(Object.keys(x.metadata).some((k) => k.startsWith('_'))).toBe(false);
    }
    // text target: one result per caption, the exact caption text is its own best match
    const t = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[1], target: 'texts', topK: 3 } });
    expect(t.body.results[0]).toMatchObject({ id: 'green', captionIndex: 0, caption: CAPTIONS[1] });
    expect(t.body.results[0].score).toBeCloseTo(1, 4);
    // image query: the same image is its own best image match
    const im = await call('POST', '/v1/search', { key: KEYS.search, json: { image: imgs.blue, target: 'images', topK: 1 } });
    expect(im.body.results[0].id).toBe('blue');
    expect(im.body.results[0].score).toBeCloseTo(1, 4);
    const defaultTarget = await call('POST', '/v1/search', { key: KEYS.search, json: { image: imgs.blue } });
    expect(defaultTarget.body.target).toBe('texts');
  });

  it('update replaces captions and metadata, removing stale caption records', async () => {
    const r = await call('POST', '/v1/items', { key: KEYS.write, json: { items: [{ id: 'red', image: imgs.red, captions: [CAPTIONS[2]], metadata: { color: 'crimson', n: 1 } }] } });
    expect(r.body.items[0].status).toBe('updated');
    const t = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[0], target: 'texts', topK: 50 } });
    const reds = t.body.results.filter((x: any) => x.id === 'red');
    expect(reds).toHaveLength(1);
    expect(reds[0]).toMatchObject({ caption: CAPTIONS[2], metadata: { color: 'crimson', n: 1 } });
    const got = await call('GET', '/v1/items/red', { key: KEYS.search });
    expect(got.body.item).toMatchObject({ id: 'red', captions: [CAPTIONS[2]], image: { format: 'png', width: 40, height: 30 } });
  });

  it('metadata filters', async () => {
    const f = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'circle', target: 'images', topK: 10, filter: { n: { $gte: 2 } } } });
    expect(f.status).toBe(200);
    expect(f.body.results.map((x: any) => x.id).sort()).toEqual(['blue', 'green']);
    const g = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'circle', target: 'texts', topK: 10, filter: { $or: [{ color: 'green' }, { tags: { $in: ['warm'] } }] } } });
    expect([...new Set(g.body.results.map((x: any) => x.id))]).toEqual(['green']);
    const none = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'circle', filter: { color: 'purple' } } });
    expect(none.body.results).toEqual([]);
  });

  it('namespaces are isolated and carry the model version', async () => {
    const r = await call('POST', '/v1/items', { key: KEYS.write, json: { namespace: 'other', items: [{ id: 'only', captions: ['hello world'] }] } });
    expect(r.body.namespace).toBe('other');
    const a = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'hello world', target: 'texts', namespace: 'other' } });
    expect(a.body.results.map((x: any) => x.id)).toEqual(['only']);
    const b = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'hello world', target: 'texts' } });
    expect(b.body.results.map((x: any) => x.id)).not.toContain('only');
    const nss = await srv.index.listNamespaces();
    expect(nss).toContain(`other--${modelId}--txt`);
    expect(nss).toContain(`default--${modelId}--img`);
    expect(nss.every((n) => n.includes(`--${modelId}--`))).toBe(true);
  });

  it('multipart upload and multipart image search', async () => {
    const form = new FormData();
    form.set('id', 'mp');
    form.append('captions', 'a multipart caption');
    form.append('captions', 'another multipart caption');
    form.set('metadata', JSON.stringify({ via: 'multipart' }));
    form.set('image', new Blob([new Uint8Array(Buffer.from(imgs.green, 'base64'))], { type: 'image/png' }), 'g.png');
    const r = await call('POST', '/v1/items', { key: KEYS.write, body: form });
    expect(r.status, r.text).toBe(200);
    expect(r.body.items[0]).toMatchObject({ id: 'mp', status: 'created', image: true, captions: 2 });
    const q = new FormData();
    q.set('image', new Blob([new Uint8Array(Buffer.from(imgs.green, 'base64'))], { type: 'image/png' }), 'q.png');
    q.set('target', 'images');
    q.set('topK', '2');
    q.set('filter', JSON.stringify({ via: 'multipart' }));
    const s = await call('POST', '/v1/search', { key: KEYS.search, body: q });
    expect(s.status, s.text).toBe(200);
    expect(s.body.results.map((x: any) => x.id)).toEqual(['mp']);
  });

  it('embed texts and images; delete', async () => {
    const e = await call('POST', '/v1/embed', { key: KEYS.search, json: { texts: ['a red circle', 'ünïcödé 猫'], images: [imgs.red] } });
    expect(e.status).toBe(200);
    expect(e.body).toMatchObject({ model: modelId, dim: 128 });
    expect(e.body.texts).toHaveLength(2);
    expect(e.body.images[0]).toHaveLength(128);
    const norm = Math.hypot(...e.body.texts[0]);
    expect(norm).toBeCloseTo(1, 4);
    const d = await call('DELETE', '/v1/items/blue', { key: KEYS.write });
    expect(d.status).toBe(200);
    expect((await call('DELETE', '/v1/items/blue', { key: KEYS.write })).status).toBe(404);
    const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'x', target: 'images', topK: 10 } });
    expect(s.body.results.map((x: any) => x.id)).not.toContain('blue');
    const t = await call('POST', '/v1/search', { key: KEYS.search, json: { text: CAPTIONS[4], target: 'texts', topK: 10 } });
    expect(t.body.results.map((x: any) => x.id)).not.toContain('blue');
    expect((await call('GET', '/v1/items/blue', { key: KEYS.search })).status).toBe(404);
  });

  it('models list', async () => {
    const m = await call('GET', '/v1/models', { key: KEYS.search });
    expect(m.body.active).toBe(modelId);
    expect(m.body.models[0]).toMatchObject({ id: modelId, active: true, preset: 'tiny', embedDim: 128, imageSize: 32 });
  });

  it('concurrent searches are micro-batched and tensors do not leak', async () => {
    const before = tf.memory().numTensors;
    const batchesBefore = srv.api.queue.stats.batches;
    const rs = await Promise.all(Array.from({ length: 24 }, (_, i) => call('POST', '/v1/search', { key: KEYS.admin, json: { text: `${CAPTIONS[i % 6]} ${i}`, topK: 3 } })));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    // queries that wait together go through one forward pass
    const enc = srv.api.service.active.encoder;
    const b0 = srv.api.queue.stats.batches;
    const vecs = await Promise.all(CAPTIONS.map((c) => srv.api.queue.embedText(enc, c)));
    expect(srv.api.queue.stats.batches - b0).toBe(1);
    const direct = await enc.embedTextsMatrixAsync([CAPTIONS[3]]);
    for (let i = 0; i < 128; i++) expect(vecs[3][i]).toBeCloseTo(direct[i], 5);
    expect(batchesBefore).toBeGreaterThan(0);
  });
});
