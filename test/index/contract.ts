/**
 * The shared VectorIndex contract: every adapter registers these tests with its own factory.
 * Expected results are written out by hand (not computed with src/index/filter.ts) so the reference
 * evaluator is tested too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Metadata, VectorIndex, VectorRecord } from '../../src/index/types.js';

export interface ContractSubject {
  index: VectorIndex;
  cleanup?: () => Promise<void>;
}

export interface ContractOptions {
  /** a fresh, empty index per test */
  create: () => Promise<ContractSubject>;
  /** score tolerance vs exact float64 cosine; default 1e-5 */
  scoreTolerance?: number;
}

/** small deterministic PRNG (mulberry32) */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomVectors(n: number, dim: number, seed: number): Float32Array[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => {
    const v = new Float32Array(dim);
    for (let i = 0; i < dim; i++) v[i] = r() * 2 - 1;
    return v;
  });
}

export function exactCosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

const DIM = 8;

/** the filter fixture: ids r0..r11 */
export const FIXTURE_METADATA: (Metadata | undefined)[] = [
  { genre: 'jazz', year: 1999, tags: ['live', 'mono'], public: true },
  { genre: 'rock', year: 2005, tags: ['studio'], public: false },
  { genre: 'jazz', year: 2010, tags: ['studio', 'remaster'], public: true },
  { genre: 'pop', year: 2020, public: true },
  { genre: 'rock', year: 2015.5, tags: [] },
  { year: 1980 },
  { genre: "x' OR 1=1 --", year: 2000 },
  { genre: '2020', year: '2020' },
  undefined,
  { genre: 'Jazz', year: 2001, public: false },
  { genre: 'back\\slash', tags: ['a.b'] },
  { 'camera.model': 'x-100', 'Camera.Model': 'other', 'lens-id': 7 },
];

const ALL = FIXTURE_METADATA.map((_, i) => `r${i}`);
const ids = (...n: number[]) => n.map((i) => `r${i}`).sort();
const except = (...n: number[]) => ALL.filter((id) => !n.includes(Number(id.slice(1)))).sort();

export const FILTER_CASES: [string, Record<string, unknown>, string[]][] = [
  ['implicit $eq', { genre: 'jazz' }, ids(0, 2)],
  ['$eq', { genre: { $eq: 'jazz' } }, ids(0, 2)],
  ['$eq is case-sensitive', { genre: 'Jazz' }, ids(9)],
  ['$ne (also matches records without the field)', { genre: { $ne: 'jazz' } }, except(0, 2)],
  ['$in', { genre: { $in: ['jazz', 'pop'] } }, ids(0, 2, 3)],
  ['$in with mixed types', { genre: { $in: ['jazz', 5] } }, ids(0, 2)],
  ['$nin', { genre: { $nin: ['jazz', 'pop'] } }, except(0, 2, 3)],
  ['$gt (numbers only; "2020" string excluded)', { year: { $gt: 2005 } }, ids(2, 3, 4)],
  ['$gte', { year: { $gte: 2005 } }, ids(1, 2, 3, 4)],
  ['$lt', { year: { $lt: 2000 } }, ids(0, 5)],
  ['$lte', { year: { $lte: 2000 } }, ids(0, 5, 6)],
  ['range on one field', { year: { $gte: 2000, $lt: 2010 } }, ids(1, 6, 9)],
  ['typed equality: number', { year: 2020 }, ids(3)],
  ['typed equality: string', { year: '2020' }, ids(7)],
  ['$in across types', { year: { $in: [1999, '2020'] } }, ids(0, 7)],
  ['list contains', { tags: 'studio' }, ids(1, 2)],
  ['list $in', { tags: { $in: ['live', 'remaster'] } }, ids(0, 2)],
  ['list $nin', { tags: { $nin: ['studio'] } }, except(1, 2)],
  ['list $ne', { tags: { $ne: 'studio' } }, except(1, 2)],
  ['$exists true (empty list exists)', { tags: { $exists: true } }, ids(0, 1, 2, 4, 10)],
  ['$exists false', { tags: { $exists: false } }, ids(3, 5, 6, 7, 8, 9, 11)],
  ['boolean true', { public: true }, ids(0, 2, 3)],
  ['boolean false', { public: { $eq: false } }, ids(1, 9)],
  ['boolean $ne', { public: { $ne: true } }, except(0, 2, 3)],
  ['$or', { $or: [{ genre: 'pop' }, { year: { $lt: 1990 } }] }, ids(3, 5)],
  ['$and', { $and: [{ genre: { $in: ['jazz', 'rock'] } }, { public: true }] }, ids(0, 2)],
  ['nested $and/$or', { $and: [{ $or: [{ genre: 'rock' }, { genre: 'pop' }] }, { year: { $gt: 2010 } }] }, ids(3, 4)],
  ['implicit AND of keys', { genre: 'jazz', year: { $gt: 2000 } }, ids(2)],
  ['dotted field name', { 'camera.model': 'x-100' }, ids(11)],
  ['field names are case-sensitive', { 'Camera.Model': 'x-100' }, []],
  ['case-distinct field', { 'Camera.Model': 'other' }, ids(11)],
  ['hyphenated field', { 'lens-id': { $gte: 7 } }, ids(11)],
  ['SQL-looking value matches literally', { genre: "x' OR 1=1 --" }, ids(6)],
  ['quote-breaking value matches nothing', { genre: "jazz' OR '1'='1" }, []],
  ['backslash value', { genre: 'back\\slash' }, ids(10)],
  ['list element with a dot', { tags: 'a.b' }, ids(10)],
  ['unknown field, comparison', { missing: { $gt: 1 } }, []],
  ['unknown field, $exists false', { missing: { $exists: false } }, ALL.slice().sort()],
  ['unknown field, $ne', { missing: { $ne: 'x' } }, ALL.slice().sort()],
];

