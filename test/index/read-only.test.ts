/**
 * The memory index as the edge serves it: a snapshot loaded read-only. Reads work as usual; every write (upsert,
 * delete, dropNamespace) throws IndexError READ_ONLY with the caller's message and changes nothing;
 * assertIndexWritable lets a write path refuse before its first side effect. Without the flag nothing changes.
 */
import { describe, expect, it } from 'vitest';
import { assertIndexWritable, IndexError, MemoryIndex } from '../../src/index/index.js';

const WHY = 'read-only snapshot: configure Pinecone';

async function snapshot(): Promise<Uint8Array> {
  const index = new MemoryIndex();
  await index.upsert('ns', [
    { id: 'a', values: [1, 0, 0], metadata: { k: 1 } },
    { id: 'b', values: [0, 1, 0] },
  ]);
  return index.toBinary();
}

describe('MemoryIndex readOnly', () => {
  it('a read-only snapshot answers reads and refuses every write with READ_ONLY, unchanged afterwards', async () => {
    for (const index of [MemoryIndex.fromBinary(await snapshot(), { readOnly: WHY }), MemoryIndex.fromJSON(MemoryIndex.fromBinary(await snapshot()).toJSON(), { readOnly: WHY })]) {
      expect((await index.query('ns', [1, 0.1, 0], { topK: 1 }))[0].id).toBe('a');
      const writes = [() => index.upsert('ns', [{ id: 'c', values: [0, 0, 1] }]), () => index.delete('ns', ['a']), () => index.dropNamespace('ns')];
      for (const write of writes) {
        const e = await write().catch((x: unknown) => x);
        expect(e).toBeInstanceOf(IndexError);
        expect(e).toMatchObject({ code: 'READ_ONLY', message: WHY, field: 'index.kind' });
      }
      expect(() => assertIndexWritable(index)).toThrow(WHY);
      expect(await index.stats('ns')).toEqual({ count: 2, dimension: 3 });
    }
  });

  it('without the flag the index (and a loaded snapshot) takes writes', async () => {
    const index = MemoryIndex.fromBinary(await snapshot());
    expect(() => assertIndexWritable(index)).not.toThrow();
    await index.upsert('ns', [{ id: 'c', values: [0, 0, 1] }]);
    await index.delete('ns', ['a']);
    expect(await index.stats('ns')).toEqual({ count: 2, dimension: 3 });
  });
});
