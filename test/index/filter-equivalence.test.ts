/**
 * Property test: for random filters over random metadata, the memory evaluator (the reference), the LanceDB
 * SQL compilation and the Pinecone adapter (against the emulator's independent evaluator) select the same
 * records.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LanceDbIndex } from '../../src/node/lancedb.js';
import { MemoryIndex } from '../../src/index/memory.js';
import { PineconeIndex } from '../../src/index/pinecone.js';
import type { Metadata, VectorIndex } from '../../src/index/types.js';
import { randomVectors } from './contract.js';
import { PineconeEmulator } from './pinecone-emulator.js';

const FIELDS = ['a', 'B.c', 'd-e', 'f_g'];
const STRS = ['x', 'y', "q'z", 'X', ''];
const NUMS = [-1, 0, 1.5, 2, 1e6];

const scalar = fc.oneof(fc.constantFrom(...STRS), fc.constantFrom(...NUMS), fc.boolean());
const metaValue = fc.oneof(scalar, fc.uniqueArray(fc.constantFrom(...STRS), { maxLength: 3 }));
const metadata = fc.dictionary(fc.constantFrom(...FIELDS), metaValue, { maxKeys: 4 });

const leafOps = fc.oneof(
  scalar.map((v) => v as unknown),
  scalar.map((v) => ({ $eq: v })),
  scalar.map((v) => ({ $ne: v })),
  fc.array(fc.oneof(fc.constantFrom(...STRS), fc.constantFrom(...NUMS)), { minLength: 1, maxLength: 3 }).map((v) => ({ $in: v })),
  fc.array(fc.oneof(fc.constantFrom(...STRS), fc.constantFrom(...NUMS)), { minLength: 1, maxLength: 3 }).map((v) => ({ $nin: v })),
  fc.constantFrom(...NUMS).map((v) => ({ $gt: v })),
  fc.constantFrom(...NUMS).map((v) => ({ $gte: v, $lt: 3 })),
  fc.constantFrom(...NUMS).map((v) => ({ $lte: v })),
  fc.boolean().map((v) => ({ $exists: v })),
);
const leaf = fc.record({ f: fc.constantFrom(...FIELDS), op: leafOps }).map(({ f, op }) => ({ [f]: op }) as Record<string, unknown>);
const { filter } = fc.letrec((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('filter'), { minLength: 1, maxLength: 3 }).map((c) => ({ $and: c })),
    fc.array(tie('filter'), { minLength: 1, maxLength: 3 }).map((c) => ({ $or: c })),
  ),
}));

describe('filter semantics agree across adapters (memory reference, LanceDB SQL, Pinecone emulator)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'manyfold-filter-eq-'));
  const emu = new PineconeEmulator();
  const indexes: VectorIndex[] = [];
  const metas = fc.sample(metadata, { numRuns: 120, seed: 42 }) as Metadata[];
  const vecs = randomVectors(metas.length, 4, 5);

  beforeAll(async () => {
    const host = await emu.start();
    indexes.push(new MemoryIndex(), await LanceDbIndex.open({ dir }), new PineconeIndex({ apiKey: emu.apiKey, host }));
    const records = metas.map((m, i) => (Object.keys(m).length ? { id: `m${i}`, values: vecs[i], metadata: m } : { id: `m${i}`, values: vecs[i] }));
    for (const idx of indexes) await idx.upsert('eq', records);
  });
  afterAll(async () => {
    for (const idx of indexes) await idx.close?.();
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('300 random filters select identical record sets', async () => {
    const filters = fc.sample(filter, { numRuns: 300, seed: 7 });
    let nonTrivial = 0;
    for (const f of filters) {
      const [mem, lance, pine] = await Promise.all(
        indexes.map(async (idx) => (await idx.query('eq', vecs[0], { topK: 1000, filter: f })).map((r) => r.id).sort()),
      );
      if (mem.length > 0 && mem.length < metas.length) nonTrivial++;
      expect({ filter: f, ids: lance }).toEqual({ filter: f, ids: mem });
      expect({ filter: f, ids: pine }).toEqual({ filter: f, ids: mem });
    }
    expect(nonTrivial).toBeGreaterThan(100); // the generator produces selective filters, not just all/none
  });
});