export const REJECTED_FILTERS: [string, unknown, string][] = [
  ['unknown operator', { genre: { $regex: '.*' } }, 'filter.genre.$regex'],
  ['unknown logical operator', { $where: 'sleep(1)' }, 'filter.$where'],
  ['$not is not supported', { $not: { genre: 'jazz' } }, 'filter.$not'],
  ['SQL in a field name', { "genre` = 'x' OR 1=1 --": 'a' }, "filter.genre` = 'x' OR 1=1 --"],
  ['quote in a field name', { "genre') OR (1=1": 'x' }, "filter.genre') OR (1=1"],
  ['space in a field name', { 'my field': 'x' }, 'filter.my field'],
  ['$gt with a string', { year: { $gt: '2000' } }, 'filter.year.$gt'],
  ['array instead of $in', { genre: ['a', 'b'] }, 'filter.genre'],
  ['$in with a scalar', { genre: { $in: 'jazz' } }, 'filter.genre.$in'],
  ['$in empty', { genre: { $in: [] } }, 'filter.genre.$in'],
  ['$in with a boolean', { genre: { $in: [true] } }, 'filter.genre.$in[0]'],
  ['null value', { genre: null }, 'filter.genre'],
  ['nested object value', { genre: { name: 'x' } }, 'filter.genre.name'],
  ['$exists with a string', { genre: { $exists: 'yes' } }, 'filter.genre.$exists'],
  ['NaN', { year: { $gt: Number.NaN } }, 'filter.year.$gt'],
  ['Infinity', { year: { $lt: Number.POSITIVE_INFINITY } }, 'filter.year.$lt'],
  ['empty operator object', { genre: {} }, 'filter.genre'],
  ['empty filter', {}, 'filter'],
  ['$or not an array', { $or: { genre: 'x' } }, 'filter.$or'],
  ['$and empty', { $and: [] }, 'filter.$and'],
  ['bad nested condition names its path', { $or: [{ genre: 'x' }, { year: { $foo: 1 } }] }, 'filter.$or[1].year.$foo'],
  ['__proto__ field', JSON.parse('{"__proto__": {"$eq": 1}}') as unknown, 'filter.__proto__'],
  ['too deep', { $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ a: 1 }] }] }] }] }] }] }] }] }] }, 'filter'],
  ['not an object', 'genre = jazz', 'filter'],
];

function fixtureRecords(): VectorRecord[] {
  const vecs = randomVectors(FIXTURE_METADATA.length, DIM, 7);
  return FIXTURE_METADATA.map((metadata, i) => (metadata ? { id: `r${i}`, values: vecs[i], metadata } : { id: `r${i}`, values: vecs[i] }));
}

function unit(i: number, dim = DIM, scale = 1): number[] {
  const v = new Array<number>(dim).fill(0);
  v[i] = scale;
  return v;
}

