/**
 * Runs INSIDE workerd (npm run test:workers, project workerd-memory): functions/worker.ts with the tiny model and
 * the memory-index snapshot from test/workers/fixture.ts served as static assets, R2 and Queues simulated by
 * miniflare. The snapshot is read-only at the edge: writes are refused with 409 (ingest into Pinecone is tested
 * in test/workers/reindex.test.ts, project workerd-pinecone).
 */
import { env, SELF } from 'cloudflare:test';
import { encode as encodePng } from 'fast-png';
import { describe, expect, it } from 'vitest';

const KEYS = { admin: 'admin-key-0123456789', search: 'search-key-0123456789', write: 'write-key-0123456789' };
const BASE = 'https://manyfold.test';

async function call(method: string, path: string, opts: { key?: string; json?: unknown; body?: string; ct?: string } = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  let body: string | undefined = opts.body;
  if (opts.json !== undefined) body = JSON.stringify(opts.json);
  if (body !== undefined) headers['content-type'] = opts.ct ?? 'application/json';
  const r = await SELF.fetch(`${BASE}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await r.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, body: parsed };
}

function b64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function solidPng(rgb: [number, number, number], size = 40): string {
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) data.set(rgb, i * 3);
  return b64(encodePng({ width: size, height: size, data, channels: 3, depth: 8 }));
}

function norm(v: number[]): number {
  return Math.sqrt(v.reduce((a, x) => a + x * x, 0));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

describe('the Manyfold API inside workerd', () => {
  it('boots: tfjs backend from the bundled wasm module, model from assets, cold start reported', async () => {
    const t0 = Date.now();
    const r = await call('GET', '/edge/info');
    const firstMs = Date.now() - t0;
    expect(r.status).toBe(200);
    expect(r.body.model).toBe(env.TEST_MODEL_ID);
    expect(['wasm', 'cpu']).toContain(r.body.backend.name);
    console.log(`[workerd] backend=${r.body.backend.name} (${r.body.backend.reason}); cold start ${r.body.coldStartMs} ms (backend init ${r.body.backend.initMs} ms, app ${r.body.appStartMs} ms); first request ${firstMs} ms`);
    expect((await call('GET', '/health')).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/ready')).status).toBe(200);
  });

  it('auth: no token 401, bad token 401, missing scope 403', async () => {
    expect((await call('POST', '/v1/search', { json: { text: 'a red circle' } })).status).toBe(401);
    expect((await call('POST', '/v1/search', { key: 'not-a-key-12345678', json: { text: 'a red circle' } })).status).toBe(401);
    const r = await call('POST', '/v1/items', { key: KEYS.search, json: { items: [{ id: 'x', captions: ['a'] }] } });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('forbidden');
  });

  it('embed: texts and PNG images -> unit vectors of the model dimension', async () => {
    const r = await call('POST', '/v1/embed', { key: KEYS.search, json: { texts: ['a red circle', 'two dogs'], images: [solidPng([220, 30, 30])] } });
    expect(r.status).toBe(200);
    expect(r.body.model).toBe(env.TEST_MODEL_ID);
    expect(r.body.texts).toHaveLength(2);
    expect(r.body.images).toHaveLength(1);
    for (const v of [...r.body.texts, ...r.body.images]) {
      expect(v).toHaveLength(r.body.dim);
      expect(norm(v)).toBeCloseTo(1, 3);
    }
  });

  it('search: text -> texts and image -> images over the snapshot loaded from an asset; p50 reported', async () => {
    const t = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'the small purple heart sits beside an orange circle', target: 'texts', topK: 3, namespace: 'snap' } });
    expect(t.status).toBe(200);
    expect(t.body.results[0].id).toBe('cap2');
    expect(t.body.results[0].score).toBeGreaterThan(0.999);
    expect(t.body.results[0].metadata).toEqual({ k: 2 });
    const i = await call('POST', '/v1/search', { key: KEYS.search, json: { image: solidPng([30, 40, 220]), target: 'images', topK: 2, namespace: 'snap' } });
    expect(i.status).toBe(200);
    expect(i.body.results[0].id).toBe('color2');
    expect(i.body.results[0].score).toBeGreaterThan(0.99);
    const ms: number[] = [];
    const inner: number[] = [];
    for (let k = 0; k < 40; k++) {
      const t0 = performance.now();
      const r = await call('POST', '/v1/search', { key: KEYS.search, json: { text: `a large red star number ${k}`, target: 'texts', topK: 5, namespace: 'snap' } });
      // workerd freezes timers during a request (Spectre mitigation); Date.now() advances on I/O
      ms.push(performance.now() - t0);
      inner.push(r.body.tookMs);
      expect(r.status).toBe(200);
    }
    console.log(`[workerd] text search (40 sequential, snapshot of 6 captions): p50 ${median(ms).toFixed(2)} ms end-to-end in-test, route tookMs p50 ${median(inner).toFixed(2)} ms`);
  });

  it('bad input: malformed JSON 400, unknown field 422, bad base64 422, non-image 422, 50000x50000 PNG header 413', async () => {
    expect((await call('POST', '/v1/search', { key: KEYS.search, body: '{"text": ' })).status).toBe(400);
    const unknown = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a', bogus: 1 } });
    expect(unknown.status).toBe(422);
    expect((await call('POST', '/v1/search', { key: KEYS.search, json: { image: '@@not base64@@' } })).status).toBe(422);
    expect((await call('POST', '/v1/search', { key: KEYS.search, json: { image: b64(new TextEncoder().encode('GIF89a not really an image')) } })).status).toBe(422);
    // a valid PNG signature + IHDR declaring 50000 x 50000: refused from the header, before decoding
    const bomb = new Uint8Array(33);
    bomb.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    new DataView(bomb.buffer).setUint32(16, 50000);
    new DataView(bomb.buffer).setUint32(20, 50000);
    bomb.set([8, 2, 0, 0, 0], 24);
    const r = await call('POST', '/v1/search', { key: KEYS.search, json: { image: b64(bomb) } });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('image_too_large');
    expect((await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a', filter: { $where: 'x' } } })).status).toBe(422);
    // and still serving correct results
    const ok = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a red circle next to a small blue square', target: 'texts', namespace: 'snap', topK: 1 } });
    expect(ok.body.results[0].id).toBe('cap0');
  });

  it('writes to the read-only memory snapshot (ingest, activation, re-index, probe pairs): 409 naming Pinecone, nothing stored, reads unchanged', async () => {
    const item = { id: 'red', image: solidPng([220, 30, 30], 48), captions: ['a red square'], metadata: { color: 'red' } };
    const models = await call('GET', '/v1/models', { key: KEYS.admin });
    const candidate = models.body.models.find((m: any) => !m.active).id;
    const refused = [
      await call('POST', '/v1/items', { key: KEYS.write, json: { items: [item], namespace: 'ingest' } }),
      await call('POST', `/v1/models/${candidate}/activate`, { key: KEYS.admin }),
      await call('POST', '/v1/reindex', { key: KEYS.admin, json: { model: candidate } }),
      await call('POST', '/v1/probes', { key: KEYS.admin, json: { pairs: [{ image: item.image, captions: item.captions }] } }),
    ];
    for (const r of refused) {
      expect(r.status, JSON.stringify(r.body)).toBe(409);
      expect(r.body.error.code).toBe('index_read_only');
      expect(r.body.error.message).toContain('read-only snapshot');
      expect(r.body.error.message).toContain('MANYFOLD_INDEX=pinecone with PINECONE_API_KEY and PINECONE_HOST');
    }
    // nothing reached R2 (no item, no blob, no job, no re-index plan) and the active model is unchanged
    for (const prefix of ['items/', 'blobs/', 'jobs/', 'reindex/', 'probes/']) expect((await env.DATA.list({ prefix })).objects, prefix).toHaveLength(0);
    expect((await call('GET', '/edge/info')).body.model).toBe(env.TEST_MODEL_ID);
    const s = await call('POST', '/v1/search', { key: KEYS.search, json: { text: 'a red circle next to a small blue square', target: 'texts', topK: 1, namespace: 'snap' } });
    expect(s.body.results[0].id).toBe('cap0');
  });
});
