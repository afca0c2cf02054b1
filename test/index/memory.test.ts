import { describe, expect, it } from 'vitest';
import { createIndex } from '../../src/node/indexes.js';
import { MemoryIndex } from '../../src/index/memory.js';
import { exactCosine, randomVectors, vectorIndexContract } from './contract.js';

vectorIndexContract('memory', { create: async () => ({ index: await createIndex({ kind: 'memory' }) }) });

async function sample(): Promise<MemoryIndex> {
  const idx = new MemoryIndex();
  const vecs = randomVectors(300, 16, 2);
  await idx.upsert('a', vecs.slice(0, 200).map((values, i) => ({ id: `a${i}`, values, metadata: { i, tag: ['x', `t${i % 3}`], ok: i % 2 === 0 } })));
  await idx.upsert('b.v2', vecs.slice(200).map((values, i) => ({ id: `b${i}`, values })));
  await idx.delete('a', ['a5', 'a77']); // exercise swap-remove before snapshotting
  await idx.upsert('empty', [{ id: 'gone', values: vecs[0] }]);
  await idx.delete('empty', ['gone']);
  return idx;
}

async function sameAnswers(x: MemoryIndex, y: MemoryIndex): Promise<void> {
  expect(await y.listNamespaces()).toEqual(await x.listNamespaces());
  for (const ns of await x.listNamespaces()) {
    expect(await y.stats(ns)).toEqual(await x.stats(ns));
    const dim = (await x.stats(ns)).dimension!;
    for (const q of randomVectors(5, dim, 9)) {
      expect(await y.query(ns, q, { topK: 20, includeMetadata: true })).toEqual(await x.query(ns, q, { topK: 20, includeMetadata: true }));
    }
  }
}

describe('memory adapter: snapshots and speed', () => {
  it('JSON snapshot round-trips (through JSON.stringify)', async () => {
    const idx = await sample();
    const copy = MemoryIndex.fromJSON(JSON.parse(JSON.stringify(idx)));
    await sameAnswers(idx, copy);
  });

  it('binary snapshot round-trips', async () => {
    const idx = await sample();
    const bytes = idx.toBinary();
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x4d, 0x46, 0x56, 0x49]);
    // load from an unaligned copy, as an asset fetch may hand back
    const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
    unaligned.set(bytes);
    await sameAnswers(idx, MemoryIndex.fromBinary(unaligned));
  });

  it('rejects corrupted snapshots with a clear error', async () => {
    const idx = await sample();
    const bytes = idx.toBinary();
    expect(() => MemoryIndex.fromBinary(bytes.subarray(0, bytes.length - 4))).toThrow(/snapshot/);
    const badMagic = bytes.slice();
    badMagic[0] = 0;
    expect(() => MemoryIndex.fromBinary(badMagic)).toThrow(/bad magic/);
    const json = idx.toJSON();
    expect(() => MemoryIndex.fromJSON({ ...json, version: 2 })).toThrow(/snapshot/);
    const badNs = { ...json, namespaces: [{ ...json.namespaces[0], name: '../x' }] };
    expect(() => MemoryIndex.fromJSON(badNs)).toThrow(/namespace/);
    const badMeta = { ...json, namespaces: [{ ...json.namespaces[0], metadata: json.namespaces[0].metadata.map(() => ({ 'bad key': 1 })) }] };
    expect(() => MemoryIndex.fromJSON(badMeta)).toThrow(/field name/);
  });

  it('exact top-10 over 10k x 128 in a few milliseconds', async () => {
    const idx = new MemoryIndex();
    const vecs = randomVectors(10_000, 128, 4);
    await idx.upsert('big', vecs.map((values, i) => ({ id: String(i), values, metadata: { even: i % 2 === 0 } })));
    const queries = randomVectors(50, 128, 8);
    for (const q of queries.slice(0, 5)) await idx.query('big', q, { topK: 10 }); // warm up
    let t0 = performance.now();
    for (const q of queries) await idx.query('big', q, { topK: 10 });
    const plain = (performance.now() - t0) / queries.length;
    t0 = performance.now();
    for (const q of queries) await idx.query('big', q, { topK: 10, filter: { even: true } });
    const filtered = (performance.now() - t0) / queries.length;
    console.log(`memory 10k x 128 top-10: ${plain.toFixed(2)} ms/query, filtered ${filtered.toFixed(2)} ms/query`);
    expect(plain).toBeLessThan(50);
    const q = queries[0];
    const exact = vecs.map((v, i) => ({ id: String(i), s: exactCosine(v, q) })).sort((a, b) => b.s - a.s).slice(0, 10).map((r) => r.id);
    expect((await idx.query('big', q, { topK: 10 })).map((r) => r.id)).toEqual(exact);
  });
});
