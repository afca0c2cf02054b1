import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config.js';
import { createIndex } from '../../src/node/indexes.js';
import { PINECONE_MAX_REQUEST_BYTES, PineconeIndex, planUpsertBatches, type PineconeIndexOptions, type RetryInfo } from '../../src/index/pinecone.js';
import { randomVectors, vectorIndexContract } from './contract.js';
import { PineconeEmulator } from './pinecone-emulator.js';

const SUITE = 'Pinecone adapter against a local data-plane emulator (no live Pinecone reachable here)';

vectorIndexContract(SUITE, {
  create: async () => {
    const emu = new PineconeEmulator();
    const host = await emu.start();
    const index = await createIndex({ kind: 'pinecone', pinecone: { apiKey: emu.apiKey, host, baseDelayMs: 1, maxDelayMs: 5 } });
    return { index, cleanup: () => emu.stop() };
  },
});

describe(`${SUITE}: transport`, () => {
  const emus: PineconeEmulator[] = [];
  afterEach(async () => {
    while (emus.length) await emus.pop()!.stop();
  });
  async function setup(opts: Partial<PineconeIndexOptions> = {}, emuDim?: number) {
    const emu = new PineconeEmulator(emuDim ? { dimension: emuDim } : {});
    emus.push(emu);
    const host = await emu.start();
    const retries: RetryInfo[] = [];
    const sleeps: number[] = [];
    const index = new PineconeIndex({
      apiKey: emu.apiKey,
      host,
      baseDelayMs: 10,
      maxDelayMs: 80,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      onRetry: (r) => retries.push(r),
      ...opts,
    });
    return { emu, host, index, retries, sleeps };
  }

  it('talks the SDK data-plane protocol: routes, api-key and version headers', async () => {
    const { emu, index } = await setup();
    await index.upsert('ns', [{ id: 'a', values: [1, 0, 0], metadata: { k: 'v' } }]);
    await index.query('ns', [1, 0, 0], { topK: 1 });
    await index.fetch('ns', ['a']);
    await index.stats('ns');
    await index.delete('ns', ['a']);
    await index.upsert('ns', [{ id: 'b', values: [1, 0, 0] }]);
    await index.dropNamespace('ns');
    expect(emu.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'POST /vectors/upsert 200',
      'POST /query 200',
      'GET /vectors/fetch 200',
      'POST /describe_index_stats 200',
      'POST /vectors/delete 200',
      'POST /vectors/upsert 200',
      'POST /vectors/delete 200',
    ]);
    expect(emu.requests.every((r) => typeof r.apiVersion === 'string' && r.apiVersion.length > 0)).toBe(true);
    expect(emu.requests[6].body).toEqual({ deleteAll: true, namespace: 'ns' });
  });

  it('batches 2,500 x 128-d records within 1,000 records and 2 MB per request', async () => {
    const { emu, index } = await setup();
    const vecs = randomVectors(2_500, 128, 1);
    await index.upsert('big', vecs.map((values, i) => ({ id: `id-${i}`, values, metadata: { i } })));
    const ups = emu.requests.filter((r) => r.path === '/vectors/upsert');
    expect(ups.every((r) => r.status === 200 && r.records! <= 1_000 && r.bytes <= PINECONE_MAX_REQUEST_BYTES)).toBe(true);
    expect(ups.reduce((n, r) => n + r.records!, 0)).toBe(2_500);
    expect(ups.length).toBe(3); // record-bound: 1000 + 1000 + 500
    expect(emu.count('big')).toBe(2_500);
  });

  it('splits by bytes when records are large (metadata-heavy 1,536-d records)', async () => {
    const { emu, index } = await setup();
    const vecs = randomVectors(1_200, 1_536, 2);
    const caption = 'x'.repeat(2_000);
    await index.upsert('heavy', vecs.map((values, i) => ({ id: `h${i}`, values, metadata: { caption } })));
    const ups = emu.requests.filter((r) => r.path === '/vectors/upsert');
    expect(ups.length).toBeGreaterThan(2); // 1,200 records would fit 2 requests by count; bytes force more
    for (const r of ups) {
      expect(r.status).toBe(200);
      expect(r.bytes).toBeLessThanOrEqual(PINECONE_MAX_REQUEST_BYTES);
      expect(r.records!).toBeLessThanOrEqual(1_000);
    }
    const sizes = ups.map((r) => r.bytes);
    console.log(`pinecone heavy upsert: ${ups.length} requests, bytes ${sizes.join(', ')}`);
    expect(emu.count('heavy')).toBe(1_200);
  });

  it('the batch planner predicts the request body size exactly', async () => {
    const { emu, index } = await setup();
    const vecs = randomVectors(30, 64, 3);
    await index.upsert('sz', vecs.map((values, i) => ({ id: `s${i}`, values, metadata: { tag: 'é🔍' } })));
    const sent = emu.requests.find((r) => r.path === '/vectors/upsert')!;
    const planned = planUpsertBatches(
      (sent.body as { vectors: { id: string; values: number[]; metadata?: Record<string, string> }[] }).vectors,
      'sz',
      1000,
      PINECONE_MAX_REQUEST_BYTES,
    );
    expect(planned).toHaveLength(1);
    expect(planned[0].bytes).toBe(sent.bytes);
  });

  it('retries 429 and 503 with growing, jittered backoff and honours Retry-After', async () => {
    const { emu, index, retries, sleeps } = await setup();
    emu.failNext(2, { status: 429, path: '/vectors/upsert' });
    emu.failNext(1, { status: 503, path: '/vectors/upsert', retryAfterSeconds: 0.05 });
    await index.upsert('r', [{ id: 'a', values: [1, 2, 3] }]);
    expect(emu.count('r')).toBe(1);
    expect(retries.map((r) => r.status)).toEqual([429, 429, 503]);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    // base 10 ms: attempt n waits 10 * 2^(n-1) * [0.5, 1]; Retry-After 50 ms wins on the third
    expect(sleeps[0]).toBeGreaterThanOrEqual(5);
    expect(sleeps[0]).toBeLessThanOrEqual(10);
    expect(sleeps[1]).toBeGreaterThanOrEqual(10);
    expect(sleeps[1]).toBeLessThanOrEqual(20);
    expect(sleeps[2]).toBe(50);
    emu.failNext(1, { status: 500, path: '/query' });
    expect((await index.query('r', [1, 2, 3], { topK: 1 }))[0].id).toBe('a');
  });

  it('caps backoff at maxDelayMs', async () => {
    const { emu, index, sleeps } = await setup({ maxAttempts: 8, random: () => 1 });
    emu.failNext(7, { status: 503 });
    await index.stats('x');
    expect(sleeps).toEqual([10, 20, 40, 80, 80, 80, 80]);
  });

  it('gives up after maxAttempts with an error naming the status', async () => {
    const { emu, index } = await setup({ maxAttempts: 3 });
    emu.failNext(10, { status: 503, path: '/query' });
    const before = emu.requests.length;
    await expect(index.query('ns', [1, 0], { topK: 1 })).rejects.toMatchObject({
      name: 'IndexError',
      code: 'BACKEND',
      message: expect.stringMatching(/query failed: gave up after 3 attempt\(s\): HTTP 503/),
    });
    expect(emu.requests.length - before).toBe(3);
  });

  it('does not retry client errors (400, 401)', async () => {
    const { emu, host, index, retries } = await setup({}, 4);
    await expect(index.upsert('ns', [{ id: 'a', values: [1, 2, 3] }])).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
    expect(emu.requests).toHaveLength(1);
    const wrongKey = new PineconeIndex({ apiKey: 'wrong', host, onRetry: (r) => retries.push(r) });
    await expect(wrongKey.stats('ns')).rejects.toMatchObject({ code: 'BACKEND', message: expect.stringMatching(/401|API key|Authorization/i) });
    expect(retries).toEqual([]);
  });

  it('retries network errors (connection refused) then fails cleanly', async () => {
    const emu = new PineconeEmulator();
    const host = await emu.start();
    await emu.stop();
    const retries: RetryInfo[] = [];
    const index = new PineconeIndex({ apiKey: 'k', host, maxAttempts: 2, baseDelayMs: 1, onRetry: (r) => retries.push(r) });
    await expect(index.stats('ns')).rejects.toMatchObject({ code: 'BACKEND', message: expect.stringMatching(/gave up after 2 attempt/) });
    expect(retries).toHaveLength(1);
    expect(retries[0].error).toBeTruthy();
  });

  it('sends the validated filter as canonical Pinecone JSON', async () => {
    const { emu, index } = await setup();
    await index.upsert('f', [{ id: 'a', values: [1, 0], metadata: { genre: 'jazz', year: 2001 } }]);
    await index.query('f', [1, 0], { topK: 3, filter: { genre: 'jazz', year: { $gte: 2000, $lt: 2010 }, $or: [{ a: 1 }, { b: { $in: ['x'] } }] } });
    const q = emu.requests.find((r) => r.path === '/query')!.body as { filter: unknown; topK: number; namespace: string };
    expect(q.filter).toEqual({
      $and: [
        { genre: { $eq: 'jazz' } },
        { year: { $gte: 2000 } },
        { year: { $lt: 2010 } },
        { $or: [{ a: { $eq: 1 } }, { b: { $in: ['x'] } }] },
      ],
    });
    expect(q).toMatchObject({ topK: 3, namespace: 'f' });
    const before = emu.requests.length;
    await expect(index.query('f', [1, 0], { topK: 1, filter: { genre: { $regex: 'j.*' } } })).rejects.toMatchObject({ code: 'INVALID_FILTER' });
    expect(emu.requests.length).toBe(before); // rejected locally, never sent
  });

  it('rejects a malformed host', async () => {
    expect(() => new PineconeIndex({ apiKey: 'k', host: 'not a host' })).toThrow(/pinecone.host/);
    await expect(createIndex({ kind: 'pinecone' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe(`${SUITE}: lagging describe_index_stats (lag mode) and the consistency policy`, () => {
  const emus: PineconeEmulator[] = [];
  afterEach(async () => {
    while (emus.length) await emus.pop()!.stop();
  });
  async function setup(emuOpts: ConstructorParameters<typeof PineconeEmulator>[0] = {}) {
    const emu = new PineconeEmulator(emuOpts);
    emus.push(emu);
    const host = await emu.start();
    return { emu, index: new PineconeIndex({ apiKey: emu.apiKey, host }) };
  }

  it('lag by calls: a write shows in stats after N more answers; queries see it at once', async () => {
    const { emu, index } = await setup({ statsLag: { calls: 2 } });
    await index.upsert('a', [{ id: 'x', values: [1, 0] }, { id: 'y', values: [0, 1] }]);
    expect((await index.query('a', [1, 0], { topK: 5 })).map((m) => m.id)).toEqual(['x', 'y']);
    expect(await index.namespaceCounts(['a'])).toEqual({ a: 0 });
    expect(await index.namespaceCounts(['a'])).toEqual({ a: 0 });
    expect(await index.namespaceCounts(['a', 'absent'])).toEqual({ a: 2, absent: 0 });
    expect(emu.staleStats).toBe(2);
    await index.delete('a', ['x']);
    expect((await index.stats('a')).count).toBe(2); // the delete lags too
    expect((await index.stats('a')).count).toBe(2);
    expect((await index.stats('a')).count).toBe(1);
    expect(emu.staleStats).toBe(4);
  });

  it('lag by time (injected clock); Infinity never converges; setStatsLag(undefined) shows the truth', async () => {
    let t = 0;
    const { emu, index } = await setup({ statsLag: { ms: 1_000 }, now: () => t });
    await index.upsert('b', [{ id: 'x', values: [1, 0] }]);
    t = 999;
    expect((await index.stats('b')).count).toBe(0);
    t = 1_000;
    expect((await index.stats('b')).count).toBe(1);
    emu.setStatsLag({ calls: Infinity });
    await index.upsert('b', [{ id: 'y', values: [0, 1] }]);
    t = 1e12;
    for (let i = 0; i < 5; i++) expect((await index.stats('b')).count).toBe(1);
    emu.setStatsLag(undefined);
    expect((await index.stats('b')).count).toBe(2);
    expect(await index.listNamespaces()).toEqual(['b']);
  });

  it('namespaceCounts answers for many namespaces with one describe_index_stats', async () => {
    const { emu, index } = await setup();
    await index.upsert('n1', [{ id: 'x', values: [1, 0] }]);
    await index.upsert('n2', [{ id: 'x', values: [1, 0] }, { id: 'y', values: [0, 1] }]);
    emu.clearRequests();
    expect(await index.namespaceCounts(['n1', 'n2', 'n3'])).toEqual({ n1: 1, n2: 2, n3: 0 });
    expect(emu.requests.map((r) => r.path)).toEqual(['/describe_index_stats']);
  });

  it('consistency policy: defaults (60 s timeout, 500 ms first delay, 8 s cap), validated options and config naming the field', () => {
    const host = 'http://127.0.0.1:1';
    expect(new PineconeIndex({ apiKey: 'k', host }).consistency).toEqual({ timeoutMs: 60_000, initialDelayMs: 500, maxDelayMs: 8_000 });
    expect(new PineconeIndex({ apiKey: 'k', host, consistencyTimeoutMs: 0 }).consistency.timeoutMs).toBe(0);
    expect(() => new PineconeIndex({ apiKey: 'k', host, consistencyTimeoutMs: -1 })).toThrow(/pinecone\.consistencyTimeoutMs must be a finite number >= 0/);
    expect(() => new PineconeIndex({ apiKey: 'k', host, consistencyInitialDelayMs: 0 })).toThrow(/pinecone\.consistencyInitialDelayMs/);
    expect(() => new PineconeIndex({ apiKey: 'k', host, consistencyInitialDelayMs: 100, consistencyMaxDelayMs: 50 })).toThrow(
      /pinecone\.consistencyMaxDelayMs \(50\) must be >= pinecone\.consistencyInitialDelayMs \(100\)/,
    );
    const parsed = configSchema.parse({ index: { kind: 'pinecone', pinecone: { apiKey: 'k', host } } });
    expect(parsed.index.pinecone).toEqual({ apiKey: 'k', host, consistencyTimeoutMs: 60_000, consistencyInitialDelayMs: 500, consistencyMaxDelayMs: 8_000 });
    const bad = configSchema.safeParse({ index: { pinecone: { apiKey: 'k', host, consistencyInitialDelayMs: 1_000, consistencyMaxDelayMs: 10 } } });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => i.path.join('.'))).toEqual(['index.pinecone.consistencyMaxDelayMs']);
    const neg = configSchema.safeParse({ index: { pinecone: { apiKey: 'k', host, consistencyTimeoutMs: -5 } } });
    expect(neg.error!.issues.map((i) => i.path.join('.'))).toEqual(['index.pinecone.consistencyTimeoutMs']);
  });
});
