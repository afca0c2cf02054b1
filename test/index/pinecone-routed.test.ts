/**
 * PineconeRoutedIndex (index.pinecone.indexes): one Pinecone index per dimension, against two local data-plane
 * emulators and a local describe_index stand-in (no live Pinecone is reachable here). Routing by the vectors'
 * dimension; a fresh process (no namespace seen yet) finds namespaces in every index without counting one twice
 * when the default host is also mapped by name; every refusal names the config key before anything is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VectorIndex } from '../../src/index/index.js';
import { createIndex } from '../../src/node/indexes.js';
import { PineconeControlEmulator } from './pinecone-control-emulator.js';
import { PineconeEmulator } from './pinecone-emulator.js';

const narrow = new PineconeEmulator({ dimension: 4 });
const wide = new PineconeEmulator({ dimension: 6 });
const control = new PineconeControlEmulator();
let narrowHost: string;
let controllerHost: string;

beforeAll(async () => {
  narrowHost = await narrow.start();
  control.register('mf-4', { host: narrowHost, dimension: 4 });
  control.register('mf-6', { host: await wide.start(), dimension: 6 });
  control.register('mf-6-wrong', { host: narrowHost, dimension: 4 });
  control.register('mf-euclid', { host: narrowHost, dimension: 4, metric: 'euclidean' });
  controllerHost = await control.start();
});
afterAll(async () => {
  await Promise.all([narrow.stop(), wide.stop(), control.stop()]);
});

const routed = (pinecone: Record<string, unknown>): Promise<VectorIndex> =>
  createIndex({ kind: 'pinecone', pinecone: { apiKey: 'test-key', controllerHost, maxAttempts: 1, ...pinecone } as never });
const vec = (dim: number, k: number) => Array.from({ length: dim }, (_, i) => (i === k ? 1 : 0.1));

describe('one Pinecone index per dimension (local emulators + describe_index stand-in)', () => {
  it('routes by dimension; a fresh instance finds each namespace once, even with the default host also mapped by name', async () => {
    const index = await routed({ host: narrowHost, indexes: { 4: 'mf-4', 6: 'mf-6' } });
    expect(index.constructor.name).toBe('PineconeRoutedIndex');
    await index.upsert('a', [0, 1, 2].map((k) => ({ id: `a${k}`, values: vec(4, k) })));
    await index.upsert('b', [0, 1].map((k) => ({ id: `b${k}`, values: vec(6, k) })));
    expect(narrow.count('a')).toBe(3);
    expect(wide.count('b')).toBe(2);
    expect(wide.count('a') + narrow.count('b')).toBe(0);
    expect((await index.query('b', vec(6, 1), { topK: 1 }))[0].id).toBe('b1');

    const fresh = await routed({ host: narrowHost, indexes: { 4: 'mf-4', 6: 'mf-6' } });
    const counts = (fresh as unknown as { namespaceCounts(ns: string[]): Promise<Record<string, number>> }).namespaceCounts(['a', 'b', 'c']);
    expect(await counts).toEqual({ a: 3, b: 2, c: 0 });
    expect(await fresh.stats('a')).toEqual({ count: 3, dimension: 4 });
    expect((await fresh.fetch!('b', ['b0'])).map((r) => r.id)).toEqual(['b0']);
    expect(await fresh.listNamespaces()).toEqual(['a', 'b']);
    await fresh.delete('a', ['a0']);
    await fresh.dropNamespace('b');
    expect(narrow.count('a')).toBe(2);
    expect(wide.count('b')).toBe(0);
  });

  it('refusals before any write, naming the index.pinecone.indexes entry', async () => {
    narrow.clearRequests();
    wide.clearRequests();
    const noHost = await routed({ indexes: { 4: 'mf-4' } });
    await expect(noHost.upsert('c', [{ id: 'x', values: vec(5, 0) }])).rejects.toMatchObject({
      code: 'DIMENSION_MISMATCH',
      message: 'no Pinecone index for 5-dimensional embeddings (index.pinecone.indexes maps 4: mf-4): create a Pinecone index of dimension 5 (metric cosine) and add it as index.pinecone.indexes["5"]',
    });
    const withHost = await routed({ host: narrowHost, indexes: { 6: 'mf-6' } });
    await expect(withHost.upsert('c', [{ id: 'x', values: vec(5, 0) }])).rejects.toThrow(/the default index \(index\.pinecone\.host\) holds 4-dimensional vectors/);
    const wrong = await routed({ indexes: { 6: 'mf-6-wrong' } });
    await expect(wrong.upsert('c', [{ id: 'x', values: vec(6, 0) }])).rejects.toThrow('Pinecone index "mf-6-wrong" (index.pinecone.indexes["6"]) holds 4-dimensional vectors, not 6');
    const missing = await routed({ indexes: { 6: 'no-such-index' } });
    await expect(missing.upsert('c', [{ id: 'x', values: vec(6, 0) }])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'pinecone.indexes.6' });
    const euclid = await routed({ indexes: { 4: 'mf-euclid' } });
    await expect(euclid.upsert('c', [{ id: 'x', values: vec(4, 0) }])).rejects.toThrow('uses metric euclidean; Manyfold needs cosine (or dotproduct)');
    const writes = [...narrow.requests, ...wide.requests].filter((r) => r.path === '/vectors/upsert' || r.path === '/vectors/delete');
    expect(writes).toEqual([]);
    await expect(routed({ indexes: { 64: 'Bad_Name' } })).rejects.toThrow(/pinecone\.indexes\.64 must be a Pinecone index name/);
  });
});
