import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseFilter } from '../../src/index/filter.js';
import { createIndex } from '../../src/node/indexes.js';
import { LanceDbIndex, compileFilter, decodeKey, encodeKey, sqlString } from '../../src/node/lancedb.js';
import type { QueryMatch } from '../../src/index/types.js';
import { exactCosine, randomVectors, vectorIndexContract } from './contract.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'manyfold-lance-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

vectorIndexContract('lancedb (real LanceDB on disk)', {
  create: async () => {
    const dir = tmp();
    return { index: await createIndex({ kind: 'lancedb', dir }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  },
});

describe('lancedb adapter: SQL compilation', () => {
  it('quotes string literals by doubling single quotes', () => {
    expect(sqlString("x' OR 1=1 --")).toBe("'x'' OR 1=1 --'");
    expect(sqlString("'; DROP TABLE t; --")).toBe("'''; DROP TABLE t; --'");
  });

  it('compiles only generated identifiers and quoted literals', () => {
    const ast = parseFilter({ genre: "x' OR 1=1 --", year: { $gte: 2000 }, tags: { $in: ['a', "b'c"] }, Missing: { $exists: false } })!;
    const sql = compileFilter(ast, (c) => ['s_genre', 'n_year', 'l_tags'].includes(c));
    expect(sql).toBe(
      "(COALESCE(`s_genre` = 'x'' OR 1=1 --', false) AND COALESCE(`n_year` >= 2000, false) AND COALESCE(array_has_any(`l_tags`, make_array('a', 'b''c')), false) AND (NOT false))",
    );
  });

  it('key encoding is injective and stays within [a-z0-9_]', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/), (key) => {
        const enc = encodeKey(key);
        expect(enc).toMatch(/^[a-z0-9_]+$/);
        expect(decodeKey(enc)).toBe(key);
      }),
    );
    expect(encodeKey('Camera.Model')).not.toBe(encodeKey('camera.model'));
  });
});