export function vectorIndexContract(name: string, options: ContractOptions): void {
  const tol = options.scoreTolerance ?? 1e-5;
  describe(`VectorIndex contract: ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!();
    });
    async function fresh(): Promise<VectorIndex> {
      const s = await options.create();
      cleanups.push(async () => {
        await s.index.close?.();
        await s.cleanup?.();
      });
      return s.index;
    }

    it('orders results by cosine similarity, best first, with exact scores', async () => {
      const idx = await fresh();
      const vecs = randomVectors(40, DIM, 1);
      await idx.upsert('ns', vecs.map((values, i) => ({ id: `v${i}`, values })));
      const q = randomVectors(1, DIM, 99)[0];
      const res = await idx.query('ns', q, { topK: 10 });
      const expected = vecs
        .map((v, i) => ({ id: `v${i}`, score: exactCosine(v, q) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 10);
      expect(res.map((r) => r.id)).toEqual(expected.map((e) => e.id));
      res.forEach((r, i) => expect(Math.abs(r.score - expected[i].score)).toBeLessThan(tol));
      for (let i = 1; i < res.length; i++) expect(res[i - 1].score).toBeGreaterThanOrEqual(res[i].score);
    });

    it('scores are cosines even for vectors that are not normalised', async () => {
      const idx = await fresh();
      const a = unit(0, DIM, 3);
      a[1] = 4; // |a| = 5, cos with e0 = 0.6
      await idx.upsert('ns', [
        { id: 'a', values: a },
        { id: 'b', values: unit(1, DIM, 0.001) },
        { id: 'c', values: unit(0, DIM, -10) },
      ]);
      const res = await idx.query('ns', unit(0, DIM, 42), { topK: 3 });
      expect(res.map((r) => r.id)).toEqual(['a', 'b', 'c']);
      expect(res[0].score).toBeCloseTo(0.6, 5);
      expect(res[1].score).toBeCloseTo(0, 5);
      expect(res[2].score).toBeCloseTo(-1, 5);
    });

    it('upsert is idempotent by id: same id replaces vector and whole metadata', async () => {
      const idx = await fresh();
      await idx.upsert('ns', [
        { id: 'x', values: unit(0), metadata: { color: 'red', size: 1 } },
        { id: 'y', values: unit(1) },
      ]);
      await idx.upsert('ns', [{ id: 'x', values: unit(2), metadata: { shape: 'round' } }]);
      await idx.upsert('ns', [{ id: 'x', values: unit(2), metadata: { shape: 'round' } }]);
      expect((await idx.stats('ns')).count).toBe(2);
      const top = await idx.query('ns', unit(2), { topK: 1, includeMetadata: true });
      expect(top[0]).toMatchObject({ id: 'x', metadata: { shape: 'round' } });
      expect(top[0].score).toBeCloseTo(1, 5);
      expect(await idx.query('ns', unit(2), { topK: 5, filter: { color: 'red' } })).toEqual([]);
      expect((await idx.query('ns', unit(2), { topK: 5, filter: { shape: 'round' } })).map((r) => r.id)).toEqual(['x']);
    });

    it('duplicate ids within one upsert: the last one wins', async () => {
      const idx = await fresh();
      await idx.upsert('ns', [
        { id: 'd', values: unit(0), metadata: { v: 1 } },
        { id: 'd', values: unit(3), metadata: { v: 2 } },
      ]);
      expect((await idx.stats('ns')).count).toBe(1);
      const res = await idx.query('ns', unit(3), { topK: 1, includeMetadata: true });
      expect(res[0]).toMatchObject({ id: 'd', metadata: { v: 2 } });
      expect(res[0].score).toBeCloseTo(1, 5);
    });

    it('delete removes records; unknown ids and namespaces are ignored', async () => {
      const idx = await fresh();
      await idx.upsert('ns', [0, 1, 2, 3].map((i) => ({ id: `d${i}`, values: unit(i) })));
      await idx.delete('ns', ['d1', 'd3', 'nope']);
      expect((await idx.stats('ns')).count).toBe(2);
      expect((await idx.query('ns', unit(1), { topK: 10 })).map((r) => r.id).sort()).toEqual(['d0', 'd2']);
      await idx.delete('ns', []);
      await idx.delete('never-created', ['a']);
      expect((await idx.stats('ns')).count).toBe(2);
    });

    it('stats reports count and dimension', async () => {
      const idx = await fresh();
      expect((await idx.stats('ns')).count).toBe(0);
      await idx.upsert('ns', fixtureRecords());
      expect(await idx.stats('ns')).toEqual({ count: FIXTURE_METADATA.length, dimension: DIM });
    });

    it('namespaces are isolated', async () => {
      const idx = await fresh();
      await idx.upsert('alpha', [{ id: 'same', values: unit(0), metadata: { ns: 'alpha' } }]);
      await idx.upsert('beta', [
        { id: 'same', values: unit(1), metadata: { ns: 'beta' } },
        { id: 'other', values: unit(2) },
      ]);
      expect((await idx.stats('alpha')).count).toBe(1);
      expect((await idx.stats('beta')).count).toBe(2);
      const a = await idx.query('alpha', unit(1), { topK: 10, includeMetadata: true });
      expect(a.map((r) => r.metadata)).toEqual([{ ns: 'alpha' }]);
      await idx.delete('alpha', ['same']);
      expect((await idx.stats('beta')).count).toBe(2);
      expect(await idx.listNamespaces()).toContain('beta');
    });

    it('dropNamespace removes a namespace and nothing else; unknown namespaces are fine', async () => {
      const idx = await fresh();
      await idx.upsert('keep', [{ id: 'k', values: unit(0) }]);
      await idx.upsert('model-v1.2.0', [{ id: 'g', values: unit(0) }]);
      expect(await idx.listNamespaces()).toEqual(['keep', 'model-v1.2.0']);
      await idx.dropNamespace('model-v1.2.0');
      await idx.dropNamespace('never-existed');
      expect(await idx.listNamespaces()).toEqual(['keep']);
      expect(await idx.query('model-v1.2.0', unit(0), { topK: 5 })).toEqual([]);
      expect((await idx.stats('model-v1.2.0')).count).toBe(0);
      expect((await idx.stats('keep')).count).toBe(1);
      await idx.upsert('model-v1.2.0', [{ id: 'again', values: unit(1) }]);
      expect((await idx.query('model-v1.2.0', unit(1), { topK: 5 })).map((r) => r.id)).toEqual(['again']);
    });

    describe('filters', () => {
      let idx: VectorIndex;
      it.each(FILTER_CASES)('%s', async (_label, filter, expected) => {
        idx = await fresh();
        await idx.upsert('f', fixtureRecords());
        const res = await idx.query('f', randomVectors(1, DIM, 3)[0], { topK: 100, filter });
        expect(res.map((r) => r.id).sort()).toEqual(expected);
      });

      it('filters respect topK and ordering', async () => {
        idx = await fresh();
        const recs = fixtureRecords();
        await idx.upsert('f', recs);
        const q = randomVectors(1, DIM, 3)[0];
        const res = await idx.query('f', q, { topK: 2, filter: { year: { $exists: true } } });
        const expected = recs
          .filter((r) => r.metadata && 'year' in r.metadata)
          .map((r) => ({ id: r.id, s: exactCosine(r.values, q) }))
          .sort((a, b) => b.s - a.s)
          .slice(0, 2)
          .map((r) => r.id);
        expect(res.map((r) => r.id)).toEqual(expected);
      });
    });

    describe('injection attempts are rejected or harmless', () => {
      it.each(REJECTED_FILTERS)('rejects %s', async (_label, filter, field) => {
        const idx = await fresh();
        await idx.upsert('f', fixtureRecords());
        const p = idx.query('f', unit(0), { topK: 5, filter: filter as Record<string, unknown> });
        await expect(p).rejects.toMatchObject({ name: 'IndexError', code: 'INVALID_FILTER', field });
      });

      it('rejects hostile namespace names everywhere', async () => {
        const idx = await fresh();
        for (const ns of ['../etc', 'a/b', "a' OR 1=1", '', 'x'.repeat(65), '.hidden', '__default__', 'a b', 'a\u0000b']) {
          await expect(idx.upsert(ns, [{ id: 'a', values: unit(0) }])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'namespace' });
          await expect(idx.query(ns, unit(0), { topK: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'namespace' });
          await expect(idx.dropNamespace(ns)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
          await expect(idx.delete(ns, ['a'])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        }
        expect(await idx.listNamespaces()).toEqual([]);
      });

      it('ids with quotes and SQL fragments are stored, found and deleted literally', async () => {
        const idx = await fresh();
        const nasty = ["it's", "'); DROP TABLE f; --", 'a" OR "1"="1', 'back\\slash', 'ünïcödé 🔍', "' OR id != '"];
        await idx.upsert('f', [...nasty.map((id, i) => ({ id, values: unit(i) })), { id: 'bystander', values: unit(7) }]);
        expect((await idx.stats('f')).count).toBe(nasty.length + 1);
        for (let i = 0; i < nasty.length; i++) {
          const top = await idx.query('f', unit(i), { topK: 1 });
          expect(top[0].id).toBe(nasty[i]);
        }
        if (idx.fetch) expect((await idx.fetch('f', [nasty[1], 'missing'])).map((r) => r.id)).toEqual([nasty[1]]);
        await idx.delete('f', [nasty[5], nasty[1]]);
        const left = (await idx.query('f', unit(0), { topK: 100 })).map((r) => r.id).sort();
        expect(left).toEqual(['bystander', ...nasty.filter((_, i) => i !== 1 && i !== 5)].sort());
      });

      it('rejects malformed ids, vectors and metadata, naming the field', async () => {
        const idx = await fresh();
        const bad: [VectorRecord, string][] = [
          [{ id: '', values: unit(0) }, 'records[0].id'],
          [{ id: 'x'.repeat(513), values: unit(0) }, 'records[0].id'],
          [{ id: 'a\nb', values: unit(0) }, 'records[0].id'],
          [{ id: 'a', values: [1, Number.NaN, 0, 0, 0, 0, 0, 0] }, 'records[0].values[1]'],
          [{ id: 'a', values: [1, Number.POSITIVE_INFINITY, 0, 0, 0, 0, 0, 0] }, 'records[0].values[1]'],
          [{ id: 'a', values: new Array(DIM).fill(0) }, 'records[0].values'],
          [{ id: 'a', values: [] }, 'records[0].values'],
          [{ id: 'a', values: unit(0), metadata: { nested: { x: 1 } } as unknown as Metadata }, 'records[0].metadata.nested'],
          [{ id: 'a', values: unit(0), metadata: { n: null } as unknown as Metadata }, 'records[0].metadata.n'],
          [{ id: 'a', values: unit(0), metadata: { nums: [1, 2] } as unknown as Metadata }, 'records[0].metadata.nums[0]'],
          [{ id: 'a', values: unit(0), metadata: { 'bad key': 1 } }, 'records[0].metadata.bad key'],
          [{ id: 'a', values: unit(0), metadata: { big: 'x'.repeat(50_000) } }, 'records[0].metadata'],
        ];
        for (const [rec, field] of bad) {
          await expect(idx.upsert('v', [rec])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field });
        }
        expect((await idx.stats('v')).count).toBe(0);
      });
    });

    it('topK bounds: 1..10000, fewer results when fewer records', async () => {
      const idx = await fresh();
      await idx.upsert('t', fixtureRecords());
      for (const topK of [0, -1, 1.5, 10_001, Number.NaN, '5' as unknown as number]) {
        await expect(idx.query('t', unit(0), { topK })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'topK' });
      }
      expect(await idx.query('t', unit(0), { topK: 1 })).toHaveLength(1);
      expect(await idx.query('t', unit(0), { topK: 10_000 })).toHaveLength(FIXTURE_METADATA.length);
    });

    it('dimension mismatches are errors', async () => {
      const idx = await fresh();
      await idx.upsert('d', [{ id: 'a', values: unit(0) }]);
      await expect(idx.upsert('d', [{ id: 'b', values: unit(0, DIM + 1) }])).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
      await expect(idx.query('d', unit(0, DIM - 1), { topK: 1 })).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
      await expect(
        idx.upsert('d2', [
          { id: 'a', values: unit(0) },
          { id: 'b', values: unit(0, DIM + 2) },
        ]),
      ).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH', field: 'records[1].values' });
      expect((await idx.stats('d')).count).toBe(1);
    });

    it('an empty or unknown namespace answers empty', async () => {
      const idx = await fresh();
      expect(await idx.query('empty', unit(0), { topK: 10 })).toEqual([]);
      expect(await idx.query('empty', unit(0), { topK: 10, filter: { genre: 'jazz' } })).toEqual([]);
      expect((await idx.stats('empty')).count).toBe(0);
      if (idx.fetch) expect(await idx.fetch('empty', ['a'])).toEqual([]);
      await idx.upsert('emptied', [{ id: 'a', values: unit(0) }]);
      await idx.delete('emptied', ['a']);
      expect(await idx.query('emptied', unit(0), { topK: 10 })).toEqual([]);
      await idx.upsert('x', []);
      expect((await idx.stats('x')).count).toBe(0);
    });

    it('metadata round-trips exactly, only when asked for', async () => {
      const idx = await fresh();
      const metadata: Metadata = {
        caption: 'a dog — on a skateboard 🛹 "quoted" \'single\' back\\slash\nnewline',
        year: -12.5,
        count: 3,
        big: 1e21,
        tiny: 1e-7,
        ok: true,
        no: false,
        tags: ['a', 'b c', "d'e", ''],
        empty: [],
        'dotted.key': 'v',
        CamelCase: 'upper',
        camelcase: 'lower',
      };
      await idx.upsert('m', [
        { id: 'with', values: unit(0), metadata },
        { id: 'without', values: unit(1) },
      ]);
      const withMeta = await idx.query('m', unit(0), { topK: 2, includeMetadata: true });
      expect(withMeta[0]).toMatchObject({ id: 'with', metadata });
      expect(withMeta[1].metadata).toBeUndefined();
      const noMeta = await idx.query('m', unit(0), { topK: 2 });
      expect(noMeta.every((r) => r.metadata === undefined)).toBe(true);
      expect((await idx.query('m', unit(0), { topK: 2, filter: { big: { $gt: 1e20 } } })).map((r) => r.id)).toEqual(['with']);
      expect((await idx.query('m', unit(0), { topK: 2, filter: { tiny: { $lt: 1e-6, $gt: 0 } } })).map((r) => r.id)).toEqual(['with']);
      expect((await idx.query('m', unit(0), { topK: 2, filter: { CamelCase: 'upper', camelcase: 'lower' } })).map((r) => r.id)).toEqual(['with']);
      if (idx.fetch) {
        const [f] = await idx.fetch('m', ['with']);
        expect(f.metadata).toEqual(metadata);
        expect(Array.from(f.values)).toEqual(unit(0));
      }
    });

    it('fetch returns stored records (normalised vectors) in request order', async () => {
      const idx = await fresh();
      if (!idx.fetch) return;
      await idx.upsert('f', [
        { id: 'a', values: [3, 4, 0, 0, 0, 0, 0, 0], metadata: { k: 'v' } },
        { id: 'b', values: unit(1) },
      ]);
      const got = await idx.fetch('f', ['b', 'zzz', 'a', 'b']);
      expect(got.map((r) => r.id)).toEqual(['b', 'a']);
      expect(got[1].values[0]).toBeCloseTo(0.6, 6);
      expect(got[1].values[1]).toBeCloseTo(0.8, 6);
      expect(got[1].metadata).toEqual({ k: 'v' });
      expect(got[0].metadata).toBeUndefined();
    });

    it('a large batch (2,500 records) crosses batch limits intact', async () => {
      const idx = await fresh();
      const dim = 64;
      const vecs = randomVectors(2_500, dim, 11);
      await idx.upsert(
        'big',
        vecs.map((values, i) => ({ id: `b${i}`, values, metadata: { i, bucket: `k${i % 10}`, even: i % 2 === 0 } })),
      );
      expect(await idx.stats('big')).toEqual({ count: 2_500, dimension: dim });
      for (const i of [0, 999, 1000, 1001, 2499]) {
        const top = await idx.query('big', vecs[i], { topK: 1, includeMetadata: true });
        expect(top[0].id).toBe(`b${i}`);
        expect(top[0].score).toBeCloseTo(1, 5);
        expect(top[0].metadata?.i).toBe(i);
      }
      const filtered = await idx.query('big', vecs[5], { topK: 1000, filter: { bucket: 'k3', even: false } });
      expect(filtered).toHaveLength(250);
      expect(filtered.every((r) => Number(r.id.slice(1)) % 10 === 3)).toBe(true);
    });

    it('concurrent upserts to one namespace (with new metadata keys) all land', async () => {
      const idx = await fresh();
      const vecs = randomVectors(200, DIM, 5);
      await Promise.all(
        Array.from({ length: 8 }, (_, w) =>
          idx.upsert(
            'c',
            vecs.slice(w * 25, (w + 1) * 25).map((values, j) => ({ id: `c${w * 25 + j}`, values, metadata: { [`key${w}`]: w, shared: 'x' } })),
          ),
        ),
      );
      expect((await idx.stats('c')).count).toBe(200);
      for (let w = 0; w < 8; w++) {
        const res = await idx.query('c', vecs[0], { topK: 100, filter: { [`key${w}`]: w } });
        expect(res).toHaveLength(25);
      }
    });
  });
}