describe('lancedb adapter: persistence, ANN and speed', () => {
  it('reopens a data directory: records, metadata columns and filters survive', async () => {
    const dir = tmp();
    const a = await LanceDbIndex.open({ dir });
    const vecs = randomVectors(50, 16, 1);
    await a.upsert('p', vecs.map((values, i) => ({ id: `p${i}`, values, metadata: { i, 'Cam.Model': i % 2 ? 'odd' : 'even' } })));
    await a.close();
    const b = await LanceDbIndex.open({ dir });
    expect(await b.listNamespaces()).toEqual(['p']);
    expect(await b.stats('p')).toEqual({ count: 50, dimension: 16 });
    const res = await b.query('p', vecs[3], { topK: 5, filter: { 'Cam.Model': 'odd', i: { $lt: 10 } }, includeMetadata: true });
    expect(res[0]).toMatchObject({ id: 'p3', metadata: { i: 3, 'Cam.Model': 'odd' } });
    expect(res.map((r) => r.id).sort()).toEqual(['p1', 'p3', 'p5', 'p7', 'p9']);
    await expect(b.upsert('p', [{ id: 'x', values: vecs[0].slice(0, 8) }])).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
    await b.close();
  });

  it('builds an ANN index past the threshold; recall@10 vs exact >= 0.9 on random data; 10k x 128 timings', async () => {
    const dir = tmp();
    const idx = await LanceDbIndex.open({ dir, annThreshold: 5_000 });
    const N = 10_000;
    const D = 128;
    const vecs = randomVectors(N, D, 21);
    const t0 = performance.now();
    await idx.upsert('ann', vecs.slice(0, 4_000).map((values, i) => ({ id: String(i), values, metadata: { g: i % 10 } })));
    expect(await idx.annInfo('ann')).toBeNull();
    await idx.upsert('ann', vecs.slice(4_000).map((values, j) => ({ id: String(4_000 + j), values, metadata: { g: (4_000 + j) % 10 } })));
    const upsertMs = performance.now() - t0;
    const info = await idx.annInfo('ann');
    expect(info).toMatchObject({ type: 'hnsw_sq', rows: N });

    const queries = randomVectors(50, D, 77);
    const exactTop = (q: Float32Array, pred: (i: number) => boolean = () => true) =>
      vecs
        .map((v, i) => ({ i, s: exactCosine(v, q) }))
        .filter((r) => pred(r.i))
        .sort((a, b) => b.s - a.s)
        .slice(0, 10)
        .map((r) => String(r.i));
    await idx.warm('ann');
    for (const q of queries.slice(0, 5)) await idx.query('ann', q, { topK: 10 }); // warm
    let hits = 0;
    let t1 = performance.now();
    const results: QueryMatch[][] = [];
    for (const q of queries) results.push(await idx.query('ann', q, { topK: 10 }));
    const annMs = (performance.now() - t1) / queries.length;
    queries.forEach((q, k) => {
      const truth = new Set(exactTop(q));
      hits += results[k].filter((r) => truth.has(r.id)).length;
      results[k].forEach((r) => expect(Math.abs(r.score - exactCosine(vecs[Number(r.id)], q))).toBeLessThan(1e-4));
    });
    const recall = hits / (10 * queries.length);

    let fhits = 0;
    t1 = performance.now();
    const fres: QueryMatch[][] = [];
    for (const q of queries) fres.push(await idx.query('ann', q, { topK: 10, filter: { g: 3 } }));
    const filteredMs = (performance.now() - t1) / queries.length;
    queries.forEach((q, k) => {
      expect(fres[k].every((r) => Number(r.id) % 10 === 3)).toBe(true);
      const truth = new Set(exactTop(q, (i) => i % 10 === 3));
      fhits += fres[k].filter((r) => truth.has(r.id)).length;
    });
    const filteredRecall = fhits / (10 * queries.length);

    // fresh writes after the build are searched too (unindexed rows are scanned flat)
    const fresh = randomVectors(1, D, 555)[0];
    await idx.upsert('ann', [{ id: 'fresh', values: fresh }]);
    expect((await idx.query('ann', fresh, { topK: 1 }))[0].id).toBe('fresh');

    // the same data searched flat, for comparison
    const flat = await LanceDbIndex.open({ dir: tmp(), annThreshold: Number.POSITIVE_INFINITY });
    await flat.upsert('flat', vecs.map((values, i) => ({ id: String(i), values })));
    for (const q of queries.slice(0, 5)) await flat.query('flat', q, { topK: 10 });
    t1 = performance.now();
    for (const q of queries) await flat.query('flat', q, { topK: 10 });
    const flatMs = (performance.now() - t1) / queries.length;
    console.log(
      `lancedb 10k x 128: upsert+index ${upsertMs.toFixed(0)} ms; ANN(hnsw_sq) top-10 ${annMs.toFixed(2)} ms/query recall@10 ${recall.toFixed(3)}; ` +
        `filtered (10% selectivity) ${filteredMs.toFixed(2)} ms/query recall@10 ${filteredRecall.toFixed(3)}; flat ${flatMs.toFixed(2)} ms/query`,
    );
    expect(recall).toBeGreaterThanOrEqual(0.9);
    expect(filteredRecall).toBeGreaterThanOrEqual(0.9);
    await flat.close();
    await idx.close();
  });

  it('many small commits trigger compaction without losing or duplicating records', async () => {
    const idx = await LanceDbIndex.open({ dir: tmp() });
    const vecs = randomVectors(100, 8, 13);
    for (let i = 0; i < 100; i++) await idx.upsert('small', [{ id: `s${i}`, values: vecs[i], metadata: { i, w: i % 2 ? 'odd' : 'even' } }]);
    for (let i = 0; i < 100; i += 4) await idx.delete('small', [`s${i}`]);
    for (let i = 1; i < 100; i += 4) await idx.upsert('small', [{ id: `s${i}`, values: vecs[i], metadata: { i, w: 'again' } }]);
    expect((await idx.stats('small')).count).toBe(75);
    expect(await idx.query('small', vecs[1], { topK: 100, filter: { w: 'again' } })).toHaveLength(25);
    expect(await idx.query('small', vecs[1], { topK: 100, filter: { w: 'even' } })).toHaveLength(25);
    expect((await idx.query('small', vecs[3], { topK: 1 }))[0].id).toBe('s3');
    await idx.close();
  });

  it('writes and drops on one namespace apply in call order', async () => {
    const idx = await LanceDbIndex.open({ dir: tmp() });
    const v = randomVectors(3, 8, 1);
    await Promise.all([
      idx.upsert('o', [{ id: 'first', values: v[0] }]),
      idx.dropNamespace('o'),
      idx.upsert('o', [{ id: 'second', values: v[1] }]),
      idx.delete('o', ['nothing']),
    ]);
    expect((await idx.query('o', v[1], { topK: 10 })).map((r) => r.id)).toEqual(['second']);
    await idx.close();
    await expect(idx.query('o', v[1], { topK: 1 })).rejects.toMatchObject({ code: 'BACKEND' });
  });

  it('ivf_pq and ivf_flat are available as alternatives', async () => {
    for (const annIndex of ['ivf_pq', 'ivf_flat'] as const) {
      const idx = await LanceDbIndex.open({ dir: tmp(), annThreshold: 1_000, annIndex });
      const vecs = randomVectors(1_200, 32, 3);
      await idx.upsert('n', vecs.map((values, i) => ({ id: String(i), values })));
      expect(await idx.annInfo('n')).toMatchObject({ type: annIndex });
      const top = await idx.query('n', vecs[17], { topK: 1 });
      expect(top[0].id).toBe('17');
      await idx.close();
    }
  });
});
